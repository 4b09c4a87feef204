// Encode throughput of mlxd's tokenizer on a corpus, single thread, and its time per byte on words without
// spaces of growing length (linear, not quadratic). Prints one JSON object; run_tokenizer_bench.sh runs it
// beside the reference tokenizer in node and computes the ratios.
// Usage: tokenizer_bench TOKENIZER_DIR CORPUS_FILE ROUNDS
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "mlxd/tokenizer/tokenizer.h"

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// FNV-1a over the ids, to check that both implementations produced the same sequence.
uint64_t hash_ids(const std::vector<mlxd::token_id>& ids) {
  uint64_t h = 1469598103934665603ull;
  for (const auto id : ids) {
    h ^= static_cast<uint32_t>(id);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s TOKENIZER_DIR CORPUS_FILE ROUNDS\n", argv[0]);
    return 2;
  }
  const auto tok = mlxd::tokenizer::load(argv[1]);
  std::ifstream in(argv[2], std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  const std::string corpus = std::move(bytes).str();
  const int rounds = std::stoi(argv[3]);

  // Best of `rounds`: the least disturbed by other work on a shared machine.
  double best = 1e30;
  std::vector<mlxd::token_id> ids;
  for (int r = 0; r < rounds; ++r) {
    const auto start = clock_type::now();
    ids = tok.encode(corpus, false);
    best = std::min(best, seconds_since(start));
  }

  nlohmann::json words = nlohmann::json::array();
  for (const size_t n : {size_t{1} << 14, size_t{1} << 16, size_t{1} << 18, size_t{1} << 20}) {
    const std::string word(n, 'a');
    const auto start = clock_type::now();
    const auto word_ids = tok.encode(word, false);
    const double s = seconds_since(start);
    words.push_back({{"bytes", n},
                     {"seconds", s},
                     {"ns_per_byte", s * 1e9 / static_cast<double>(n)},
                     {"tokens", word_ids.size()}});
  }
  const nlohmann::json out = {{"bytes", corpus.size()},
                              {"tokens", ids.size()},
                              {"ids_hash", std::to_string(hash_ids(ids))},
                              {"seconds", best},
                              {"mb_per_s", static_cast<double>(corpus.size()) / best / 1e6},
                              {"words", words}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}
