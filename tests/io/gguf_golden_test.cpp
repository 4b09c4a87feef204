// Files written by gguf_make_golden.py, an independent writer, read back with the exact values it recorded.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "mlxd/io/gguf.h"

namespace mlxd {
namespace {

const std::filesystem::path data_dir = MLXD_IO_TEST_DATA_DIR;

nlohmann::json expected() {
  std::ifstream in(data_dir / "gguf_golden_expected.json");
  return nlohmann::json::parse(in);
}

std::vector<uint32_t> f32_bits(const array& a) {
  std::vector<uint32_t> bits(static_cast<size_t>(a.size()));
  std::memcpy(bits.data(), a.data<float>(), bits.size() * 4);
  return bits;
}

void expect_tensors(const gguf_file& file, const nlohmann::json& want) {
  ASSERT_EQ(file.tensors.size(), want.size());
  for (const auto& [name, w] : want.items()) {
    SCOPED_TRACE(name);
    const array& a = file.tensors.at(name);
    EXPECT_EQ(a.shape(), w["shape"].get<shape_t>());
    if (w.contains("f32_bits")) {
      ASSERT_EQ(a.type(), dtype::f32);
      EXPECT_EQ(f32_bits(a), w["f32_bits"].get<std::vector<uint32_t>>());
    } else {
      ASSERT_EQ(a.itemsize(), 2u);
      const auto* p = a.data<uint16_t>();
      EXPECT_EQ(std::vector<uint16_t>(p, p + a.size()), w["u16_bits"].get<std::vector<uint16_t>>());
    }
  }
}

TEST(io_gguf_golden, v3_metadata_of_every_type) {
  const gguf_file f = load_gguf(data_dir / "gguf_golden_v3.gguf", {.read_tensors = false});
  EXPECT_EQ(f.version, 3u);
  EXPECT_EQ(f.alignment, 64u);
  EXPECT_EQ(f.data_offset % 64, 0u);
  const gguf_metadata& m = f.metadata;
  ASSERT_EQ(m.size(), 20u);
  EXPECT_EQ(m.entries()[0].first, "general.architecture");
  EXPECT_EQ(m.entries()[19].first, "test.empty");
  EXPECT_EQ(m.get_string("general.architecture"), "llama");
  EXPECT_EQ(m.get_u32("general.alignment"), 64u);
  EXPECT_EQ(m.at("test.u8").as<uint8_t>(), 200);
  EXPECT_EQ(m.at("test.i8").as<int8_t>(), -100);
  EXPECT_EQ(m.at("test.u16").as<uint16_t>(), 60000);
  EXPECT_EQ(m.at("test.i16").as<int16_t>(), -30000);
  EXPECT_EQ(m.get_u32("test.u32"), 4000000000u);
  EXPECT_EQ(m.get_i32("test.i32"), -2000000000);
  EXPECT_EQ(m.get_f32("test.f32"), 3.25f);
  EXPECT_TRUE(m.get_bool("test.bool"));
  EXPECT_EQ(m.get_string("test.string"), "h\xc3\xa9llo w\xc3\xb6rld");
  EXPECT_EQ(m.get_u64("test.u64"), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(m.at("test.i64").as<int64_t>(), -(int64_t{1} << 62) - 3);
  EXPECT_EQ(m.at("test.f64").as<double>(), 2.718281828459045);
  EXPECT_EQ(m.get_array_of_strings("tokenizer.ggml.tokens"),
            (std::vector<std::string>{"<unk>", "<s>", "</s>", "\xe2\x96\x81the", "\xe2\x96\x81hello",
                                      "\xc3\xa9t\xc3\xa9", "<0x0A>", ""}));
  EXPECT_EQ(m.at("tokenizer.ggml.scores").as_vector_of<float>(),
            (std::vector<float>{0.0f, -1.5f, -2.5f, -3.0f, -4.0f, -5.0f, -6.0f, -7.0f}));
  EXPECT_EQ(m.at("tokenizer.ggml.token_type").as_vector_of<int32_t>(),
            (std::vector<int32_t>{2, 3, 3, 1, 1, 1, 6, 1}));
  const gguf_array& nested = m.get_array("test.nested");
  EXPECT_EQ(nested.type, gguf_type::array);
  ASSERT_EQ(nested.values.size(), 3u);
  EXPECT_EQ(nested.values[0].as_vector_of<uint16_t>(), (std::vector<uint16_t>{1, 2}));
  EXPECT_EQ(nested.values[1].as_vector_of<uint16_t>(), (std::vector<uint16_t>{3}));
  EXPECT_EQ(nested.values[2].as<gguf_array>(), (gguf_array{gguf_type::u16, {}}));
  EXPECT_EQ(m.at("test.bools").as_vector_of<bool>(), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(m.get_array("test.empty"), (gguf_array{gguf_type::f64, {}}));
  EXPECT_TRUE(f.tensors.empty());
}

TEST(io_gguf_golden, v3_tensor_infos) {
  const gguf_file f = load_gguf(data_dir / "gguf_golden_v3.gguf", {.read_tensors = false});
  ASSERT_EQ(f.tensor_infos.size(), 5u);
  const gguf_tensor_info& q8 = f.tensor_infos[3];
  EXPECT_EQ(q8.name, "blk.0.attn_q.weight");
  EXPECT_EQ(q8.dims, (std::vector<uint64_t>{64, 2}));
  EXPECT_EQ(q8.shape, (shape_t{2, 64}));
  EXPECT_EQ(q8.type, ggml_type::q8_0);
  EXPECT_EQ(q8.type_name, "Q8_0");
  EXPECT_EQ(q8.nbytes, 4u * 34u);
  EXPECT_EQ(f.tensor_infos[4].type_name, "Q4_0");
  EXPECT_EQ(f.tensor_infos[4].nbytes, 3u * 18u);
  EXPECT_EQ(f.tensor_infos[4].offset, 0u);  // the script writes data in reverse order
  for (const auto& t : f.tensor_infos) EXPECT_EQ(t.offset % 64, 0u) << t.name;
}

TEST(io_gguf_golden, v3_tensors_dequantized_in_both_load_modes) {
  for (const bool copy : {true, false}) {
    SCOPED_TRACE(copy ? "copy" : "mmap");
    const gguf_file f = load_gguf(data_dir / "gguf_golden_v3.gguf", {.dequantize = true, .copy = copy});
    expect_tensors(f, expected()["v3"]);
    EXPECT_EQ(f.tensors.at("token_embd.weight").buffer()->owns_memory(), copy);
    EXPECT_TRUE(f.tensors.at("blk.0.attn_q.weight").buffer()->owns_memory());
  }
}

TEST(io_gguf_golden, quantized_tensors_are_listed_but_not_loaded_without_dequantize) {
  const gguf_file f = load_gguf(data_dir / "gguf_golden_v3.gguf");
  EXPECT_EQ(f.tensor_infos.size(), 5u);
  EXPECT_EQ(f.tensors.size(), 3u);
  EXPECT_FALSE(f.tensors.contains("blk.0.attn_q.weight"));
  EXPECT_EQ(f.tensors.at("blk.0.attn_k.weight").type(), dtype::bf16);
  EXPECT_EQ(f.tensors.at("output_norm.weight").type(), dtype::f16);
}

TEST(io_gguf_golden, v2_file) {
  const gguf_file f = load_gguf(data_dir / "gguf_golden_v2.gguf");
  EXPECT_EQ(f.version, 2u);
  EXPECT_EQ(f.alignment, 32u);
  EXPECT_EQ(f.metadata.get_u32("llama.block_count"), 1u);
  expect_tensors(f, expected()["v2"]);
}

}  // namespace
}  // namespace mlxd
