// Helpers shared by the io tests: raw file bytes, random arrays and error capture.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "mlxd/core/array.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/io_error.h"
#include "support/temp_dir.h"

namespace mlxd::test {

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

inline std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file: the length prefix, `header` as is, then `data`.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// `n` bytes that differ from each other (position-dependent), for data sections.
inline std::string filler(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 37 + 11) & 0x7f);
  return s;
}

// A contiguous array of `shape` and `t` with seeded random contents spanning the dtype's range.
inline array random_array(const shape_t& shape, dtype t, std::mt19937& rng) {
  array a = array::empty(shape, t);
  const auto n = static_cast<size_t>(a.size());
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (size_t i = 0; i < n; ++i) {
    switch (t) {
      case dtype::f32:
        a.mutable_data<float>()[i] = normal(rng);
        break;
      case dtype::f16:
        a.mutable_data<uint16_t>()[i] = f32_to_f16(normal(rng));
        break;
      case dtype::bf16:
        a.mutable_data<uint16_t>()[i] = f32_to_bf16(normal(rng));
        break;
      case dtype::i32:
        a.mutable_data<int32_t>()[i] = std::uniform_int_distribution<int32_t>(
            std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max())(rng);
        break;
      case dtype::i64:
        a.mutable_data<int64_t>()[i] = std::uniform_int_distribution<int64_t>(
            std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max())(rng);
        break;
      case dtype::u8:
        a.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(rng() & 0xff);
        break;
      case dtype::boolean:
        a.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(rng() & 1);
        break;
      default:
        throw std::invalid_argument("random_array: no random elements of " + std::string(name(t)));
    }
  }
  return a;
}

// The bytes of `a` in row-major order.
inline std::vector<uint8_t> bytes_of(const array& a) {
  const array c = contiguous(a);
  const auto* p = c.data<uint8_t>();
  return std::vector<uint8_t>(p, p + c.nbytes());
}

// The message of the io_error `fn` throws; a test failure if it throws nothing or something else.
inline std::string io_error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const io_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected io_error, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected io_error, nothing was thrown";
  return {};
}

}  // namespace mlxd::test
