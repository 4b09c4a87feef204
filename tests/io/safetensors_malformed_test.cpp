// Every kind of malformed safetensors file is rejected with an io_error that names the file and the fault, in
// both load modes. The files are built byte by byte.
#include <gtest/gtest.h>

#include "io_test_util.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {
namespace {

using test::safetensors_bytes;

class io_safetensors_malformed : public ::testing::Test {
 protected:
  // Writes `bytes` to a file and checks that both load modes reject it with a message holding `fault`.
  void expect_rejected(const std::string& bytes, const std::string& fault) {
    const auto path = dir_ / "bad.safetensors";
    test::write_bytes(path, bytes);
    for (const bool copy : {true, false}) {
      SCOPED_TRACE(copy ? "copy" : "mmap");
      const std::string message = test::io_error_of([&] { load_safetensors(path, {.copy = copy}); });
      EXPECT_EQ(message.rfind("safetensors: " + path.string() + ": ", 0), 0u) << message;
      EXPECT_NE(message.find(fault), std::string::npos) << "message: " << message << "\nexpected: " << fault;
    }
  }
  // A file with one tensor entry `entry` (JSON object text) named "w" and `data_size` data bytes.
  void expect_entry_rejected(const std::string& entry, size_t data_size, const std::string& fault) {
    expect_rejected(safetensors_bytes(R"({"w":)" + entry + "}", test::filler(data_size)), fault);
  }

  test::temp_dir dir_;
};

TEST_F(io_safetensors_malformed, file_too_short_for_the_length_prefix) {
  expect_rejected("", "file is 0 bytes, too short for the 8-byte header length");
  expect_rejected(std::string("\x05\x00\x00\x00\x00", 5), "file is 5 bytes, too short");
}

TEST_F(io_safetensors_malformed, header_length_past_the_end_or_over_the_cap) {
  expect_rejected(test::le64(100) + "{}", "header length 100 runs past the end of the file (10 bytes)");
  expect_rejected(test::le64(uint64_t{1} << 40) + "{}",
                  "header length 1099511627776 exceeds the 100000000-byte limit");
  expect_rejected(test::le64(~uint64_t{0}) + "{}", "exceeds the 100000000-byte limit");
}

TEST_F(io_safetensors_malformed, header_not_a_json_object) {
  expect_rejected(safetensors_bytes("", ""), "header is not a JSON object");
  expect_rejected(safetensors_bytes("[1, 2]", ""), "header is not a JSON object");
  expect_rejected(safetensors_bytes(" {}", ""), "header is not a JSON object (it must start with '{')");
  expect_rejected(safetensors_bytes(R"({"w": )", ""), "header is not valid JSON");
  expect_rejected(safetensors_bytes("{} x", ""), "header is not valid JSON");
  expect_rejected(safetensors_bytes(std::string("{}\0\0", 4), ""),
                  "header is not valid JSON: NUL byte at offset 2");
  expect_rejected(safetensors_bytes(std::string("{}\0{\"w\":1}", 9), ""), "NUL byte at offset 2");
  expect_rejected(safetensors_bytes("{\"w\xff\":{}}", ""), "header is not valid JSON");  // not UTF-8
  expect_rejected(safetensors_bytes(R"({"w":{"x":[[[[[[[[[[1]]]]]]]]]]}})", ""),
                  "nesting deeper than 8 levels");
}

TEST_F(io_safetensors_malformed, duplicate_names_and_keys) {
  const std::string entry = R"({"dtype":"U8","shape":[1],"data_offsets":[0,1]})";
  expect_rejected(safetensors_bytes(R"({"w":)" + entry + R"(,"w":)" + entry + "}", "ab"),
                  "duplicate key 'w'");
  expect_entry_rejected(R"({"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]})", 1,
                        "duplicate key 'dtype'");
  expect_rejected(safetensors_bytes(R"({"__metadata__":{},"__metadata__":{}})", ""),
                  "duplicate key '__metadata__'");
}

TEST_F(io_safetensors_malformed, entry_fields_missing_or_of_the_wrong_type) {
  expect_entry_rejected("3", 0, "tensor 'w': entry is not a JSON object");
  expect_entry_rejected(R"({"shape":[1],"data_offsets":[0,1]})", 1, "tensor 'w': missing 'dtype'");
  expect_entry_rejected(R"({"dtype":"U8","data_offsets":[0,1]})", 1, "tensor 'w': missing 'shape'");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1]})", 1, "tensor 'w': missing 'data_offsets'");
  expect_entry_rejected(R"({"dtype":5,"shape":[1],"data_offsets":[0,1]})", 1, "'dtype' is not a string");
  expect_entry_rejected(R"({"dtype":"U8","shape":"1","data_offsets":[0,1]})", 1, "'shape' is not an array");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1],"data_offsets":{"0":1}})", 1,
                        "is not a [begin, end] pair");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1,2]})", 1,
                        "is not a [begin, end] pair");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1],"data_offsets":["0","1"]})", 1,
                        "are not non-negative integers");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1],"data_offsets":[-1,0]})", 1,
                        "are not non-negative integers");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1],"data_offsets":[0,1.0]})", 1,
                        "are not non-negative integers");
}

