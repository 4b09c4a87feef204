// Reads a file written by an independent implementation (make_golden_safetensors.py: numpy + json + struct)
// and checks every value against the expectations that script saved beside it.
#include <cmath>
#include <cstring>
#include <limits>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io_test_util.h"
#include "mlxd/io/safetensors.h"

namespace mlxd {
namespace {

const std::filesystem::path data_dir = MLXD_IO_TEST_DATA_DIR;

// The element bit patterns of a float array, widened to uint64.
std::vector<uint64_t> bits_of(const array& a) {
  const std::vector<uint8_t> bytes = test::bytes_of(a);
  std::vector<uint64_t> bits;
  for (size_t i = 0; i < bytes.size(); i += a.itemsize()) {
    uint64_t b = 0;
    std::memcpy(&b, bytes.data() + i, a.itemsize());  // little-endian host
    bits.push_back(b);
  }
  return bits;
}

TEST(io_safetensors_golden, reads_an_independently_written_file_exactly) {
  const auto expected = nlohmann::json::parse(test::read_bytes(data_dir / "golden_expected.json"));
  const std::map<std::string, dtype> dtypes = {
      {"F32", dtype::f32}, {"F16", dtype::f16}, {"BF16", dtype::bf16},   {"I32", dtype::i32},
      {"I64", dtype::i64}, {"U8", dtype::u8},   {"BOOL", dtype::boolean}};
  for (const bool copy : {true, false}) {
    SCOPED_TRACE(copy ? "copy" : "mmap");
    const auto loaded = load_safetensors(data_dir / "golden.safetensors", {.copy = copy});
    using string_map = std::map<std::string, std::string>;
    EXPECT_EQ(loaded.metadata, expected.at("metadata").get<string_map>());
    const auto& tensors = expected.at("tensors");
    ASSERT_EQ(loaded.tensors.size(), tensors.size());
    for (const auto& [name, want] : tensors.items()) {
      SCOPED_TRACE(name);
      ASSERT_TRUE(loaded.tensors.contains(name));
      const array& a = loaded.tensors.at(name);
      EXPECT_EQ(a.type(), dtypes.at(want.at("dtype").get<std::string>()));
      EXPECT_EQ(a.shape(), want.at("shape").get<shape_t>());
      if (want.contains("bits")) {
        EXPECT_EQ(bits_of(a), want.at("bits").get<std::vector<uint64_t>>());
      } else {
        EXPECT_EQ(a.to_vector<int64_t>(), want.at("values").get<std::vector<int64_t>>());
      }
    }
  }
}

TEST(io_safetensors_golden, spot_values) {
  // A few values written out by hand, so a regenerated golden file cannot silently change the meaning.
  const auto loaded = load_safetensors(data_dir / "golden.safetensors").tensors;
  EXPECT_EQ(loaded.at("big").to_vector<int64_t>(),
            (std::vector<int64_t>{-(int64_t{1} << 62) + 12345, (int64_t{1} << 53) + 1, 7, -1}));
  EXPECT_EQ(loaded.at("mask").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0, 1, 1}));
  const std::vector<float> half = loaded.at("half").to_vector<float>();
  EXPECT_TRUE(half[0] == 0.0f && std::signbit(half[0]));
  EXPECT_EQ(half[1], std::numeric_limits<float>::infinity());
  EXPECT_EQ(half[2], 0x1p-24f);  // the smallest f16 subnormal
  EXPECT_EQ(half[3], 65504.0f);
  EXPECT_EQ(loaded.at("empty").shape(), (shape_t{0, 3}));
  EXPECT_EQ(loaded.at("scalar").ndim(), 0);
}

}  // namespace
}  // namespace mlxd
