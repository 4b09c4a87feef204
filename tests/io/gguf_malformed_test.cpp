// Every kind of malformed GGUF file is rejected with an io_error that names the file and the fault, in both
// load modes. The files are built byte by byte.
#include <gtest/gtest.h>

#include "gguf_test_util.h"
#include "mlxd/io/gguf.h"

namespace mlxd {
namespace {

using test::gguf_file_bytes;
using test::gguf_kv;
using test::gguf_str;
using test::gguf_tensor;
using test::le32;
using test::le64;

constexpr uint32_t t_u8 = 0, t_u32 = 4, t_f32 = 6, t_bool = 7, t_string = 8, t_array = 9;
constexpr uint32_t g_f32 = 0, g_q8_0 = 8, g_q5_k = 13;

class io_gguf_malformed : public ::testing::Test {
 protected:
  void expect_rejected(const std::string& bytes, const std::string& fault, gguf_load_options options = {}) {
    const auto path = dir_ / "bad.gguf";
    test::write_bytes(path, bytes);
    for (const bool copy : {true, false}) {
      SCOPED_TRACE(copy ? "copy" : "mmap");
      options.copy = copy;
      const std::string message = test::io_error_of([&] { load_gguf(path, options); });
      EXPECT_EQ(message.rfind("gguf: " + path.string() + ": ", 0), 0u) << message;
      EXPECT_NE(message.find(fault), std::string::npos) << "message: " << message << "\nexpected: " << fault;
    }
  }
  gguf_file load(const std::string& bytes, gguf_load_options options = {}) {
    const auto path = dir_ / "ok.gguf";
    test::write_bytes(path, bytes);
    return load_gguf(path, options);
  }

  test::temp_dir dir_;
};

TEST_F(io_gguf_malformed, magic_and_version) {
  expect_rejected("", "magic at byte 0 runs past the end of the file (0 bytes)");
  expect_rejected("GGU", "runs past the end of the file (3 bytes)");
  expect_rejected("GGML" + le32(3) + le64(0) + le64(0), "bad magic 'GGML', not a GGUF file");
  expect_rejected(gguf_file_bytes(0, 0, "", "", 1),
                  "GGUF version 1 is not supported (mlxd reads versions 2 and 3)");
  expect_rejected(gguf_file_bytes(0, 0, "", "", 4), "unsupported GGUF version 4");
  expect_rejected(gguf_file_bytes(0, 0, "", "", 0x03000000), "(a big-endian file?)");
  expect_rejected("GGUF" + le32(3) + le64(0), "metadata count at byte 16 runs past the end");
}

TEST_F(io_gguf_malformed, counts_too_large_for_the_file) {
  expect_rejected(gguf_file_bytes(0, uint64_t{1} << 60, ""),
                  "tensors and 1152921504606846976 metadata pairs");
  expect_rejected(gguf_file_bytes(~uint64_t{0}, 0, ""), "18446744073709551615 tensors and 0 metadata pairs");
  expect_rejected(gguf_file_bytes(1, 1, gguf_kv("a", t_u8, "\x01")), "more than the");
}

TEST_F(io_gguf_malformed, strings_past_the_end) {
  expect_rejected(gguf_file_bytes(0, 1, le64(1000) + "key" + std::string(60, 'x')),
                  "metadata key length 1000 at byte 24 runs past the end of the file");
  expect_rejected(gguf_file_bytes(0, 1, le64(70000) + "k"),
                  "metadata key of 70000 bytes exceeds the 65535-byte limit");
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("k", t_string, le64(~uint64_t{0}) + "abc")),
                  "metadata key 'k': string length 18446744073709551615");
  expect_rejected(gguf_file_bytes(1, 0, gguf_str(std::string(65, 'n'))),
                  "tensor name of 65 bytes exceeds the 64-byte limit");
}

TEST_F(io_gguf_malformed, value_types) {
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("k", 13, le64(0))),
                  "metadata key 'k': unknown value type 13");
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("k", t_array, le32(99) + le64(0))),
                  "metadata key 'k': unknown array element type 99");
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("k", t_bool, std::string(1, '\x02').append(40, '\0'))),
                  "metadata key 'k': bool byte is 2, not 0 or 1");
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("k", t_array, le32(t_u32) + le64(uint64_t{1} << 40))),
                  "metadata key 'k': array of 1099511627776 u32 elements cannot fit");
  expect_rejected(gguf_file_bytes(0, 2, gguf_kv("k", t_u8, "\x01") + gguf_kv("k", t_u8, "\x02")),
                  "duplicate metadata key 'k'");
}

TEST_F(io_gguf_malformed, nested_arrays_limited_in_depth) {
  const auto nested = [](int depth) {
    std::string v = le32(t_u8) + le64(1) + "\x07";
    for (int i = 1; i < depth; ++i) v = le32(t_array) + le64(1) + v;
    return gguf_file_bytes(0, 1, gguf_kv("k", t_array, v));
  };
  const gguf_file ok = load(nested(max_gguf_array_depth));
  const gguf_value* v = &ok.metadata.at("k");
  for (int i = 1; i < max_gguf_array_depth; ++i) v = &v->as<gguf_array>().values.at(0);
  EXPECT_EQ(v->as_vector_of<uint8_t>(), std::vector<uint8_t>{7});
  expect_rejected(nested(max_gguf_array_depth + 1), "metadata key 'k': arrays nested more than 8 deep");
}

