// Round trips through save_safetensors and load_safetensors, and the byte layout the writer produces.
#include <algorithm>
#include <cstring>
#include <random>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {
namespace {

using test::bytes_of;
using test::random_array;
using test::temp_dir;

std::vector<dtype> every_dtype() {
  std::vector<dtype> types;
  for (int i = 0; i < n_dtypes; ++i) {
    if (!is_quantized(static_cast<dtype>(i))) types.push_back(static_cast<dtype>(i));
  }
  return types;
}

// Tensors of every dtype in several shapes: a matrix, a 0-d scalar, an empty tensor, and an odd length that
// would misalign whatever follows it if the writer did not order by element size.
std::map<std::string, array> tensors_of_every_dtype(std::mt19937& rng) {
  std::map<std::string, array> tensors;
  for (const dtype t : every_dtype()) {
    const std::string prefix(name(t));
    tensors.emplace(prefix + ".matrix", random_array({3, 5}, t, rng));
    tensors.emplace(prefix + ".scalar", random_array({}, t, rng));
    tensors.emplace(prefix + ".empty", random_array({2, 0, 3}, t, rng));
    tensors.emplace(prefix + ".odd", random_array({7}, t, rng));
  }
  return tensors;
}

// The JSON header of a safetensors file's bytes.
nlohmann::json header_of(const std::string& file) {
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file.at(static_cast<size_t>(i)));
  return nlohmann::json::parse(file.substr(8, n));
}

void expect_same_tensors(const std::map<std::string, array>& expected,
                         const std::map<std::string, array>& got) {
  ASSERT_EQ(expected.size(), got.size());
  for (const auto& [name, want] : expected) {
    SCOPED_TRACE(name);
    const auto it = got.find(name);
    ASSERT_NE(it, got.end());
    EXPECT_EQ(it->second.type(), want.type());
    EXPECT_EQ(it->second.shape(), want.shape());
    EXPECT_TRUE(it->second.is_contiguous());
    EXPECT_EQ(bytes_of(it->second), bytes_of(want));
  }
}

TEST(io_safetensors_roundtrip, every_dtype_in_both_load_modes) {
  temp_dir dir;
  std::mt19937 rng(1234);
  const auto tensors = tensors_of_every_dtype(rng);
  const std::map<std::string, std::string> metadata = {{"format", "pt"},
                                                       {"note", "caf\xc3\xa9 \xe2\x9c\x93"}};
  save_safetensors(dir / "m.safetensors", tensors, metadata);
  for (const bool copy : {true, false}) {
    SCOPED_TRACE(copy ? "copy" : "mmap");
    const safetensors_file loaded = load_safetensors(dir / "m.safetensors", {.copy = copy});
    expect_same_tensors(tensors, loaded.tensors);
    EXPECT_EQ(loaded.metadata, metadata);
  }
}

TEST(io_safetensors_roundtrip, random_values_survive_bit_exactly) {
  // Different seeds give different files; values are compared bit for bit.
  temp_dir dir;
  for (const unsigned seed : {1u, 2u, 3u}) {
    std::mt19937 rng(seed);
    std::map<std::string, array> tensors = {{"w", random_array({4, 9}, dtype::f32, rng)},
                                            {"h", random_array({33}, dtype::f16, rng)},
                                            {"b", random_array({2, 2, 2}, dtype::bf16, rng)}};
    save_safetensors(dir / "s.safetensors", tensors);
    expect_same_tensors(tensors, load_safetensors(dir / "s.safetensors").tensors);
  }
}

TEST(io_safetensors_roundtrip, non_contiguous_views_are_written_row_major) {
  temp_dir dir;
  std::mt19937 rng(7);
  const array base = random_array({4, 6}, dtype::f32, rng);
  const array ints = random_array({5, 8}, dtype::i64, rng);
  std::map<std::string, array> views = {
      {"transposed", transpose(base)},                                // [6, 4]
      {"strided", slice(ints, {0, 1}, {5, 8}, {2, 3})},               // [3, 3]
      {"broadcast", broadcast_to(slice_axis(base, 0, 1, 2), {3, 6})}  // [3, 6], stride 0 rows
  };
  for (const auto& [name, v] : views) ASSERT_FALSE(v.is_contiguous()) << name;
  save_safetensors(dir / "v.safetensors", views);
  const auto loaded = load_safetensors(dir / "v.safetensors").tensors;
  expect_same_tensors(views, loaded);
  EXPECT_EQ(loaded.at("transposed").shape(), (shape_t{6, 4}));
  EXPECT_EQ(loaded.at("transposed").to_vector<float>(), transpose(base).to_vector<float>());
}

