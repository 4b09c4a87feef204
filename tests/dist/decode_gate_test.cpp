// The coordinator's decode gate: which steps leave together, and when a step waits. The pipeline here is a
// function that records each step and answers it when the test says so.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "dist/decode_gate.h"

namespace mlxd::dist {
namespace {

using namespace std::chrono_literals;

struct recording_pipeline {
  std::mutex mu;
  std::vector<v1::StepRequest> sent;
  std::vector<size_t> calls;  // steps per call of send: one call a group
  std::vector<std::promise<v1::StepReply>> replies;
  decode_gate::send_fn send() {
    return [this](std::vector<v1::StepRequest>& group) {
      std::lock_guard lock(mu);
      std::vector<std::future<v1::StepReply>> out;
      for (const v1::StepRequest& r : group) {
        sent.push_back(r);
        replies.emplace_back();
        out.push_back(replies.back().get_future());
      }
      calls.push_back(group.size());
      return out;
    };
  }
  size_t n_sent() {
    std::lock_guard lock(mu);
    return sent.size();
  }
  void answer(size_t i) {
    std::lock_guard lock(mu);
    v1::StepReply r;
    r.set_sequence_id(sent[i].sequence_id());
    replies[i].set_value(r);
  }
  bool wait_for_sent(size_t n) {
    for (int i = 0; i < 2000 && n_sent() < n; ++i) std::this_thread::sleep_for(1ms);
    return n_sent() >= n;
  }
};

v1::StepRequest step(uint64_t sequence) {
  v1::StepRequest r;
  r.set_sequence_id(sequence);
  return r;
}

TEST(DecodeGate, ALoneSequenceNeverWaits) {
  recording_pipeline p;
  decode_gate gate(p.send(), 1, 10s);  // a patience that would show
  decode_gate::member m(gate);
  auto reply = std::async(std::launch::async, [&] { return m.run(step(1)); });
  ASSERT_TRUE(p.wait_for_sent(1));
  EXPECT_EQ(p.sent[0].group_size(), 1u);
  p.answer(0);
  EXPECT_EQ(reply.get().sequence_id(), 1u);
}

// With one group allowed in the pipeline, a step that arrives while a group is out waits for it, and leaves
// with the group's members in the next group (the patience is long: they are waited for).
TEST(DecodeGate, AStepWaitsForTheGroupInThePipelineAndJoinsTheNext) {
  recording_pipeline p;
  decode_gate gate(p.send(), 1, 10s);
  decode_gate::member a(gate);
  auto first = std::async(std::launch::async, [&] { return a.run(step(1)); });
  ASSERT_TRUE(p.wait_for_sent(1));
  decode_gate::member b(gate);
  auto second = std::async(std::launch::async, [&] { return b.run(step(2)); });
  std::this_thread::sleep_for(50ms);  // no member is busy: only the group in the pipeline holds it
  EXPECT_EQ(p.n_sent(), 1u);
  p.answer(0);
  first.get();
  auto third = std::async(std::launch::async, [&] { return a.run(step(1)); });
  ASSERT_TRUE(p.wait_for_sent(3));
  EXPECT_EQ(p.sent[1].group_id(), p.sent[2].group_id());
  EXPECT_NE(p.sent[1].group_id(), p.sent[0].group_id());
  EXPECT_EQ(p.sent[1].group_size(), 2u);
  EXPECT_EQ(p.sent[2].group_size(), 2u);
  EXPECT_EQ(p.calls, (std::vector<size_t>{1, 2}));  // the group leaves in one send, so in one write
  p.answer(1);
  p.answer(2);
  second.get();
  third.get();
}

// With two groups allowed (stages on machines of their own), the second group leaves while the first is out.
TEST(DecodeGate, TwoGroupsMayBeInThePipelineAtOnce) {
  recording_pipeline p;
  decode_gate gate(p.send(), 2, 1ms);
  decode_gate::member a(gate), b(gate);
  auto first = std::async(std::launch::async, [&] { return a.run(step(1)); });
  ASSERT_TRUE(p.wait_for_sent(1));  // b is busy for longer than the patience: a goes alone
  auto second = std::async(std::launch::async, [&] { return b.run(step(2)); });
  ASSERT_TRUE(p.wait_for_sent(2));
  EXPECT_NE(p.sent[0].group_id(), p.sent[1].group_id());
  p.answer(0);
  p.answer(1);
  first.get();
  second.get();
}

// A pipeline that fails a step: the member whose step it was gets the error, the gate goes on.
TEST(DecodeGate, ASendThatThrowsReachesItsMember) {
  bool fail = true;
  decode_gate gate(
      [&](std::vector<v1::StepRequest>& group) {
        if (fail) throw std::runtime_error("the pipeline was lost");
        std::vector<std::future<v1::StepReply>> out;
        for (const v1::StepRequest& r : group) {
          std::promise<v1::StepReply> done;
          v1::StepReply reply;
          reply.set_sequence_id(r.sequence_id());
          done.set_value(reply);
          out.push_back(done.get_future());
        }
        return out;
      },
      1);
  decode_gate::member m(gate);
  EXPECT_THROW(m.run(step(4)), std::runtime_error);
  fail = false;
  EXPECT_EQ(m.run(step(4)).sequence_id(), 4u);
}

}  // namespace
}  // namespace mlxd::dist
