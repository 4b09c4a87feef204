// Quantized tensors against an independent NumPy implementation of ggml's quantizers (ggml_quants.py, via
// gguf_make_quant_golden.py): mlxd reads the file's blocks unchanged, dequantizes them to the same f32 bits,
// quantizes the same source values to the same bytes, and writes files that read back identically.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <fstream>
#include <iterator>

#include "io_test_util.h"
#include "mlxd/core/ops.h"
#include "mlxd/io/gguf.h"

namespace mlxd {
namespace {

const std::filesystem::path golden = std::filesystem::path(MLXD_IO_TEST_DATA_DIR) / "gguf_quant_golden.gguf";

const std::pair<const char*, dtype> types[] = {
    {"q8_0", dtype::q8_0}, {"q4_0", dtype::q4_0}, {"q4_k", dtype::q4_k}, {"q6_k", dtype::q6_k}};

std::vector<uint32_t> bits(const array& a) {
  const auto v = a.to_vector<float>();
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * 4);
  return out;
}

TEST(io_gguf_quant, blocks_load_unchanged_and_dequantize_to_the_reference_bits) {
  for (const bool copy : {true, false}) {
    SCOPED_TRACE(copy ? "copy" : "mmap");
    const gguf_file f = load_gguf(golden, {.keep_quantized = true, .copy = copy});
    for (const auto& [key, t] : types) {
      SCOPED_TRACE(key);
      const array& q = f.tensors.at(std::string(key) + ".quantized");
      ASSERT_EQ(q.type(), t);
      const gguf_tensor_info& info =
          *std::find_if(f.tensor_infos.begin(), f.tensor_infos.end(),
                        [&](const auto& i) { return i.name == std::string(key) + ".quantized"; });
      EXPECT_EQ(q.nbytes(), info.nbytes);
      EXPECT_EQ(q.buffer()->owns_memory(), copy);
      EXPECT_EQ(bits(astype(q, dtype::f32)), bits(f.tensors.at(std::string(key) + ".dequantized")));
    }
  }
  const gguf_file deq = load_gguf(golden, {.dequantize = true});
  for (const auto& [key, t] : types) {
    const array& a = deq.tensors.at(std::string(key) + ".quantized");
    ASSERT_EQ(a.type(), dtype::f32);
    EXPECT_EQ(bits(a), bits(deq.tensors.at(std::string(key) + ".dequantized"))) << key;
  }
}

TEST(io_gguf_quant, quantizing_the_source_gives_ggmls_bytes) {
  const gguf_file f = load_gguf(golden, {.keep_quantized = true});
  for (const auto& [key, t] : types) {
    const array mine = astype(f.tensors.at(std::string(key) + ".source"), t);
    const array& want = f.tensors.at(std::string(key) + ".quantized");
    const auto* a = static_cast<const uint8_t*>(mine.raw_data());
    const auto* b = static_cast<const uint8_t*>(want.raw_data());
    ASSERT_EQ(mine.nbytes(), want.nbytes());
    for (size_t i = 0; i < want.nbytes(); ++i) ASSERT_EQ(a[i], b[i]) << key << " byte " << i;
  }
}

TEST(io_gguf_quant, written_files_read_back_identically) {
  const gguf_file f = load_gguf(golden, {.keep_quantized = true});
  test::temp_dir dir;
  save_gguf(dir / "copy.gguf", f.metadata, f.tensors);
  const gguf_file back = load_gguf(dir / "copy.gguf", {.keep_quantized = true});
  ASSERT_EQ(back.tensors.size(), f.tensors.size());
  for (const auto& [name, a] : f.tensors) {
    EXPECT_TRUE(array_equal(back.tensors.at(name), a)) << name;
    EXPECT_EQ(back.tensors.at(name).type(), a.type()) << name;
  }
  for (const auto& info : back.tensor_infos) {
    if (info.name.ends_with(".quantized")) {
      std::string want = info.name.substr(0, 4);
      for (char& c : want) c = static_cast<char>(std::toupper(c));
      EXPECT_EQ(info.type_name, want);
    }
  }
  // Both files lay the tensors out the same way (name order, 32-byte alignment), so even the bytes agree.
  auto read = [](const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  save_gguf(dir / "again.gguf", back.metadata, back.tensors);
  EXPECT_EQ(read(dir / "copy.gguf"), read(dir / "again.gguf"));
}

}  // namespace
}  // namespace mlxd
