// The stage protocol's edges, in one process: a worker refuses another protocol version and a wrong token;
// a coordinator refuses a worker of another version and survives every kind of malformed reply from a fake
// worker with a clear error, never a crash or a hang.
#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <future>
#include <latch>
#include <thread>

#include "dist/stage_rpc.h"
#include "mlxd/dist/coordinator.h"
#include "mlxd/dist/worker.h"
#include "mlxd/models/llama.h"
#include "mlxd/v1/inference.grpc.pb.h"
#include "stage_steps.h"

namespace mlxd::dist {
namespace {

worker_options local_worker(const std::string& token = "") {
  worker_options o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.cluster_token = token;
  return o;
}

grpc::Status raw_hello(int port, const std::string& version, const std::string& token) {
  auto stub = v1::Stage::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.AddMetadata(rpc::protocol_key, version);
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::StageHelloRequest req;
  req.set_protocol_major(rpc::protocol_major);
  v1::StageHelloReply reply;
  return stub->Hello(&ctx, req, &reply);
}

TEST(StageProtocol, WorkerRefusesAnotherMajorVersionAndAWrongToken) {
  worker w(local_worker("secret"));
  EXPECT_TRUE(raw_hello(w.port(), "1.0", "secret").ok());
  EXPECT_TRUE(raw_hello(w.port(), "1.7", "secret").ok());  // minor versions are compatible
  const grpc::Status v2 = raw_hello(w.port(), "2.0", "secret");
  EXPECT_EQ(v2.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(v2.error_message().find("major versions must match"), std::string::npos) << v2.error_message();
  EXPECT_EQ(raw_hello(w.port(), "one", "secret").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(raw_hello(w.port(), "1.0", "guess").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(raw_hello(w.port(), "1.0", "").error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// gRPC's default SO_REUSEPORT let a second worker bind a taken port and take part of the first one's
// connections; the second worker now fails to start, naming the address.
TEST(StageProtocol, AWorkerOnAPortInUseFailsToStart) {
  worker first(local_worker());
  worker_options o = local_worker();
  o.port = first.port();
  try {
    worker second(o);
    FAIL() << "a second worker listened on port " << o.port;
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(o.port)),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(raw_hello(first.port(), "1.0", "").ok());  // the first one still serves
}

TEST(StageProtocol, WorkerBeyondLoopbackNeedsAToken) {
  worker_options o = local_worker();
  o.host = "0.0.0.0";
  EXPECT_THROW(worker w(o), std::invalid_argument);
}

// A worker that answers Hello and Assign as a real one of protocol 1.5 would and then misbehaves on Run in
// one way (or, with `none`, not at all: every step gets token 1).
enum class fault {
  none,
  newer_protocol,
  token_outside_vocab,
  no_token,
  unknown_step,
  bad_logits,
  step_error,
  hang_up
};

class fake_worker final : public v1::Stage::Service {
 public:
  explicit fake_worker(fault f) : fault_(f) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
  }
  ~fake_worker() override { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1)); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  grpc::Status Hello(grpc::ServerContext*, const v1::StageHelloRequest*, v1::StageHelloReply* r) override {
    r->set_protocol_major(fault_ == fault::newer_protocol ? 2 : 1);
    r->mutable_capabilities()->set_cores(1);
    r->mutable_capabilities()->set_memory_bytes(uint64_t{1} << 30);
    return grpc::Status::OK;
  }
  grpc::Status Assign(grpc::ServerContext*, const v1::Assignment*, v1::AssignReply*) override {
    return grpc::Status::OK;
  }
  grpc::Status Run(grpc::ServerContext*,
                   grpc::ServerReaderWriter<v1::StepReply, v1::StepRequest>* s) override {
    v1::StepRequest req;
    while (s->Read(&req)) {
      if (req.steps_size() > 0) ++carriers_seen;
      largest_group = std::max<uint32_t>(largest_group, req.group_size());
      if (fault_ == fault::hang_up) return {grpc::StatusCode::INTERNAL, "fake worker hangs up"};
      v1::StepReply r;
      r.set_step_id(fault_ == fault::unknown_step ? req.step_id() + 1000 : req.step_id());
      if (req.kind() == v1::STEP_FORWARD) {
        r.set_sampled(fault_ != fault::no_token);
        r.set_token(fault_ == fault::token_outside_vocab ? 40 : 1);
        if (fault_ == fault::step_error) r.set_error("fake worker refuses");
        if (req.want_logits()) {
          v1::TensorChunk* c = r.mutable_logits();
          c->set_dtype(v1::DTYPE_F32);
          c->add_shape(1);
          c->add_shape(40);
          c->set_total_bytes(fault_ == fault::bad_logits ? 12 : 160);
          c->set_data(std::string(fault_ == fault::bad_logits ? 12 : 160, '\0'));
        }
      }
      s->Write(r);
    }
    return grpc::Status::OK;
  }
  std::atomic<int> carriers_seen = 0;  // (1.6) messages carrying steps, which it does not take
  std::atomic<uint32_t> largest_group = 0;

 private:
  fault fault_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

coordinator_options options_for(const std::string& address) {
  coordinator_options o;
  o.access.workers = {address};
  return o;
}

generation_request small_request() {
  generation_request r;
  r.prompt = {1, 2, 3};
  r.max_tokens = 4;
  r.sampling.temperature = 0;
  return r;
}

TEST(StageProtocol, CoordinatorRefusesAWorkerOfAnotherVersion) {
  fake_worker f(fault::newer_protocol);
  try {
    coordinator c(golden_gqa, options_for(f.address()));
    FAIL() << "accepted a worker of protocol 2";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("speaks mlxd stage protocol 2.0"), std::string::npos) << e.what();
  }
}

TEST(StageProtocol, MalformedRepliesAreErrorsNotCrashes) {
  const std::pair<fault, const char*> cases[] = {{fault::token_outside_vocab, "outside the vocabulary"},
                                                 {fault::no_token, "no token"},
                                                 {fault::step_error, "fake worker refuses"}};
  for (const auto& [f, message] : cases) {
    fake_worker w(f);
    coordinator c(golden_gqa, options_for(w.address()));
    try {
      c.generate(small_request());
      FAIL() << message;
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
  fake_worker bad_logits(fault::bad_logits);
  coordinator c(golden_gqa, options_for(bad_logits.address()));
  try {
    c.logits({1, 2});
    FAIL() << "accepted malformed logits";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("malformed logits"), std::string::npos) << e.what();
  }
  // The fake worker knows nothing of want_hidden (protocol 1.1), as a 1.0 worker would: a clear error.
  try {
    c.final_hidden({1, 2});
    FAIL() << "final hidden states from a worker that sent none";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("older than protocol 1.1"), std::string::npos) << e.what();
  }
}

TEST(StageProtocol, AWorkerThatKeepsFailingEndsTheRequestWithItsReason) {
  for (fault f : {fault::unknown_step, fault::hang_up}) {
    fake_worker w(f);
    coordinator c(golden_gqa, options_for(w.address()));
    try {
      c.generate(small_request());
      FAIL() << "a broken pipeline produced tokens";
    } catch (const std::runtime_error& e) {
      const std::string m = e.what();
      EXPECT_TRUE(m.find("not waiting") != std::string::npos || m.find("hangs up") != std::string::npos) << m;
    }
  }
}

// A worker that does not say it takes carriers (protocol 1.5 and older) gets one message a step, even when
// concurrent sequences' decode steps leave in groups.
TEST(StageProtocol, AWorkerWithoutCarriersGetsOneMessageAStep) {
  fake_worker w(fault::none);
  coordinator c(golden_gqa, options_for(w.address()));
  std::vector<std::future<generation_result>> runs;
  // The four start together and run long enough to overlap even when threads start slowly (ThreadSanitizer).
  std::latch start(4);
  for (int i = 0; i < 4; ++i) {
    runs.push_back(std::async(std::launch::async, [&] {
      generation_request r = small_request();
      r.max_tokens = 32;
      start.arrive_and_wait();
      return c.generate(r);
    }));
  }
  for (auto& run : runs) {
    const generation_result g = run.get();
    EXPECT_EQ(g.tokens, std::vector<int32_t>(32, 1));
    EXPECT_FALSE(g.carriers);
  }
  EXPECT_GT(w.largest_group.load(), 1u);  // groups left, each step on its own
  EXPECT_EQ(w.carriers_seen.load(), 0);
}

// A raw client of one worker holding the whole golden model as plan `plan`.
struct raw_client {
  explicit raw_client(int port, uint64_t plan = 5) : stub(stub_of(port)) {
    status = assign(*stub, plan, 0, 2);
    rpc::prepare(run_ctx, "", std::chrono::milliseconds(0));
    run_ctx.AddMetadata(rpc::plan_key, std::to_string(plan));
    run = stub->Run(&run_ctx);
  }
  ~raw_client() {
    if (!ended) run->WritesDone(), run->Finish();
  }
  // A prefill of two tokens at `position` 0, or a decode step of one token after it.
  v1::StepReply step(uint64_t sequence, int capacity, int position = 0) {
    run->Write(forward_step(1, sequence, capacity, position));
    v1::StepReply reply;
    run->Read(&reply);
    return reply;
  }
  // Reads on until the worker ends the stream; returns its status.
  grpc::Status finish() {
    v1::StepReply r;
    while (run->Read(&r)) {
    }
    ended = true;
    return run->Finish();
  }
  uint32_t n_sequences() {
    grpc::ClientContext ctx;
    rpc::prepare(ctx, "", std::chrono::seconds(5));
    v1::StageHelloRequest req;
    req.set_protocol_major(rpc::protocol_major);
    v1::StageHelloReply reply;
    stub->Hello(&ctx, req, &reply);
    return reply.n_sequences();
  }
  std::unique_ptr<v1::Stage::Stub> stub;
  grpc::Status status;
  grpc::ClientContext run_ctx;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StepRequest, v1::StepReply>> run;
  bool ended = false;
};

// A new assignment forgets the sequences of the plan it replaces, so the old plan's stream ends at its next
// step with a reply that names both plans (the coordinator then re-prefills on the new plan), while the new
// plan's stream works.
TEST(StageProtocol, ANewPlanEndsTheStreamOfTheOldOne) {
  worker w(local_worker());
  raw_client old_plan(w.port(), 5);
  ASSERT_TRUE(old_plan.status.ok()) << old_plan.status.error_message();
  const v1::StepReply first = old_plan.step(1, 8);
  ASSERT_TRUE(first.error().empty()) << first.error();
  EXPECT_TRUE(old_plan.step(1, 8, 2).error().empty());  // decoding works while plan 5 holds
  raw_client new_plan(w.port(), 6);
  ASSERT_TRUE(new_plan.status.ok()) << new_plan.status.error_message();
  const v1::StepReply lost = old_plan.step(1, 8, 3);
  ASSERT_EQ(lost.step_id(), 0u) << lost.error();  // not an answer to the step: the stream's end
  EXPECT_NE(lost.error().find("left plan 5 for plan 6"), std::string::npos) << lost.error();
  EXPECT_FALSE(old_plan.finish().ok());  // cancelled: the worker stops reading it
  const v1::StepReply fresh = new_plan.step(2, 8);
  EXPECT_TRUE(fresh.error().empty()) << fresh.error();
  EXPECT_TRUE(fresh.sampled());
  EXPECT_TRUE(new_plan.step(2, 8, 2).error().empty());
}

TEST(StageProtocol, IdleKvCachesAreFreedAfterTheTimeout) {
  worker_options o = local_worker();
  o.kv_idle_timeout = std::chrono::milliseconds(200);
  worker w(o);
  raw_client c(w.port());
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  const v1::StepReply r = c.step(1, 8);
  EXPECT_TRUE(r.error().empty()) << r.error();
  EXPECT_TRUE(r.sampled());
  EXPECT_EQ(c.n_sequences(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(c.n_sequences(), 0u);
}

// (1.5) A group of decode steps runs as one batch however its steps are spaced out on the wire; a step of no
// group runs as soon as it is there; a group's step that is never sent is waited for only briefly.
TEST(StageProtocol, AGroupOfDecodeStepsRunsAsOneBatch) {
  worker w(local_worker());
  raw_client c(w.port());
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  for (uint64_t seq : {1, 2, 3}) ASSERT_TRUE(c.step(seq, 8).error().empty());
  const auto decode = [](uint64_t seq, uint64_t group, uint32_t size, int position = 2) {
    v1::StepRequest r = forward_step(10 + seq, seq, 8, position);
    r.set_group_id(group);
    r.set_group_size(size);
    return r;
  };
  for (uint64_t seq : {1, 2, 3}) {
    c.run->Write(decode(seq, 7, 3));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // each alone would have run by now
  }
  for (int i = 0; i < 3; ++i) {
    v1::StepReply r;
    ASSERT_TRUE(c.run->Read(&r));
    EXPECT_TRUE(r.error().empty()) << r.error();
    ASSERT_EQ(r.stage_batch_size(), 1);
    EXPECT_EQ(r.stage_batch(0), 3u) << "sequence " << r.sequence_id();
  }
  // Sequence 1 alone at its next position; then a group of two of which one step never comes.
  const v1::StepReply alone = c.step(1, 8, 3);
  ASSERT_EQ(alone.stage_batch_size(), 1);
  EXPECT_EQ(alone.stage_batch(0), 1u);
  const auto start = std::chrono::steady_clock::now();
  c.run->Write(decode(2, 8, 2, 3));
  v1::StepReply r;
  ASSERT_TRUE(c.run->Read(&r));
  EXPECT_TRUE(r.error().empty()) << r.error();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

// (1.6) A worker takes carriers: the steps of one run as if each had come alone, cross the next hop in one
// carrier and come back in one; a carrier inside a carrier is refused.
TEST(StageProtocol, ACarrierTakesAGroupAcrossEveryHopInOneMessage) {
  worker first(local_worker()), last(local_worker()), whole(local_worker());
  auto first_stub = stub_of(first.port()), last_stub = stub_of(last.port());
  ASSERT_TRUE(assign(*first_stub, 9, 0, 1, "127.0.0.1:" + std::to_string(last.port())).ok());
  v1::AssignReply assigned;
  ASSERT_TRUE(assign(*last_stub, 9, 1, 2, "", "", &assigned).ok());
  EXPECT_TRUE(assigned.carriers());
  grpc::ClientContext run_ctx;
  rpc::prepare(run_ctx, "", std::chrono::milliseconds(0));
  run_ctx.AddMetadata(rpc::plan_key, "9");
  auto run = first_stub->Run(&run_ctx);
  raw_client alone(whole.port());
  std::vector<v1::StepReply> expected;
  for (uint64_t seq : {1, 2, 3}) {
    ASSERT_TRUE(run->Write(forward_step(seq, seq, 8, 0)));
    v1::StepReply r;
    ASSERT_TRUE(run->Read(&r));
    ASSERT_TRUE(r.error().empty()) << r.error();
    ASSERT_TRUE(alone.step(seq, 8).error().empty());
    expected.push_back(alone.step(seq, 8, 2));
  }
  v1::StepRequest carrier;
  for (uint64_t seq : {1, 2, 3}) {
    v1::StepRequest s = forward_step(10 + seq, seq, 8, 2);
    s.set_group_id(7);
    s.set_group_size(3);
    *carrier.add_steps() = s;
  }
  ASSERT_TRUE(run->Write(carrier));
  v1::StepReply back;
  ASSERT_TRUE(run->Read(&back));
  ASSERT_EQ(back.replies_size(), 3);
  for (int k = 0; k < 3; ++k) {
    const v1::StepReply& r = back.replies(k);
    EXPECT_TRUE(r.error().empty()) << r.error();
    EXPECT_EQ(r.step_id(), 11u + k);
    ASSERT_TRUE(r.sampled() && expected[k].sampled());
    EXPECT_EQ(r.token(), expected[k].token()) << "sequence " << k + 1;
    EXPECT_EQ(r.logprob(), expected[k].logprob());
    ASSERT_EQ(r.stage_batch_size(), 2);  // one batch on each stage
    EXPECT_EQ(r.stage_batch(0), 3u);
    EXPECT_EQ(r.stage_batch(1), 3u);
  }
  v1::StepRequest nested;
  v1::StepRequest* inner = nested.add_steps();
  inner->set_step_id(21);
  inner->set_sequence_id(1);
  *inner->add_steps() = forward_step(22, 1, 8, 3);
  ASSERT_TRUE(run->Write(nested));
  v1::StepReply refused;
  ASSERT_TRUE(run->Read(&refused));
  EXPECT_EQ(refused.step_id(), 21u);
  EXPECT_NE(refused.error().find("a carrier inside a carrier"), std::string::npos) << refused.error();
  run->WritesDone();
  EXPECT_TRUE(run->Finish().ok());
}

TEST(StageProtocol, KvCachesAreBoundedByTheMemoryBudget) {
  const models::llama_config cfg = models::load_llama_config_any(golden_gqa);
  worker_options o = local_worker();
  // The weights, and room for 20 positions of KV cache.
  o.memory_bytes = stage_weight_bytes(cfg, {0, 2, true, true}) + 20 * kv_bytes_per_position(cfg, 2);
  worker w(o);
  raw_client c(w.port());
  ASSERT_TRUE(c.status.ok()) << c.status.error_message();
  EXPECT_TRUE(c.step(1, 8).error().empty());
  const v1::StepReply refused = c.step(2, 16);  // 8 + 16 positions do not fit
  EXPECT_NE(refused.error().find("no KV cache space"), std::string::npos) << refused.error();
  EXPECT_TRUE(c.step(3, 12).error().empty());  // 8 + 12 do
}

// (1.4) The last stage answers on the coordinator's Replies stream. Only the last stage of the plan opens
// one, once, for a caller with the token; once that stream is gone, its answers go up the Run streams again.
TEST(StageProtocol, TheLastStageAnswersOnTheRepliesStream) {
  worker first(local_worker("secret")), last(local_worker("secret")), whole(local_worker());
  auto first_stub = stub_of(first.port()), last_stub = stub_of(last.port());
  ASSERT_TRUE(assign(*first_stub, 9, 0, 1, "127.0.0.1:" + std::to_string(last.port()), "secret").ok());
  ASSERT_TRUE(assign(*last_stub, 9, 1, 2, "", "secret").ok());
  const auto open = [](v1::Stage::Stub& stub, grpc::ClientContext& ctx, uint64_t plan,
                       const std::string& token) {
    rpc::prepare(ctx, token, std::chrono::milliseconds(0));
    ctx.AddMetadata(rpc::plan_key, std::to_string(plan));
    return stub.Replies(&ctx);
  };
  const auto refusal = [&](v1::Stage::Stub& stub, uint64_t plan, const std::string& token) {
    grpc::ClientContext ctx;
    auto replies = open(stub, ctx, plan, token);
    v1::StepReply r;
    EXPECT_FALSE(replies->Read(&r));
    return replies->Finish();
  };
  EXPECT_EQ(refusal(*first_stub, 9, "secret").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refusal(*last_stub, 8, "secret").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(refusal(*last_stub, 9, "guess").error_code(), grpc::StatusCode::UNAUTHENTICATED);

  grpc::ClientContext replies_ctx, run_ctx;
  auto replies = open(*last_stub, replies_ctx, 9, "secret");
  v1::StepReply opened;
  ASSERT_TRUE(replies->Read(&opened));
  EXPECT_EQ(opened.step_id(), 0u);
  EXPECT_EQ(refusal(*last_stub, 9, "secret").error_code(), grpc::StatusCode::ALREADY_EXISTS);

  rpc::prepare(run_ctx, "secret", std::chrono::milliseconds(0));
  run_ctx.AddMetadata(rpc::plan_key, "9");
  auto run = first_stub->Run(&run_ctx);
  ASSERT_TRUE(run->Write(forward_step(1, 1, 8, 0)));
  v1::StepReply direct;
  ASSERT_TRUE(replies->Read(&direct));
  EXPECT_EQ(direct.step_id(), 1u);
  EXPECT_EQ(direct.stage_ms_size(), 2);
  raw_client alone(whole.port());
  const v1::StepReply expected = alone.step(1, 8);
  ASSERT_TRUE(expected.sampled() && direct.sampled()) << direct.error();
  EXPECT_EQ(direct.token(), expected.token());

  replies->WritesDone();
  EXPECT_TRUE(replies->Finish().ok());
  ASSERT_TRUE(run->Write(forward_step(2, 1, 8, 2, direct.token())));
  v1::StepReply relayed;  // the first reply to come up the Run stream: step 1's never did
  ASSERT_TRUE(run->Read(&relayed));
  EXPECT_EQ(relayed.step_id(), 2u);
  EXPECT_TRUE(relayed.sampled()) << relayed.error();
  run->WritesDone();
  EXPECT_FALSE(run->Read(&relayed));
  EXPECT_TRUE(run->Finish().ok());
}

}  // namespace
}  // namespace mlxd::dist
