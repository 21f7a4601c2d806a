// Reading and writing the .npy files the device-side runners exchange with the host (float32 and int8 only).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

struct NpyArray {
  std::string descr;  // "<f4" (float32) or "|i1" (int8)
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  size_t item_size() const { return descr == "<f4" ? 4 : 1; }
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Throws std::runtime_error naming the file on anything but a C-order float32/int8 array.
NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& array);
