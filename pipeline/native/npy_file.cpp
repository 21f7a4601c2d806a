// Minimal .npy (format 1.0/2.0) reader and writer: the device has no numpy when the runner is native.
#include "npy_file.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace {

std::string field(const std::string& header, const std::string& key) {
  size_t at = header.find("'" + key + "'");
  if (at == std::string::npos) throw std::runtime_error("npy header lacks " + key);
  size_t colon = header.find(':', at);
  size_t start = header.find_first_not_of(' ', colon + 1);
  size_t end = header[start] == '(' ? header.find(')', start) + 1
             : header[start] == '\'' ? header.find('\'', start + 1) + 1
                                     : header.find_first_of(",}", start);
  return header.substr(start, end - start);
}

std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::string digits;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      digits += c;
    } else if (!digits.empty()) {
      shape.push_back(std::stoll(digits));
      digits.clear();
    }
  }
  return shape;
}

}  // namespace

size_t npy_item_size(const std::string& descr) {
  if (descr == "<f4" || descr == "<i4") return 4;
  if (descr == "<i8") return 8;
  if (descr == "|i1" || descr == "|u1" || descr == "|b1") return 1;
  return 0;
}

NpyArray read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::string(magic, 6) != "\x93NUMPY") throw std::runtime_error(path + " is not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint8_t le[2];
    in.read(reinterpret_cast<char*>(le), 2);
    header_len = le[0] | (le[1] << 8);
  } else {
    uint8_t le[4];
    in.read(reinterpret_cast<char*>(le), 4);
    header_len = le[0] | (le[1] << 8) | (le[2] << 16) | (uint32_t(le[3]) << 24);
  }
  std::string header(header_len, '\0');
  in.read(header.data(), header_len);
  NpyArray array;
  array.descr = field(header, "descr");
  array.descr = array.descr.substr(1, array.descr.size() - 2);
  if (!array.item_size())
    throw std::runtime_error(path + ": dtype " + array.descr +
                             " unsupported (float32, int8, uint8, int32, int64 or bool)");
  if (field(header, "fortran_order") != "False") throw std::runtime_error(path + ": Fortran order unsupported");
  array.shape = parse_shape(field(header, "shape"));
  array.bytes.resize(array.count() * array.item_size());
  in.read(reinterpret_cast<char*>(array.bytes.data()), array.bytes.size());
  if (!in) throw std::runtime_error(path + ": truncated data");
  return array;
}

void write_npy(const std::string& path, const NpyArray& array) {
  std::ostringstream dims;
  for (int64_t d : array.shape) dims << d << ", ";
  std::string shape = "(" + dims.str() + ")";
  if (array.shape.size() > 1) shape = "(" + dims.str().substr(0, dims.str().size() - 2) + ")";
  std::string header = "{'descr': '" + array.descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad so that the data starts on a 64-byte boundary, as numpy does.
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write("\x93NUMPY\x01\x00", 8);
  uint16_t len = header.size();
  out.put(char(len & 0xff)).put(char(len >> 8));
  out << header;
  out.write(reinterpret_cast<const char*>(array.bytes.data()), array.bytes.size());
  if (!out) throw std::runtime_error("write failed: " + path);
}