TEST_F(io_safetensors_malformed, unknown_dtype_is_a_format_error) {
  expect_entry_rejected(R"({"dtype":"F31","shape":[1],"data_offsets":[0,4]})", 4,
                        "tensor 'w': unknown dtype 'F31'");
  expect_entry_rejected(R"({"dtype":"f32","shape":[1],"data_offsets":[0,4]})", 4, "unknown dtype 'f32'");
}

TEST_F(io_safetensors_malformed, valid_dtypes_mlxd_lacks_are_unsupported) {
  expect_entry_rejected(R"({"dtype":"F64","shape":[2],"data_offsets":[0,16]})", 16,
                        "unsupported dtype F64 for tensor 'w'");
  expect_entry_rejected(R"({"dtype":"I8","shape":[2],"data_offsets":[0,2]})", 2,
                        "unsupported dtype I8 for tensor 'w'");
  expect_entry_rejected(R"({"dtype":"U16","shape":[3],"data_offsets":[0,6]})", 6, "unsupported dtype U16");
  expect_entry_rejected(R"({"dtype":"F4","shape":[2,2],"data_offsets":[0,2]})", 2, "unsupported dtype F4");
  // Their entries are still validated first.
  expect_entry_rejected(R"({"dtype":"F64","shape":[2],"data_offsets":[0,8]})", 16,
                        "hold 8 bytes but shape [2] of F64 needs 16");
  expect_entry_rejected(R"({"dtype":"F4","shape":[3],"data_offsets":[0,2]})", 2,
                        "shape [3] of F4 is not a whole number of bytes");
}

// MLX's packed weights: U32 words read as their little-endian bytes when asked, and refused otherwise.
TEST_F(io_safetensors_malformed, u32_loads_as_bytes_only_when_asked) {
  const auto path = dir_ / "packed.safetensors";
  const std::string words("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10", 16);
  test::write_bytes(path, safetensors_bytes(R"({"w":{"dtype":"U32","shape":[2,2],"data_offsets":[0,16]},)"
                                            R"("s":{"dtype":"U32","shape":[],"data_offsets":[16,20]}})",
                                            words + std::string("\xff\x00\x00\x80", 4)));
  for (const bool copy : {true, false}) {
    const safetensors_file f = load_safetensors(path, {.copy = copy, .u32_as_bytes = true});
    const array& w = f.tensors.at("w");
    EXPECT_EQ(w.type(), dtype::u8);
    EXPECT_EQ(w.shape(), (shape_t{2, 8}));
    EXPECT_EQ(std::string(w.data<char>(), 16), words);
    EXPECT_EQ(f.tensors.at("s").shape(), (shape_t{4}));
    EXPECT_EQ(f.tensors.at("s").to_vector<int64_t>(), (std::vector<int64_t>{255, 0, 0, 128}));
  }
  EXPECT_NE(test::io_error_of([&] { load_safetensors(path); }).find("unsupported dtype U32 for tensor 's'"),
            std::string::npos);
  // An empty tensor may have a last dimension that times 4 leaves int64.
  test::write_bytes(path, safetensors_bytes(R"({"w":{"dtype":"U32","shape":[0,4611686018427387904],)"
                                            R"("data_offsets":[0,0]}})",
                                            ""));
  EXPECT_NE(test::io_error_of([&] {
              load_safetensors(path, {.u32_as_bytes = true});
            }).find("tensor 'w': U32 dimension too large"),
            std::string::npos);
}

TEST_F(io_safetensors_malformed, bad_shape_dims) {
  expect_entry_rejected(R"({"dtype":"U8","shape":[-2],"data_offsets":[0,0]})", 0, "shape dim 0 is -2");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1,2.5],"data_offsets":[0,0]})", 0, "shape dim 1 is 2.5");
  expect_entry_rejected(R"({"dtype":"U8","shape":[1,2.0],"data_offsets":[0,2]})", 2, "shape dim 1 is 2.0");
  expect_entry_rejected(R"({"dtype":"U8","shape":["2"],"data_offsets":[0,2]})", 2, R"(shape dim 0 is "2")");
  expect_entry_rejected(R"({"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,0]})", 0,
                        "shape dim 0 is 9223372036854775808, not an integer in [0, 2^63)");
}

