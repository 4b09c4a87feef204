// --mmap: a model whose weight files are mapped computes the very logits of one read into memory, and its
// weights really are views of the mapped file.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "mlxd/core/ops.h"
#include "mlxd/models/llama.h"

namespace mlxd::models {
namespace {

// Lines of /proc/self/maps that map `file`.
int mappings_of(const std::filesystem::path& file) {
  const std::string name = std::filesystem::canonical(file).string();
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.size() >= name.size() && line.compare(line.size() - name.size(), name.size(), name) == 0) ++n;
  }
  return n;
}

array logits_of(const llama_model& m) {
  const std::vector<int32_t> tokens = {3, 17, 5, 29, 0, 11, 38};
  kv_cache cache = m.make_cache(static_cast<int>(tokens.size()));
  return contiguous(m.forward(tokens, cache));
}

struct mmap_case {
  std::string path;  // what load_llama is given
  std::string file;  // the weight file that gets mapped
};

class MappedModel : public ::testing::TestWithParam<mmap_case> {};

TEST_P(MappedModel, EqualsTheModelReadIntoMemoryBitForBit) {
  const std::string path = std::string(MLXD_GOLDEN_DIR) + "/" + GetParam().path;
  const std::string file = std::string(MLXD_GOLDEN_DIR) + "/" + GetParam().file;
  ASSERT_EQ(mappings_of(file), 0);
  std::optional<array> read_logits;
  {
    const llama_model read = load_llama(path);
    EXPECT_EQ(mappings_of(file), 0) << "the default load keeps no mapping of " << file;
    read_logits = logits_of(read);
  }
  std::optional<array> mapped_logits;
  {
    const llama_model mapped = load_llama(path, {.mmap = true});
    EXPECT_GT(mappings_of(file), 0) << file << " is not mapped while the model lives";
    mapped_logits = logits_of(mapped);
  }
  EXPECT_EQ(mappings_of(file), 0) << "the mapping outlives the model";
  ASSERT_EQ(read_logits->shape(), mapped_logits->shape());
  EXPECT_EQ(std::memcmp(read_logits->data<float>(), mapped_logits->data<float>(), read_logits->nbytes()), 0);
}

INSTANTIATE_TEST_SUITE_P(Files, MappedModel,
                         ::testing::Values(mmap_case{"llama_gqa", "llama_gqa/model.safetensors"},
                                           mmap_case{"llama_gqa/model.gguf", "llama_gqa/model.gguf"},
                                           mmap_case{"llama_quant/model.gguf", "llama_quant/model.gguf"}));

}  // namespace
}  // namespace mlxd::models
