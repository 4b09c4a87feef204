// Packing and padding: segment and position ids, targets that never cross a segment border, every token
// placed exactly once, attention within segments; and a loader whose cursor resumes the same batches.
#include <gtest/gtest.h>

#include <random>

#include "data_test_util.h"
#include "mlxd/data/batch.h"

namespace mlxd::data {
namespace {

// Samples of seeded random lengths (1..max_len) with distinct token values and a random loss mask.
std::vector<sample> random_samples(size_t n, int max_len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<sample> out(n);
  int32_t next_id = 10;
  for (auto& s : out) {
    const int len = std::uniform_int_distribution<int>(1, max_len)(rng);
    for (int i = 0; i < len; ++i) {
      s.ids.push_back(next_id++);
      s.loss.push_back(static_cast<uint8_t>(rng() % 4 != 0));
    }
  }
  return out;
}

// Reads the segments back out of batches, in order: (tokens, targets) per segment.
std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> segments(
    const std::vector<batch>& batches) {
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  for (const auto& b : batches) {
    for (int64_t r = 0; r < b.rows; ++r) {
      int32_t current = 0;
      for (int64_t t = 0; t < b.seq_len; ++t) {
        const size_t at = static_cast<size_t>(r * b.seq_len + t);
        const int32_t seg = b.segment_ids[at];
        if (seg == 0) {
          EXPECT_EQ(b.targets[at], ignore_label);
          EXPECT_EQ(b.inputs[at], 99);  // pad_id
          continue;
        }
        if (seg != current) {
          EXPECT_EQ(seg, current + 1);  // numbered 1, 2, ... within the row
          EXPECT_EQ(b.position_ids[at], 0);
          out.emplace_back();
          current = seg;
        } else {
          EXPECT_EQ(b.position_ids[at], b.position_ids[at - 1] + 1);
        }
        out.back().first.push_back(b.inputs[at]);
        out.back().second.push_back(b.targets[at]);
      }
    }
  }
  return out;
}

void check_batches(const std::vector<sample>& samples, const std::vector<batch>& batches,
                   const batch_options& o) {
  // Concatenated segments give back every token once, in order.
  std::vector<int32_t> placed, expected;
  for (const auto& s : samples) expected.insert(expected.end(), s.ids.begin(), s.ids.end());
  const auto segs = segments(batches);
  for (const auto& [tokens, targets] : segs) {
    placed.insert(placed.end(), tokens.begin(), tokens.end());
    ASSERT_LE(tokens.size(), static_cast<size_t>(o.seq_len));
    // Each target is the next token of the segment when that token has loss; the last has none.
    EXPECT_EQ(targets.back(), ignore_label);
  }
  EXPECT_EQ(placed, expected);
  // Targets by token value: the token after it in the same sample, with loss, when in the same segment.
  std::map<int32_t, std::pair<const sample*, size_t>> where;
  for (const auto& s : samples) {
    for (size_t i = 0; i < s.ids.size(); ++i) where[s.ids[i]] = {&s, i};
  }
  int64_t n_targets = 0;
  for (const auto& [tokens, targets] : segs) {
    for (size_t k = 0; k + 1 < tokens.size(); ++k) {
      const auto [s, i] = where[tokens[k]];
      ASSERT_EQ(s->ids[i + 1], tokens[k + 1]);  // segments hold consecutive tokens of one sample
      EXPECT_EQ(targets[k], s->loss[i + 1] ? s->ids[i + 1] : ignore_label);
    }
    for (int32_t t : targets) n_targets += t != ignore_label;
  }
  int64_t counted = 0;
  for (const auto& b : batches) counted += b.n_targets;
  EXPECT_EQ(counted, n_targets);
  for (size_t i = 0; i + 1 < batches.size(); ++i) EXPECT_EQ(batches[i].rows, o.rows);
}

TEST(Batch, PackingHandExample) {
  const std::vector<sample> s = {{{1, 2, 3}, {0, 1, 1}}, {{4, 5}, {1, 1}}, {{6, 7, 8, 9}, {0, 0, 1, 1}}};
  const auto b = make_batches(s, {.rows = 2, .seq_len = 6, .pack = true, .pad_id = 0});
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].inputs, (std::vector<int32_t>{1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 0, 0}));
  EXPECT_EQ(b[0].segment_ids, (std::vector<int32_t>{1, 1, 1, 2, 2, 0, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(b[0].position_ids, (std::vector<int32_t>{0, 1, 2, 0, 1, 0, 0, 1, 2, 3, 0, 0}));
  // 3 does not predict 4 (another sample); 6 has no loss on 7.
  EXPECT_EQ(b[0].targets, (std::vector<int32_t>{2, 3, -100, 5, -100, -100, -100, 8, 9, -100, -100, -100}));
  EXPECT_EQ(b[0].n_targets, 5);
  EXPECT_TRUE(b[0].attends(0, 2, 0));
  EXPECT_FALSE(b[0].attends(0, 3, 2));  // across samples
  EXPECT_FALSE(b[0].attends(0, 1, 2));  // the future
  EXPECT_FALSE(b[0].attends(0, 5, 5));  // padding
}

TEST(Batch, PackingAndPaddingKeepEveryToken) {
  for (bool pack : {true, false}) {
    for (int64_t seq_len : {1, 5, 16, 64}) {
      const batch_options o{.rows = 3, .seq_len = seq_len, .pack = pack, .pad_id = 99};
      const auto samples = random_samples(40, 40, static_cast<uint32_t>(seq_len));
      const auto batches = make_batches(samples, o);
      check_batches(samples, batches, o);
      if (!pack) {  // one sample (or one piece of a long one) per row
        for (const auto& b : batches) {
          for (int64_t r = 0; r < b.rows; ++r)
            EXPECT_EQ(b.segment_ids[static_cast<size_t>(r * b.seq_len)], 1);
        }
      }
    }
  }
}

TEST(Batch, PackingFillsRows) {
  const auto samples = random_samples(200, 12, 3);
  const auto batches = make_batches(samples, {.rows = 4, .seq_len = 64, .pack = true, .pad_id = 99});
  size_t tokens = 0, cells = 0;
  for (const auto& s : samples) tokens += s.ids.size();
  for (const auto& b : batches) cells += b.inputs.size();
  EXPECT_GT(static_cast<double>(tokens) / static_cast<double>(cells), 0.85);
  EXPECT_THROW(make_batches(samples, {.rows = 0}), std::invalid_argument);
}

TEST(Batch, LoaderCursorResumesTheSameBatches) {
  test::temp_dir dir;
  std::string a, b;
  std::mt19937 rng(1);
  const std::vector<std::string> words = {"In",       " the",    " beginning", " God",
                                          " created", " heaven", " earth",     "."};
  for (int i = 0; i < 120; ++i) {
    std::string line;
    for (int k = std::uniform_int_distribution<int>(1, 30)(rng); k > 0; --k)
      line += words[rng() % words.size()];
    (i % 2 ? a : b) += "{\"text\": \"" + line + "\"}\n";
  }
  const std::vector<std::filesystem::path> files = {dir.write("a.jsonl", a), dir.write("b.jsonl", b)};
  const sample_encoder encoder(test::test_tokenizer(), {});
  for (bool shuffle : {false, true}) {
    const source_options so{
        .files = files, .shuffle = shuffle, .seed = 8, .rank = 0, .world_size = 2, .max_epochs = 2};
    const batch_options bo{.rows = 2, .seq_len = 24, .pack = true, .pad_id = 99};
    batch_loader whole(record_source(so), encoder, bo);
    std::vector<batch> expected;
    while (auto x = whole.next()) expected.push_back(std::move(*x));
    ASSERT_GT(expected.size(), 20u);
    bool mid_sample = false;
    for (size_t stop = 0; stop <= expected.size(); stop += 3) {
      batch_loader first(record_source(so), encoder, bo);
      for (size_t i = 0; i < stop; ++i) first.next();
      const cursor c = cursor::from_json(nlohmann::json::parse(first.position().to_json().dump()));
      mid_sample = mid_sample || c.token_offset > 0;
      batch_loader second(record_source(so), encoder, bo);
      second.restore(c);
      for (size_t i = stop; i < expected.size(); ++i) {
        const auto got = second.next();
        ASSERT_TRUE(got) << "stop " << stop << " batch " << i;
        EXPECT_EQ(got->inputs, expected[i].inputs);
        EXPECT_EQ(got->targets, expected[i].targets);
        EXPECT_EQ(got->segment_ids, expected[i].segment_ids);
      }
      EXPECT_FALSE(second.next());
    }
    EXPECT_TRUE(mid_sample);  // some cursor fell inside a long sample split across batches
  }
}

}  // namespace
}  // namespace mlxd::data