TEST_F(io_gguf_malformed, alignment_key) {
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("general.alignment", t_u32, le32(48))),
                  "general.alignment 48 is not a power of two");
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("general.alignment", t_u32, le32(0))),
                  "general.alignment 0 is not a power of two");
  expect_rejected(gguf_file_bytes(0, 1, gguf_kv("general.alignment", t_u8, "\x20")),
                  "general.alignment is u8, not u32");
}

TEST_F(io_gguf_malformed, tensor_dims) {
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {}, g_f32, 0)),
                  "tensor 'w': n_dims is 0, not 1 to 4");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {1, 1, 1, 1, 1}, g_f32, 0)),
                  "tensor 'w': n_dims is 5, not 1 to 4");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {uint64_t{1} << 32, uint64_t{1} << 32}, g_f32, 0)),
                  "tensor 'w': element count overflows int64");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {~uint64_t{0}}, g_f32, 0)),
                  "tensor 'w': element count overflows int64");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {33}, g_q8_0, 0)),
                  "tensor 'w': first dimension 33 is not a multiple of the Q8_0 block size 32");
}

TEST_F(io_gguf_malformed, tensor_types) {
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {4}, 99, 0)), "tensor 'w': unknown ggml type id 99");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {4}, 4, 0)), "tensor 'w': unknown ggml type id 4");
  const std::string q5k = gguf_file_bytes(1, 0, gguf_tensor("w", {256}, g_q5_k, 0), std::string(176, '\0'));
  expect_rejected(q5k, "tensor 'w' has type Q5_K, which mlxd cannot load", {.dequantize = true});
  expect_rejected(q5k, "tensor 'w' has type Q5_K, which mlxd cannot load", {.keep_quantized = true});
  const gguf_file listed = load(q5k);
  ASSERT_EQ(listed.tensor_infos.size(), 1u);
  EXPECT_EQ(listed.tensor_infos[0].type_name, "Q5_K");
  EXPECT_EQ(listed.tensor_infos[0].nbytes, 176u);
  EXPECT_TRUE(listed.tensors.empty());
}

TEST_F(io_gguf_malformed, tensor_data_placement) {
  const std::string data(128, '\x3c');
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {40}, g_f32, 0), data),
                  "tensor 'w': data [0, +160) lies outside the data section (128 bytes)");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {1}, g_f32, ~uint64_t{0} - 31), data),
                  "lies outside the data section");
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {4}, g_f32, 16), data),
                  "tensor 'w': offset 16 is not a multiple of the alignment 32");
  expect_rejected(
      gguf_file_bytes(2, 0, gguf_tensor("a", {16}, g_f32, 0) + gguf_tensor("b", {4}, g_f32, 32), data),
      "tensors 'a' and 'b' overlap");
  expect_rejected(
      gguf_file_bytes(2, 0, gguf_tensor("a", {4}, g_f32, 0) + gguf_tensor("a", {4}, g_f32, 32), data),
      "duplicate tensor name 'a'");
  // Truncated inside the tensor infos.
  expect_rejected(gguf_file_bytes(1, 0, gguf_tensor("w", {4}, g_f32, 0)).substr(0, 56),
                  "tensor 'w': offset at byte 49 runs past the end");
}

TEST_F(io_gguf_malformed, holes_between_tensors_are_accepted) {
  std::string data(160, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i);
  const gguf_file f =
      load(gguf_file_bytes(2, 0, gguf_tensor("a", {4}, g_f32, 128) + gguf_tensor("b", {2}, g_f32, 32), data));
  EXPECT_EQ(f.tensors.at("a").shape(), shape_t{4});
  EXPECT_EQ(f.tensors.at("a").data<uint8_t>()[0], 128);
  EXPECT_EQ(f.tensors.at("b").data<uint8_t>()[0], 32);
}

TEST_F(io_gguf_malformed, header_larger_than_the_first_read) {
  const std::string big(3 << 20, 'v');
  const std::string file =
      gguf_file_bytes(1, 2,
                      gguf_kv("big", t_string, gguf_str(big)) + gguf_kv("x", t_f32, le32(0x40490fdb)) +
                          gguf_tensor("w", {2}, g_f32, 0),
                      le32(0x3f800000) + le32(0xbf800000));
  for (const bool copy : {true, false}) {
    const gguf_file f = load(file, {.copy = copy});
    EXPECT_EQ(f.metadata.get_string("big").size(), big.size());
    EXPECT_EQ(f.tensors.at("w").to_vector<float>(), (std::vector<float>{1.0f, -1.0f}));
  }
}

}  // namespace
}  // namespace mlxd
