// Reading and writing the .npy files the device-side runners exchange with the host.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

// The dtypes the runners exchange, by their .npy descr: float32, int8, uint8, int32, int64, bool.
size_t npy_item_size(const std::string& descr);  // 0 for a descr outside that list

struct NpyArray {
  std::string descr;  // "<f4", "|i1", "|u1", "<i4", "<i8" or "|b1"
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  size_t item_size() const { return npy_item_size(descr); }
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// Throws std::runtime_error naming the file on anything but a C-order array of one of the dtypes above.
NpyArray read_npy(const std::string& path);
void write_npy(const std::string& path, const NpyArray& array);
