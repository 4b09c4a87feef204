// record_source: file order, shuffling determinism, epochs, train/validation split, disjoint and covering
// shards, and cursors (JSON) that resume the same stream exactly.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data_test_util.h"
#include "mlxd/data/record_source.h"
#include "mlxd/data/sample.h"

namespace mlxd::data {
namespace {

// "a12": GCC 12 warns falsely (-Wrestrict) on "a" + std::to_string(i).
std::string name(char prefix, int i) {
  std::string s(1, prefix);
  s += std::to_string(i);
  return s;
}

// Two files of numbered lines with some empty lines between.
struct corpus {
  test::temp_dir dir;
  std::vector<std::filesystem::path> files;
  corpus(int n1 = 37, int n2 = 26) {
    std::string a, b;
    for (int i = 0; i < n1; ++i) a += name('a', i) + (i % 7 == 3 ? "\n\n" : "\n");
    for (int i = 0; i < n2; ++i) b += name('b', i) + "\r\n";
    files = {dir.write("a.txt", a), dir.write("b.txt", b)};
  }
};

std::vector<std::string> drain(record_source& s, size_t limit = SIZE_MAX) {
  std::vector<std::string> out;
  while (out.size() < limit) {
    auto r = s.next();
    if (!r) break;
    out.push_back(r->text);
  }
  return out;
}

std::vector<std::string> all_lines(int n1 = 37, int n2 = 26) {
  std::vector<std::string> out;
  for (int i = 0; i < n1; ++i) out.push_back(name('a', i));
  for (int i = 0; i < n2; ++i) out.push_back(name('b', i));
  return out;
}

TEST(RecordSource, FileOrderSkipsEmptyLinesAndNamesLines) {
  corpus c;
  record_source s({.files = c.files});
  EXPECT_EQ(drain(s), all_lines());
  record_source t({.files = c.files});
  const auto first = t.next();
  EXPECT_EQ(first->where(), c.files[0].string() + ":1");
  for (int i = 0; i < 4; ++i) t.next();
  EXPECT_EQ(t.next()->where(), c.files[0].string() + ":7");  // a5, after the empty line 5
}

TEST(RecordSource, ShuffleIsDeterministicPerSeedAndEpoch) {
  corpus c;
  const auto order = [&](uint64_t seed) {
    record_source s({.files = c.files, .shuffle = true, .seed = seed, .max_epochs = 2});
    return drain(s);
  };
  const auto a = order(1), b = order(1), other = order(2);
  ASSERT_EQ(a.size(), 2 * all_lines().size());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  const std::vector<std::string> e0(a.begin(), a.begin() + 63), e1(a.begin() + 63, a.end());
  EXPECT_NE(e0, e1);  // each epoch draws its own permutation
  for (auto e : {e0, e1}) {
    auto sorted = e, expected = all_lines();
    std::sort(sorted.begin(), sorted.end());
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(sorted, expected);  // every line once per epoch
  }
  EXPECT_NE(e0, all_lines());
}

TEST(RecordSource, ShardsAreDisjointAndCover) {
  corpus c;
  for (bool shuffle : {false, true}) {
    std::multiset<std::string> seen;
    for (int64_t rank = 0; rank < 3; ++rank) {
      record_source s({.files = c.files, .shuffle = shuffle, .seed = 9, .rank = rank, .world_size = 3});
      const auto part = drain(s);
      EXPECT_GE(part.size(), 20u);
      seen.insert(part.begin(), part.end());
    }
    const auto lines = all_lines();
    EXPECT_EQ(seen, std::multiset<std::string>(lines.begin(), lines.end())) << "shuffle " << shuffle;
  }
}

TEST(RecordSource, SplitByHashIsDisjointStableAndNearTheFraction) {
  corpus c(400, 300);
  std::set<std::string> train, validation;
  for (bool shuffle : {false, true}) {
    record_source t(
        {.files = c.files, .shuffle = shuffle, .seed = shuffle ? 3u : 0u, .validation_fraction = 0.2});
    record_source v({.files = c.files,
                     .shuffle = shuffle,
                     .seed = 5,
                     .validation_fraction = 0.2,
                     .which = split::validation});
    const auto tl = drain(t), vl = drain(v);
    if (!shuffle) {
      train.insert(tl.begin(), tl.end());
      validation.insert(vl.begin(), vl.end());
    } else {  // the same lines in each split, whatever the order
      EXPECT_EQ(std::set<std::string>(tl.begin(), tl.end()), train);
      EXPECT_EQ(std::set<std::string>(vl.begin(), vl.end()), validation);
    }
  }
  for (const auto& x : validation) EXPECT_EQ(train.count(x), 0u);
  EXPECT_EQ(train.size() + validation.size(), 700u);
  EXPECT_NEAR(static_cast<double>(validation.size()) / 700.0, 0.2, 0.05);
  for (const auto& x : validation) EXPECT_LT(static_cast<double>(fnv1a64(x)), 0.2 * 18446744073709551616.0);
}

// The split filters before the deal: N ranks taking one record each in turn see one process's sequence, in
// both splits and orders, so data parallelism with a validation split trains on the same steps.
TEST(RecordSource, RanksInTurnSeeOneProcessSequenceWithASplit) {
  corpus c(400, 300);
  for (bool shuffle : {false, true}) {
    for (split which : {split::train, split::validation}) {
      source_options o{.files = c.files,
                       .shuffle = shuffle,
                       .seed = 7,
                       .validation_fraction = 0.3,
                       .which = which,
                       .max_epochs = 2};
      record_source one(o);
      const auto whole = drain(one);
      ASSERT_GT(whole.size(), 100u);
      for (int64_t world : {2, 3}) {
        std::vector<std::vector<std::string>> parts;
        for (int64_t rank = 0; rank < world; ++rank) {
          o.rank = rank;
          o.world_size = world;
          record_source s(o);
          parts.push_back(drain(s));
        }
        std::vector<std::string> in_turn;
        for (size_t k = 0; in_turn.size() < whole.size(); ++k) {
          const auto& part = parts[k % parts.size()];
          const size_t i = k / parts.size();
          if (i >= part.size()) break;
          in_turn.push_back(part[i]);
        }
        EXPECT_EQ(in_turn, whole) << "shuffle " << shuffle << ", world " << world << ", validation "
                                  << (which == split::validation);
      }
      o.rank = 0;
      o.world_size = 1;
    }
  }
}

TEST(RecordSource, CursorResumesExactly) {
  corpus c;
  for (bool shuffle : {false, true}) {
    for (size_t stop : {0u, 1u, 10u, 20u, 29u, 45u}) {
      source_options o{
          .files = c.files, .shuffle = shuffle, .seed = 4, .rank = 1, .world_size = 2, .max_epochs = 3};
      record_source whole(o);
      const auto expected = drain(whole);
      record_source first(o);
      const auto head = drain(first, stop);
      const auto saved = nlohmann::json::parse(first.position().to_json().dump());
      record_source second(o);
      second.restore(cursor::from_json(saved));
      auto got = head;
      const auto tail = drain(second);
      got.insert(got.end(), tail.begin(), tail.end());
      EXPECT_EQ(got, expected) << "shuffle " << shuffle << " stop " << stop;
    }
  }
}

TEST(RecordSource, CursorLocatesTheNextLine) {
  corpus c;
  record_source s({.files = c.files});
  drain(s, 40);  // past the first file
  const cursor p = s.position();
  EXPECT_EQ(p.file, 1u);
  EXPECT_EQ(p.line, 4u);
  EXPECT_EQ(p.position, 40u);
  EXPECT_EQ(s.next()->text, "b3");
}

TEST(RecordSource, EndlessEpochsAndBadInput) {
  corpus c;
  record_source s({.files = c.files, .max_epochs = 0});
  EXPECT_EQ(drain(s, 1000).size(), 1000u);
  test::temp_dir dir;
  const auto empty = dir.write("empty.txt", "\n\n");
  record_source nothing({.files = {empty}, .max_epochs = 0});
  EXPECT_FALSE(nothing.next());  // an endless stream of nothing ends
  record_source nothing_shuffled({.files = {empty}, .shuffle = true, .max_epochs = 0});
  EXPECT_FALSE(nothing_shuffled.next());
  EXPECT_THROW(record_source({.files = c.files, .rank = 2, .world_size = 2}), std::invalid_argument);
  EXPECT_THROW(record_source({.files = {}}), std::invalid_argument);
  EXPECT_THROW(record_source({.files = c.files, .validation_fraction = 1.5}), std::invalid_argument);
  EXPECT_THROW(record_source({.files = {dir.path() / "missing.txt"}, .shuffle = true}), data_error);
  EXPECT_THROW(cursor::from_json(nlohmann::json{{"epoch", 1}}), data_error);
  EXPECT_THROW(cursor::from_json(nlohmann::json::parse(
                   R"({"epoch":0,"position":"x","file":0,"offset":0,"line":1,"token_offset":0})")),
               data_error);
  // A cursor saved before `dealt` existed deals on from its position; a mistyped one is refused.
  const auto old =
      nlohmann::json::parse(R"({"epoch":1,"position":9,"file":0,"offset":40,"line":10,"token_offset":2})");
  EXPECT_EQ(cursor::from_json(old).dealt, 9u);
  auto typed = old;
  typed["dealt"] = 4;
  EXPECT_EQ(cursor::from_json(typed), (cursor{1, 9, 0, 40, 10, 2, 4}));
  EXPECT_EQ(cursor::from_row(cursor{1, 9, 0, 40, 10, 2, 4}.to_row().data()), (cursor{1, 9, 0, 40, 10, 2, 4}));
  typed["dealt"] = "four";
  EXPECT_THROW(cursor::from_json(typed), data_error);
  record_source r({.files = c.files});
  cursor bad;
  bad.file = 5;
  EXPECT_THROW(r.restore(bad), data_error);
  bad.file = 0;
  bad.offset = 1u << 30;
  EXPECT_THROW(r.restore(bad), data_error);
}

}  // namespace
}  // namespace mlxd::data
