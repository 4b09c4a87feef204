// (protocol 1.7) Rings: a sequence that decodes alone has the last stage feed each sampled token straight
// back to the first, and the coordinator only listens. With in-process workers holding the golden model:
// the tokens, log-probabilities and alternatives are those of steps sent one by one; a stop id or a stop
// inside a ring leaves no reply, no KV cache and no broken stream behind; the Loop stream and ring steps are
// refused where they do not belong.
#include <gtest/gtest.h>

#include <algorithm>

#include "mlxd/dist/coordinator.h"
#include "mlxd/dist/worker.h"
#include "stage_steps.h"

namespace mlxd::dist {
namespace {

struct workers {
  explicit workers(int n, const std::string& token = "") {
    worker_options o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.cluster_token = token;
    for (int i = 0; i < n; ++i) all.push_back(std::make_unique<worker>(o));
  }
  coordinator_options options(int ring_tokens) const {
    coordinator_options o;
    for (const auto& w : all) o.access.workers.push_back(address(*w));
    if (all.size() == 2) o.layers = {{0, 1}, {1, 2}};
    o.ring_tokens = ring_tokens;
    return o;
  }
  static std::string address(const worker& w) { return "127.0.0.1:" + std::to_string(w.port()); }
  std::vector<std::unique_ptr<worker>> all;
};

// seeded_request with 3 alternatives a token.
generation_request sampled(int max_tokens) {
  generation_request r = seeded_request(max_tokens);
  r.sampling.top_logprobs = 3;
  return r;
}

// Every decode token after the first of each ring comes from the ring; 40 tokens are the prefill's, then
// rings of 16, 16 and 7 tokens (what is still wanted): 15 + 15 + 6 looped.
TEST(Rings, GiveTheTokensOfStepsSentOneByOne) {
  for (int n : {1, 2}) {
    workers w(n);
    std::vector<std::vector<std::vector<int32_t>>> tops(2);
    generation_result by_ring, by_steps;
    for (int ring : {16, 0}) {
      coordinator c(golden_gqa, w.options(ring));
      generation_request r = sampled(40);
      auto& top = tops[ring == 0];
      r.on_token = [&](const engine::sample_result& s) {
        top.emplace_back();
        for (const auto& t : s.top) top.back().push_back(t.id);
      };
      (ring ? by_ring : by_steps) = c.generate(r);
      EXPECT_EQ(sequences_held(c), std::vector<uint32_t>(n, 0));
    }
    ASSERT_EQ(by_ring.tokens.size(), 40u);
    EXPECT_EQ(by_ring.tokens, by_steps.tokens) << n << " workers";
    EXPECT_EQ(by_ring.logprobs, by_steps.logprobs);
    EXPECT_EQ(tops[0], tops[1]);
    EXPECT_EQ(by_ring.looped_steps, 36);
    EXPECT_EQ(by_steps.looped_steps, 0);
    EXPECT_EQ(by_ring.decode_steps, 39);
  }
}

// A stop id ends a ring at the last stage, a stop request ends it from the coordinator while the pipeline
// runs ahead: the request ends with the same tokens as without a ring, the steps run ahead are dropped,
// every KV cache is freed, and the next request on the same streams gets the whole answer (no stray reply
// broke them: nothing was planned again).
TEST(Rings, AStopIdOrAStopInsideARingLeavesNothingBehind) {
  workers w(2);
  coordinator c(golden_gqa, w.options(16));
  const std::vector<int32_t> whole = c.generate(sampled(40)).tokens;
  ASSERT_EQ(whole.size(), 40u);
  size_t k = 3;
  while (k < whole.size() && std::find(whole.begin(), whole.begin() + k, whole[k]) != whole.begin() + k) ++k;
  ASSERT_LT(k, whole.size()) << "no token after the third is new";

  generation_request stopping = sampled(40);
  stopping.stop_ids = {whole[k]};
  const generation_result at_stop = c.generate(stopping);
  EXPECT_EQ(at_stop.tokens, std::vector<int32_t>(whole.begin(), whole.begin() + k + 1));
  EXPECT_EQ(at_stop.looped_steps, static_cast<int>(k) - 1);
  EXPECT_EQ(sequences_held(c), (std::vector<uint32_t>{0, 0}));

  generation_request stopped = sampled(40);
  size_t seen = 0;
  stopped.on_token = [&](const engine::sample_result&) { ++seen; };
  stopped.stop_requested = [&] { return seen >= 5; };
  const generation_result early = c.generate(stopped);
  EXPECT_TRUE(early.stopped);
  EXPECT_EQ(early.tokens, std::vector<int32_t>(whole.begin(), whole.begin() + 5));
  EXPECT_EQ(sequences_held(c), (std::vector<uint32_t>{0, 0}));

  EXPECT_EQ(c.generate(sampled(40)).tokens, whole);
  EXPECT_EQ(c.n_replans(), 0u);
}

grpc::Status loop_refusal(v1::Stage::Stub& stub, uint64_t plan, const std::string& token) {
  grpc::ClientContext ctx;
  rpc::prepare(ctx, token, std::chrono::seconds(5));
  ctx.AddMetadata(rpc::plan_key, std::to_string(plan));
  auto loop = stub.Loop(&ctx);
  v1::StepRequest r;
  EXPECT_FALSE(loop->Read(&r));
  return loop->Finish();
}

// Only the last stage of a plan serves its Loop stream, once, to a caller with the token; the worker says it
// runs rings.
TEST(Rings, TheLoopStreamIsTheLastStagesOfItsPlan) {
  workers w(2, "secret");
  auto first = stub_of(w.all[0]->port()), last = stub_of(w.all[1]->port());
  v1::AssignReply assigned;
  ASSERT_TRUE(assign(*first, 9, 0, 1, workers::address(*w.all[1]), "secret", &assigned).ok());
  EXPECT_TRUE(assigned.rings());
  ASSERT_TRUE(assign(*last, 9, 1, 2, "", "secret").ok());
  EXPECT_EQ(loop_refusal(*first, 9, "secret").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(loop_refusal(*last, 8, "secret").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(loop_refusal(*last, 9, "guess").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ctx;
  rpc::prepare(ctx, "secret", std::chrono::milliseconds(0));
  ctx.AddMetadata(rpc::plan_key, "9");
  auto loop = last->Loop(&ctx);
  v1::StepRequest opened;
  ASSERT_TRUE(loop->Read(&opened));
  EXPECT_EQ(opened.step_id(), 0u);
  EXPECT_EQ(loop_refusal(*last, 9, "secret").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  ctx.TryCancel();
}

// On a worker that is the first stage and the last, a ring goes round inside it: one decode step sent, the
// replies of `ring` steps back, each with the token that stepping one by one gives. A ring on a prefill is
// refused with a clear error.
TEST(Rings, AWorkerThatHoldsTheWholeModelRunsTheRingItself) {
  workers w(2);
  auto ringed = stub_of(w.all[0]->port()), stepped = stub_of(w.all[1]->port());
  ASSERT_TRUE(assign(*ringed, 5, 0, 2).ok());
  ASSERT_TRUE(assign(*stepped, 5, 0, 2).ok());
  struct run {
    explicit run(v1::Stage::Stub& stub) {
      rpc::prepare(ctx, "", std::chrono::seconds(20));
      ctx.AddMetadata(rpc::plan_key, "5");
      stream = stub.Run(&ctx);
    }
    v1::StepReply next() {
      v1::StepReply r;
      EXPECT_TRUE(stream->Read(&r));
      return r;
    }
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepReply>> stream;
  } a(*ringed), b(*stepped);

  v1::StepRequest bad = forward_step(1, 1, 16, 0);
  bad.set_ring(3);
  ASSERT_TRUE(a.stream->Write(bad));
  const v1::StepReply refused = a.next();
  EXPECT_EQ(refused.step_id(), 1u);
  EXPECT_NE(refused.error().find("a ring on a step that is not a one-token decode step"), std::string::npos)
      << refused.error();

  ASSERT_TRUE(a.stream->Write(forward_step(2, 2, 16, 0)));
  ASSERT_TRUE(b.stream->Write(forward_step(2, 2, 16, 0)));
  const int32_t first = a.next().token();
  ASSERT_EQ(b.next().token(), first);
  v1::StepRequest ring = forward_step(3, 2, 16, 2, first);
  ring.set_ring(5);
  ASSERT_TRUE(a.stream->Write(ring));
  int32_t token = first;
  for (int i = 0; i < 5; ++i) {
    const v1::StepReply looped = a.next();
    ASSERT_TRUE(looped.error().empty()) << looped.error();
    EXPECT_EQ(looped.step_id(), 3u + i);
    ASSERT_TRUE(b.stream->Write(forward_step(3 + i, 2, 16, 2 + i, token)));
    const v1::StepReply one = b.next();
    EXPECT_EQ(looped.token(), one.token()) << "step " << i;
    EXPECT_EQ(looped.logprob(), one.logprob());
    token = one.token();
  }
  a.stream->WritesDone();
  b.stream->WritesDone();
  v1::StepReply extra;
  EXPECT_FALSE(a.stream->Read(&extra)) << "a reply after the ring's last: step " << extra.step_id();
  EXPECT_TRUE(a.stream->Finish().ok());
  EXPECT_FALSE(b.stream->Read(&extra));
  EXPECT_TRUE(b.stream->Finish().ok());
}

}  // namespace
}  // namespace mlxd::dist