TEST(io_safetensors_roundtrip, empty_file_and_no_metadata) {
  temp_dir dir;
  save_safetensors(dir / "e.safetensors", std::map<std::string, array>{});
  const auto loaded = load_safetensors(dir / "e.safetensors");
  EXPECT_TRUE(loaded.tensors.empty());
  EXPECT_TRUE(loaded.metadata.empty());
  EXPECT_EQ(test::read_bytes(dir / "e.safetensors"), test::le64(8) + "{}      ");
}

// Checks the written bytes against the spec by hand, without the reader under test.
TEST(io_safetensors_roundtrip, written_bytes_follow_the_spec) {
  temp_dir dir;
  std::mt19937 rng(99);
  const auto tensors = tensors_of_every_dtype(rng);
  save_safetensors(dir / "m.safetensors", tensors, {{"format", "pt"}});
  const std::string file = test::read_bytes(dir / "m.safetensors");

  ASSERT_GE(file.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(file[static_cast<size_t>(i)]);
  ASSERT_LE(8 + n, file.size());
  EXPECT_EQ((8 + n) % 8, 0u);
  const std::string header_text = file.substr(8, n);
  EXPECT_EQ(header_text.front(), '{');
  const auto header = nlohmann::json::parse(header_text);  // trailing spaces are allowed JSON whitespace
  EXPECT_EQ(header_text.find_last_not_of(' '), header_text.find_last_of('}'));
  ASSERT_TRUE(header.is_object());
  EXPECT_EQ(header.at("__metadata__"), (nlohmann::json{{"format", "pt"}}));
  ASSERT_EQ(header.size(), tensors.size() + 1);

  const std::string data = file.substr(8 + n);
  struct range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<range> ranges;
  for (const auto& [name, want] : tensors) {
    SCOPED_TRACE(name);
    const auto& entry = header.at(name);
    const std::map<dtype, std::string> spec_names = {
        {dtype::f32, "F32"}, {dtype::f16, "F16"}, {dtype::bf16, "BF16"},   {dtype::i32, "I32"},
        {dtype::i64, "I64"}, {dtype::u8, "U8"},   {dtype::boolean, "BOOL"}};
    EXPECT_EQ(entry.at("dtype").get<std::string>(), spec_names.at(want.type()));
    EXPECT_EQ(entry.at("shape").get<shape_t>(), want.shape());
    const auto offsets = entry.at("data_offsets").get<std::vector<uint64_t>>();
    ASSERT_EQ(offsets.size(), 2u);
    EXPECT_EQ(offsets[1] - offsets[0], want.nbytes());
    EXPECT_EQ(offsets[0] % want.itemsize(), 0u) << "tensor misaligned in the data section";
    ASSERT_LE(offsets[1], data.size());
    const std::vector<uint8_t> stored(data.begin() + static_cast<ptrdiff_t>(offsets[0]),
                                      data.begin() + static_cast<ptrdiff_t>(offsets[1]));
    EXPECT_EQ(stored, bytes_of(want));
    ranges.push_back({offsets[0], offsets[1], name});
  }
  std::sort(ranges.begin(), ranges.end(), [](const range& a, const range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t expected_begin = 0;
  for (const range& r : ranges) {
    EXPECT_EQ(r.begin, expected_begin) << r.name << ": offsets must be contiguous from 0";
    expected_begin = r.end;
  }
  EXPECT_EQ(expected_begin, data.size()) << "data section must end with the last tensor";
}

TEST(io_safetensors_roundtrip, mmap_mode_shares_the_mapping_and_copy_mode_owns_memory) {
  temp_dir dir;
  std::mt19937 rng(5);
  const std::map<std::string, array> tensors = {{"a", random_array({16, 3}, dtype::f32, rng)},
                                                {"b", random_array({10}, dtype::f32, rng)},
                                                {"c", random_array({5}, dtype::i64, rng)}};
  save_safetensors(dir / "m.safetensors", tensors);
  const auto header = header_of(test::read_bytes(dir / "m.safetensors"));
  const auto offset_of = [&](const char* name) {
    return header.at(name).at("data_offsets")[0].get<int64_t>();
  };

  const auto mapped = load_safetensors(dir / "m.safetensors", {.copy = false}).tensors;
  for (const auto& [name, a] : mapped) EXPECT_FALSE(a.buffer()->owns_memory()) << name;
  // Zero-copy views of one mapping sit exactly as far apart in memory as in the file.
  const auto* a_ptr = static_cast<const char*>(mapped.at("a").raw_data());
  EXPECT_EQ(static_cast<const char*>(mapped.at("b").raw_data()) - a_ptr, offset_of("b") - offset_of("a"));
  EXPECT_EQ(static_cast<const char*>(mapped.at("c").raw_data()) - a_ptr, offset_of("c") - offset_of("a"));

  const auto copied = load_safetensors(dir / "m.safetensors").tensors;
  for (const auto& [name, a] : copied) EXPECT_TRUE(a.buffer()->owns_memory()) << name;
  expect_same_tensors(tensors, copied);
}

TEST(io_safetensors_roundtrip, mmap_views_outlive_the_file_struct_and_the_file) {
  temp_dir dir;
  std::mt19937 rng(6);
  const array want = random_array({64, 17}, dtype::bf16, rng);
  save_safetensors(dir / "m.safetensors", std::map<std::string, array>{{"w", want}});
  array kept;
  {
    const auto loaded = load_safetensors(dir / "m.safetensors", {.copy = false});
    kept = loaded.tensors.at("w");
  }
  std::filesystem::remove(dir / "m.safetensors");  // the mapping keeps the unlinked file's pages
  EXPECT_EQ(bytes_of(kept), bytes_of(want));
  EXPECT_EQ(kept.to_vector<float>(), want.to_vector<float>());
}

TEST(io_safetensors_roundtrip, mmap_mode_copies_a_misaligned_tensor) {
  // An unpadded header and a 3-byte U8 first leave the F32 misaligned in the mapping, so it must be copied;
  // the U8 stays a view.
  temp_dir dir;
  const std::string header = R"({"u":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},)"
                             R"("f":{"dtype":"F32","shape":[2],"data_offsets":[3,11]}})";
  const float values[2] = {1.5f, -2.25f};
  std::string data = "\x01\x02\x03";
  data.append(reinterpret_cast<const char*>(values), sizeof(values));
  test::write_bytes(dir / "odd.safetensors", test::safetensors_bytes(header, data));
  ASSERT_NE((8 + header.size() + 3) % 4, 0u);

  const auto loaded = load_safetensors(dir / "odd.safetensors", {.copy = false}).tensors;
  EXPECT_FALSE(loaded.at("u").buffer()->owns_memory());
  EXPECT_TRUE(loaded.at("f").buffer()->owns_memory());
  EXPECT_EQ(loaded.at("f").to_vector<float>(), (std::vector<float>{1.5f, -2.25f}));
  EXPECT_EQ(loaded.at("u").to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
}

TEST(io_safetensors_roundtrip, holes_between_tensors_are_accepted) {
  temp_dir dir;
  const std::string header = R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]},)"
                             R"("b":{"dtype":"I32","shape":[2],"data_offsets":[16,24]}})";
  const int32_t words[8] = {-1, 42, -1, -1, -7, 9, -1, -1};
  const std::string data(reinterpret_cast<const char*>(words), sizeof(words));
  test::write_bytes(dir / "h.safetensors", test::safetensors_bytes(header, data));
  for (const bool copy : {true, false}) {
    const auto loaded = load_safetensors(dir / "h.safetensors", {.copy = copy}).tensors;
    EXPECT_EQ(loaded.at("a").to_vector<int32_t>(), (std::vector<int32_t>{42}));
    EXPECT_EQ(loaded.at("b").to_vector<int32_t>(), (std::vector<int32_t>{-7, 9}));
  }
}

TEST(io_safetensors_roundtrip, misuse_throws_invalid_argument_before_writing) {
  temp_dir dir;
  const std::map<std::string, array> reserved = {{"__metadata__", array(1.0f)}};
  const std::map<std::string, array> not_utf8 = {{"bad\xff", array(1.0f)}};
  const std::map<std::string, array> fine = {{"w", array(1.0f)}};
  const std::map<std::string, std::string> bad_metadata = {{"k", "\xc3"}};
  EXPECT_THROW(save_safetensors(dir / "x.safetensors", reserved), std::invalid_argument);
  EXPECT_THROW(save_safetensors(dir / "x.safetensors", not_utf8), std::invalid_argument);
  EXPECT_THROW(save_safetensors(dir / "x.safetensors", fine, bad_metadata), std::invalid_argument);
  EXPECT_TRUE(dir.list().empty());
}

}  // namespace
}  // namespace mlxd
