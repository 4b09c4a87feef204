// The coordinator's decode gate: which steps leave together, and when a step waits. The pipeline here is a
// function that records each step and answers it when the test says so.
#include <gtest/gtest.h>

#include <array>
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

// (1.7) A pipeline that runs rings: each ring's replies are answered by the test, and what is given up is
// recorded.
struct ring_pipeline : recording_pipeline {
  std::vector<uint32_t> ring_sizes;                // per step sent: its ring (0: sent by send)
  std::vector<std::array<uint64_t, 3>> abandoned;  // sequence, first step id, count
  uint64_t next_id = 1;
  void use(decode_gate& gate, uint32_t tokens) {
    gate.use_rings(
        [this](v1::StepRequest& r, uint32_t n) {
          std::lock_guard lock(mu);
          r.set_step_id(next_id);
          next_id += n;
          sent.push_back(r);
          ring_sizes.push_back(n);
          std::vector<std::future<v1::StepReply>> out;
          for (uint32_t i = 0; i < n; ++i) {
            replies.emplace_back();
            out.push_back(replies.back().get_future());
          }
          return out;
        },
        [this](uint64_t sequence, uint64_t first, uint32_t n) {
          std::lock_guard lock(mu);
          abandoned.push_back({sequence, first, n});
        },
        tokens);
  }
  // Answers reply `i` (in the order the promises were made) with a sampled token.
  void sample(size_t i, int32_t token) {
    std::lock_guard lock(mu);
    v1::StepReply r;
    r.set_sampled(true);
    r.set_token(token);
    replies[i].set_value(r);
  }
};

// A lone sequence goes in rings of at most the ring's tokens and what it still wants; inside one, its steps
// are not sent, and the next ring leaves when the last reply is taken.
TEST(DecodeGate, ALoneSequenceGoesInRings) {
  ring_pipeline p;
  decode_gate gate(p.send(), 1, 10s);
  p.use(gate, 3);
  decode_gate::member m(gate, {99});
  std::vector<int32_t> got;
  auto run = [&](int wanted) {
    return std::async(std::launch::async, [&, wanted] { return m.run(step(7), wanted); });
  };
  auto first = run(4);
  ASSERT_TRUE(p.wait_for_sent(1));
  EXPECT_EQ(p.ring_sizes, std::vector<uint32_t>{3});
  EXPECT_EQ(p.sent[0].stop_ids_size(), 1);
  for (size_t i = 0; i < 3; ++i) p.sample(i, static_cast<int32_t>(10 + i));
  got.push_back(first.get().token());
  got.push_back(run(3).get().token());
  got.push_back(run(2).get().token());
  EXPECT_EQ(p.n_sent(), 1u);  // the ring ran the two later steps itself
  EXPECT_EQ(m.looped(), 2);
  auto last = run(1);  // one token wanted: a plain step
  ASSERT_TRUE(p.wait_for_sent(2));
  EXPECT_EQ(p.ring_sizes, (std::vector<uint32_t>{3}));
  p.sample(3, 13);
  EXPECT_EQ(last.get().token(), 13);
  EXPECT_EQ(got, (std::vector<int32_t>{10, 11, 12}));
  EXPECT_TRUE(p.abandoned.empty());
}

// A stop id ends a ring early (the last stage sends nothing after it): the rest is given up, and a member
// that leaves inside a ring gives up its rest too.
TEST(DecodeGate, AStopIdOrALeavingMemberGivesUpTheRestOfARing) {
  ring_pipeline p;
  decode_gate gate(p.send(), 1, 10s);
  p.use(gate, 4);
  {
    decode_gate::member m(gate, {99});
    auto first = std::async(std::launch::async, [&] { return m.run(step(7), 10); });
    ASSERT_TRUE(p.wait_for_sent(1));
    p.sample(0, 5);
    p.sample(1, 99);
    EXPECT_EQ(first.get().token(), 5);
    EXPECT_EQ(m.run(step(7), 9).token(), 99);
    ASSERT_EQ(p.abandoned.size(), 1u);
    EXPECT_EQ(p.abandoned[0], (std::array<uint64_t, 3>{7, 3, 2}));
    auto again = std::async(std::launch::async, [&] { return m.run(step(7), 8); });
    ASSERT_TRUE(p.wait_for_sent(2));  // the next ring
    p.sample(4, 6);
    EXPECT_EQ(again.get().token(), 6);
  }
  ASSERT_EQ(p.abandoned.size(), 2u);
  EXPECT_EQ(p.abandoned[1], (std::array<uint64_t, 3>{7, 6, 3}));
}

// A sequence on its way (in its prefill) keeps a lone one from starting a ring, which it would wait for.
TEST(DecodeGate, NoRingStartsWhileASequenceArrives) {
  ring_pipeline p;
  decode_gate gate(p.send(), 1, 10s);
  p.use(gate, 4);
  decode_gate::member a(gate);
  {
    decode_gate::arrival coming(gate);
    auto plain = std::async(std::launch::async, [&] { return a.run(step(1), 10); });
    ASSERT_TRUE(p.wait_for_sent(1));
    EXPECT_TRUE(p.ring_sizes.empty());
    p.sample(0, 10);
    EXPECT_EQ(plain.get().token(), 10);
  }
  auto ringed = std::async(std::launch::async, [&] { return a.run(step(1), 9); });
  ASSERT_TRUE(p.wait_for_sent(2));
  EXPECT_EQ(p.ring_sizes, std::vector<uint32_t>{4});
  p.sample(1, 11);
  EXPECT_EQ(ringed.get().token(), 11);
}

// A sequence that starts decoding while a ring runs waits for its end; then the two go in a group, as steps
// of their own.
TEST(DecodeGate, ASecondSequenceWaitsForTheRingAndJoinsAGroup) {
  ring_pipeline p;
  decode_gate gate(p.send(), 1, 10s);
  p.use(gate, 2);
  decode_gate::member a(gate);
  auto first = std::async(std::launch::async, [&] { return a.run(step(1), 5); });
  ASSERT_TRUE(p.wait_for_sent(1));
  decode_gate::member b(gate);
  auto second = std::async(std::launch::async, [&] { return b.run(step(2), 5); });
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(p.n_sent(), 1u);  // the ring is still in the pipeline
  p.sample(0, 10);
  p.sample(1, 11);
  EXPECT_EQ(first.get().token(), 10);
  EXPECT_EQ(a.run(step(1), 4).token(), 11);  // the ring's end
  auto third = std::async(std::launch::async, [&] { return a.run(step(1), 3); });
  ASSERT_TRUE(p.wait_for_sent(3));
  EXPECT_EQ(p.ring_sizes, std::vector<uint32_t>{2});
  EXPECT_EQ(p.calls, std::vector<size_t>{2});  // one group of both, sent as plain steps
  EXPECT_EQ(p.sent[1].ring(), 0u);
  p.sample(2, 20);
  p.sample(3, 12);
  EXPECT_EQ(second.get().token(), 20);
  EXPECT_EQ(third.get().token(), 12);
}

}  // namespace
}  // namespace mlxd::dist
