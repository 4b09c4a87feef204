// save_gguf then load_gguf gives back every metadata value and bit-exact tensors; the metadata API and the
// one-line rendering used by `mlxd inspect`.
#include <gtest/gtest.h>

#include "io_test_util.h"
#include "mlxd/io/gguf.h"

namespace mlxd {
namespace {

gguf_metadata every_type(std::mt19937& rng) {
  std::uniform_int_distribution<uint64_t> bits;
  gguf_metadata m;
  m.insert("general.architecture", "llama");
  m.insert("v.u8", static_cast<uint8_t>(bits(rng)));
  m.insert("v.i8", static_cast<int8_t>(bits(rng)));
  m.insert("v.u16", static_cast<uint16_t>(bits(rng)));
  m.insert("v.i16", static_cast<int16_t>(bits(rng)));
  m.insert("v.u32", static_cast<uint32_t>(bits(rng)));
  m.insert("v.i32", static_cast<int32_t>(bits(rng)));
  m.insert("v.f32", std::normal_distribution<float>(0.0f, 1e3f)(rng));
  m.insert("v.bool", true);
  m.insert("v.string", std::string("\xe2\x96\x81tok\0en", 9));
  m.insert("v.u64", bits(rng));
  m.insert("v.i64", static_cast<int64_t>(bits(rng)));
  m.insert("v.f64", std::normal_distribution<double>(0.0, 1e9)(rng));
  std::vector<std::string> tokens;
  for (int i = 0; i < 50; ++i) tokens.push_back("tok" + std::to_string(bits(rng) % 1000));
  m.insert("tokenizer.ggml.tokens", gguf_value::array_of(gguf_type::string, tokens));
  m.insert("v.empty", gguf_array{gguf_type::i64, {}});
  m.insert("v.nested", gguf_array{gguf_type::array,
                                  {gguf_value::array_of(gguf_type::f64, std::vector<double>{1.5, -2.0}),
                                   gguf_array{gguf_type::boolean, {true, false}}}});
  return m;
}

TEST(io_gguf_roundtrip, metadata_and_tensors_bit_exact) {
  for (const uint32_t alignment : {0u, 1u, 64u}) {
    SCOPED_TRACE(alignment);
    std::mt19937 rng(1234 + alignment);
    gguf_metadata m = every_type(rng);
    if (alignment != 0) m.insert("general.alignment", alignment);
    const std::map<std::string, array> tensors = {
        {"a.f32", test::random_array({3, 5}, dtype::f32, rng)},
        {"b.f16", test::random_array({7}, dtype::f16, rng)},
        {"c.bf16", test::random_array({2, 3, 1, 2}, dtype::bf16, rng)},
        {"d.i32", test::random_array({4}, dtype::i32, rng)},
        {"e.empty", test::random_array({0, 3}, dtype::f32, rng)},
        {"f.view", transpose(test::random_array({3, 4}, dtype::f32, rng))},
    };
    test::temp_dir dir;
    save_gguf(dir / "m.gguf", m, tensors);
    EXPECT_EQ(dir.list(), std::vector<std::string>{"m.gguf"});
    for (const bool copy : {true, false}) {
      const gguf_file f = load_gguf(dir / "m.gguf", {.copy = copy});
      EXPECT_EQ(f.version, 3u);
      EXPECT_EQ(f.alignment, alignment == 0 ? 32u : alignment);
      EXPECT_TRUE(f.metadata == m);
      ASSERT_EQ(f.tensors.size(), tensors.size());
      for (const auto& [name, a] : tensors) {
        SCOPED_TRACE(name);
        const array& b = f.tensors.at(name);
        EXPECT_EQ(b.type(), a.type());
        EXPECT_EQ(b.shape(), a.shape());
        EXPECT_EQ(test::bytes_of(b), test::bytes_of(a));
      }
    }
    const gguf_file f = load_gguf(dir / "m.gguf", {.read_tensors = false});
    EXPECT_EQ(f.tensor_infos[2].name, "c.bf16");
    EXPECT_EQ(f.tensor_infos[2].dims, (std::vector<uint64_t>{2, 1, 3, 2}));
    EXPECT_EQ(f.tensor_infos[2].type, ggml_type::bf16);
  }
}

TEST(io_gguf_roundtrip, scalar_is_written_with_one_dim) {
  test::temp_dir dir;
  save_gguf(dir / "s.gguf", {}, {{"s", array(2.5f)}});
  const gguf_file f = load_gguf(dir / "s.gguf");
  EXPECT_EQ(f.tensors.at("s").shape(), shape_t{1});
  EXPECT_EQ(f.tensors.at("s").item<float>(), 2.5f);
}

TEST(io_gguf_roundtrip, save_rejects_misuse_before_writing) {
  test::temp_dir dir;
  std::mt19937 rng(7);
  const auto rejects = [&](const gguf_metadata& m, const std::map<std::string, array>& t) {
    EXPECT_THROW(save_gguf(dir / "x.gguf", m, t), std::invalid_argument);
    EXPECT_TRUE(dir.list().empty());
  };
  rejects({}, {{"u", test::random_array({2}, dtype::u8, rng)}});
  rejects({}, {{"five", test::random_array({1, 1, 1, 1, 2}, dtype::f32, rng)}});
  rejects({}, {{std::string(65, 'n'), test::random_array({2}, dtype::f32, rng)}});
  gguf_metadata bad_alignment;
  bad_alignment.insert("general.alignment", uint32_t{48});
  rejects(bad_alignment, {});
  gguf_metadata mixed;
  mixed.insert("k", gguf_array{gguf_type::u8, {uint8_t{1}, uint16_t{2}}});
  rejects(mixed, {});
}

TEST(io_gguf_metadata, accessors_order_and_errors) {
  gguf_metadata m;
  EXPECT_TRUE(m.insert("b", uint32_t{7}));
  EXPECT_TRUE(m.insert("a", "text"));
  EXPECT_FALSE(m.insert("b", uint32_t{8}));
  m.set("b", int32_t{-3});
  m.set("c", 1.5f);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.entries()[0].first, "b");
  EXPECT_EQ(m.get_i32("b"), -3);
  EXPECT_EQ(m.get_string("a"), "text");
  EXPECT_EQ(m.find("zz"), nullptr);
  EXPECT_NE(test::io_error_of([&] { m.get_u32("b"); }).find("value is i32, not u32"), std::string::npos);
  EXPECT_NE(test::io_error_of([&] { m.at("zz"); }).find("no key 'zz'"), std::string::npos);
}

TEST(io_gguf_metadata, describe_for_listings) {
  EXPECT_EQ(describe(uint32_t{32}), "32");
  EXPECT_EQ(describe(int8_t{-5}), "-5");
  EXPECT_EQ(describe(true), "true");
  EXPECT_EQ(describe(0.5f), "0.5");
  EXPECT_EQ(describe("llama"), "'llama'");
  const std::vector<std::string> tokens = {"<s>", "a", "b", "c", "d", "e"};
  EXPECT_EQ(describe(gguf_value::array_of(gguf_type::string, tokens)),
            "array<string>[6] {'<s>', 'a', 'b', 'c', ...}");
  EXPECT_EQ(describe(gguf_array{gguf_type::f32, {}}), "array<f32>[0]");
  EXPECT_EQ(describe(gguf_array{gguf_type::array, {gguf_array{gguf_type::u8, {uint8_t{1}}}}}),
            "array<array>[1] {array<u8>[1] {1}}");
}

TEST(io_gguf_types, every_type_id_has_its_block_layout) {
  EXPECT_EQ(ggml_traits(ggml_type::q4_k).type_size, 144u);
  EXPECT_EQ(ggml_traits(ggml_type::q6_k).type_size, 210u);
  EXPECT_EQ(ggml_traits(ggml_type::q8_0).block_size, 32u);
  EXPECT_EQ(ggml_traits(ggml_type::iq4_xs).name, "IQ4_XS");
  int known = 0;
  for (uint32_t id = 0; id < 64; ++id) known += find_ggml_type(id) != nullptr;
  EXPECT_EQ(known, 32);
  EXPECT_EQ(find_ggml_type(4), nullptr);
  EXPECT_EQ(find_ggml_type(31), nullptr);
}

}  // namespace
}  // namespace mlxd