TEST_F(io_safetensors_malformed, shape_product_overflow) {
  expect_entry_rejected(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0,
                        "shape [4294967296,4294967296] has too many elements");
  // Empty, yet the non-zero dims alone overflow int64 strides.
  expect_entry_rejected(R"({"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]})", 0,
                        "has too many elements");
  // Fits in elements, overflows in bytes.
  expect_entry_rejected(R"({"dtype":"I64","shape":[4611686018427387904],"data_offsets":[0,0]})", 0,
                        "has too many elements");
}

TEST_F(io_safetensors_malformed, data_offsets_out_of_order_or_out_of_bounds) {
  expect_entry_rejected(R"({"dtype":"U8","shape":[0],"data_offsets":[8,4]})", 8,
                        "data_offsets [8, 4] have begin after end");
  expect_entry_rejected(R"({"dtype":"F32","shape":[6],"data_offsets":[0,24]})", 20,
                        "data_offsets [0, 24] run past the end of the 20-byte data section");
  expect_entry_rejected(R"({"dtype":"U8","shape":[0],"data_offsets":[0,18446744073709551615]})", 4,
                        "run past the end of the 4-byte data section");
}

TEST_F(io_safetensors_malformed, byte_length_does_not_match_the_shape) {
  expect_entry_rejected(R"({"dtype":"F32","shape":[2,3],"data_offsets":[0,12]})", 24,
                        "tensor 'w': data_offsets [0, 12] hold 12 bytes but shape [2,3] of F32 needs 24");
  expect_entry_rejected(R"({"dtype":"BF16","shape":[],"data_offsets":[0,4]})", 4,
                        "data_offsets [0, 4] hold 4 bytes but shape [] of BF16 needs 2");
  expect_entry_rejected(R"({"dtype":"I64","shape":[3,0],"data_offsets":[0,8]})", 8,
                        "hold 8 bytes but shape [3,0] of I64 needs 0");
}

TEST_F(io_safetensors_malformed, overlapping_tensors) {
  expect_rejected(safetensors_bytes(R"({"a":{"dtype":"I32","shape":[4],"data_offsets":[0,16]},)"
                                    R"("b":{"dtype":"I32","shape":[2],"data_offsets":[12,20]}})",
                                    test::filler(20)),
                  "tensor 'a' bytes [0, 16] overlap tensor 'b' bytes [12, 20]");
  expect_rejected(safetensors_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]},)"
                                    R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                                    test::filler(8)),
                  "overlap tensor");
  // An empty tensor inside another's range shares no byte, so it is fine.
  const auto path = dir_ / "ok.safetensors";
  test::write_bytes(path, safetensors_bytes(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                                            R"("e":{"dtype":"F32","shape":[0],"data_offsets":[2,2]}})",
                                            test::filler(4)));
  EXPECT_EQ(load_safetensors(path).tensors.at("e").shape(), (shape_t{0}));
}

TEST_F(io_safetensors_malformed, metadata_must_map_strings_to_strings) {
  expect_rejected(safetensors_bytes(R"({"__metadata__":["pt"]})", ""), "'__metadata__' is not a JSON object");
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"format":"pt","n":3}})", ""),
                  "'__metadata__' value of 'n' is not a string");
  expect_rejected(safetensors_bytes(R"({"__metadata__":{"nested":{}}})", ""),
                  "value of 'nested' is not a string");
}

TEST_F(io_safetensors_malformed, bool_bytes_other_than_zero_or_one) {
  expect_entry_rejected(R"({"dtype":"BOOL","shape":[3],"data_offsets":[0,3]})", 0, "run past the end");
  expect_rejected(safetensors_bytes(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                    std::string("\x01\x02\x00", 3)),
                  "tensor 'm': BOOL element 1 is byte 2, not 0 or 1");
}

TEST_F(io_safetensors_malformed, names_in_messages_are_escaped) {
  expect_rejected(safetensors_bytes(R"({"a\n\u0001b":{"dtype":"U8"}})", ""),
                  R"(tensor 'a\x0a\x01b': missing 'shape')");
}

TEST_F(io_safetensors_malformed, unreadable_paths) {
  const std::string missing = test::io_error_of([&] { load_safetensors(dir_ / "none.safetensors"); });
  EXPECT_NE(missing.find("cannot open: No such file or directory"), std::string::npos) << missing;
  const std::string folder = test::io_error_of([&] { load_safetensors(dir_.path()); });
  EXPECT_NE(folder.find("not a regular file"), std::string::npos) << folder;
}

}  // namespace
}  // namespace mlxd
