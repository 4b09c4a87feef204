// A generation stopped early (stop_requested, or an on_token that throws) ends with the tokens produced so
// far and leaves no KV cache on any worker: two in-process workers holding the golden model, whose idle
// timeout (5 minutes) is far longer than the test, so only the coordinator's release can free them.
#include <gtest/gtest.h>

#include "mlxd/dist/coordinator.h"
#include "stage_steps.h"

namespace mlxd::dist {
namespace {

TEST(CoordinatorStop, StopRequestedReleasesTheSequenceOnEveryWorker) {
  two_workers w;
  coordinator c(golden_gqa, w.options());
  const generation_result whole = c.generate(seeded_request(40));
  ASSERT_EQ(whole.tokens.size(), 40u);
  EXPECT_FALSE(whole.stopped);
  EXPECT_EQ(whole.stage_nodes,
            (std::vector<std::string>{two_workers::address(*w.a), two_workers::address(*w.b)}));
  for (size_t stop_after : {1u, 7u}) {
    generation_request r = seeded_request(40);
    size_t seen = 0;
    r.on_token = [&](const engine::sample_result&) { ++seen; };
    r.stop_requested = [&] { return seen >= stop_after; };
    const generation_result g = c.generate(r);
    EXPECT_TRUE(g.stopped);
    ASSERT_EQ(g.tokens.size(), stop_after);
    EXPECT_TRUE(std::equal(g.tokens.begin(), g.tokens.end(), whole.tokens.begin()));
    EXPECT_EQ(sequences_held(c), (std::vector<uint32_t>{0, 0}));
  }
  generation_request before = seeded_request(40);
  before.stop_requested = [] { return true; };
  const generation_result none = c.generate(before);
  EXPECT_TRUE(none.stopped);
  EXPECT_TRUE(none.tokens.empty());
  EXPECT_EQ(sequences_held(c), (std::vector<uint32_t>{0, 0}));
}

TEST(CoordinatorStop, AThrowingOnTokenReleasesTheSequenceAndReachesTheCaller) {
  two_workers w;
  coordinator c(golden_gqa, w.options());
  generation_request r = seeded_request(40);
  int seen = 0;
  r.on_token = [&](const engine::sample_result&) {
    if (++seen == 3) throw std::runtime_error("the client's text cannot be decoded");
  };
  EXPECT_THROW(c.generate(r), std::runtime_error);
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(sequences_held(c), (std::vector<uint32_t>{0, 0}));
  // Without a release the caches would stay: a finished sequence is released too, so compare with a stream
  // that is still open.
  generation_request open = seeded_request(40);
  std::vector<uint32_t> during;
  open.on_token = [&](const engine::sample_result&) {
    if (during.empty()) during = sequences_held(c);
  };
  c.generate(open);
  EXPECT_EQ(during, (std::vector<uint32_t>{1, 1}));
  EXPECT_EQ(sequences_held(c), (std::vector<uint32_t>{0, 0}));
}

}  // namespace
}  // namespace mlxd::dist
