// The limit on messages that wait for a recv (group_options::max_buffered_bytes): the mailbox pauses a
// sender's stream above it and resumes it when a recv makes room; a sender whose peer never reads fails after
// the timeout with a message that says so; a recv that would need unbounded buffering fails clearly; and
// every collective still completes, with exact results, under a limit far below its sizes.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "collective_checks.h"
#include "comm/mailbox.h"
#include "comm_test_util.h"

namespace mlxd::comm {
namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

auto members_of(std::vector<int> m) {
  return std::make_shared<const std::vector<int>>(std::move(m));
}

std::shared_ptr<request::state> new_recv(const char* what = "recv") {
  auto r = std::make_shared<request::state>();
  r->what = what;
  r->timeout = 2000ms;
  r->deadline = request::state::clock::now() + r->timeout;
  return r;
}

TEST(comm_flow_control, the_mailbox_pauses_a_source_over_the_limit_until_a_recv_makes_room) {
  mailbox box(2, 100);
  const auto all = members_of({0, 1});
  int resumed = 0;
  // 60 + 60 bytes from rank 1: over the limit once the second has started.
  box.reserve(1, 60);
  EXPECT_FALSE(box.pause(1, &box, [&] { ++resumed; }));
  box.deliver(0, 1, 7, array::empty({15}, dtype::f32), 60);
  box.reserve(1, 60);
  box.deliver(0, 1, 7, array::empty({15}, dtype::f32), 60);
  EXPECT_EQ(box.buffered_bytes(1), 120u);
  ASSERT_TRUE(box.pause(1, &box, [&] { ++resumed; }));
  EXPECT_EQ(resumed, 0);
  auto r = new_recv();
  box.post(0, 1, 7, all, r);  // takes one: 60 bytes left, under the limit
  EXPECT_EQ(resumed, 1);
  EXPECT_EQ(r->wait().size(), 15);
  EXPECT_EQ(box.buffered_bytes(1), 60u);
  // Over the limit again, but a recv waits for rank 1 (another tag): reading goes on.
  box.reserve(1, 60);
  box.deliver(0, 1, 8, array::empty({15}, dtype::f32), 60);
  auto waiting = new_recv();
  box.post(0, 1, 9, all, waiting);
  EXPECT_FALSE(box.pause(1, &box, [&] { ++resumed; }));
  // A paused stream that ends takes its resume back.
  box.post(0, 1, 7, all, new_recv());
  box.post(0, 1, 8, all, new_recv());
  EXPECT_EQ(box.buffered_bytes(1), 0u);
  EXPECT_FALSE(box.cancel_pause(1, &box));
}

TEST(comm_flow_control, a_recv_behind_too_many_unreceived_messages_fails_clearly) {
  mailbox box(2, 100);
  auto r = new_recv("recv from rank 1, tag 2");
  box.post(0, 1, 2, members_of({0, 1}), r);
  for (int i = 0; i < 3; ++i) {
    box.reserve(1, 40);
    box.deliver(0, 1, 1, array::empty({10}, dtype::f32), 40);
  }
  try {
    r->wait();
    ADD_FAILURE() << "the recv succeeded";
  } catch (const comm_error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("recv from rank 1, tag 2 failed"), std::string::npos) << what;
    EXPECT_NE(what.find("120 bytes of messages that this rank has not received"), std::string::npos) << what;
    EXPECT_NE(what.find("max_buffered_bytes"), std::string::npos) << what;
  }
}

TEST(comm_flow_control, only_the_first_waiting_recv_with_matching_memory_is_claimed) {
  mailbox box(2);
  const auto all = members_of({0, 1});
  auto plain = new_recv(), sink = new_recv();
  sink->sink = std::make_shared<recv_sink>(array::empty({4}, dtype::f32), false, reduce_op::sum);
  box.post(0, 1, 3, all, plain);
  box.post(0, 1, 3, all, sink);
  EXPECT_EQ(box.claim_sink(0, 1, 3, dtype::f32, 16), nullptr);  // the first waiter offers no memory
  box.deliver(0, 1, 3, array::empty({1}, dtype::u8));
  EXPECT_EQ(plain->wait().size(), 1);
  EXPECT_EQ(box.claim_sink(0, 1, 3, dtype::i32, 16), nullptr);  // another dtype
  EXPECT_EQ(box.claim_sink(0, 1, 3, dtype::f32, 12), nullptr);  // another size
  EXPECT_EQ(box.claim_sink(0, 1, 3, dtype::f32, 16), sink);
  EXPECT_EQ(box.claim_sink(0, 1, 3, dtype::f32, 16), nullptr);  // taken
}

// Sixty-four 1 MB messages to a rank that does not read for a while: far more than TCP and HTTP/2 buffer, so
// with a 1 MB limit some sends must still be waiting when it starts; all then arrive intact and in order.
TEST(comm_flow_control, a_sender_waits_for_a_slow_receiver_and_nothing_is_lost) {
  constexpr int n_messages = 64;
  std::atomic<int> done_while_asleep{-1};
  test::run_ranks(
      2,
      [&](group& g) {
        if (g.rank() == 0) {
          std::vector<request> sends;
          for (int i = 0; i < n_messages; ++i)
            sends.push_back(g.isend(test::seeded({1 << 18}, dtype::f32, static_cast<uint64_t>(i)), 1, 4));
          std::this_thread::sleep_for(1500ms);
          int done = 0;
          for (auto& s : sends) done += s.ready() ? 1 : 0;
          done_while_asleep = done;
          for (auto& s : sends) s.wait();
        } else {
          std::this_thread::sleep_for(2000ms);
          for (int i = 0; i < n_messages; ++i)
            ASSERT_EQ(test::bytes_of(g.recv(0, 4)),
                      test::bytes_of(test::seeded({1 << 18}, dtype::f32, static_cast<uint64_t>(i))))
                << "message " << i;
        }
        g.barrier();
      },
      [](group_options& o) { o.max_buffered_bytes = 1 << 20; });
  EXPECT_GE(done_while_asleep.load(), 0);
  EXPECT_LT(done_while_asleep.load(), n_messages);
}

TEST(comm_flow_control, a_send_to_a_peer_that_never_reads_fails_after_the_timeout) {
  test::run_ranks(
      2,
      [&](group& g) {
        if (g.rank() == 0) {
          const auto start = clock_type::now();
          try {
            for (int i = 0; i < 64; ++i) g.send(array::empty({1 << 20}, dtype::u8), 1, 4);
            ADD_FAILURE() << "64 MB went to a rank that reads nothing";
          } catch (const comm_error& e) {
            EXPECT_NE(std::string(e.what()).find("read nothing for 1500 ms"), std::string::npos) << e.what();
          }
          EXPECT_LT(clock_type::now() - start, 6s);
        } else {
          std::this_thread::sleep_for(4000ms);
        }
      },
      [](group_options& o) {
        o.max_buffered_bytes = 1 << 20;
        o.timeout = 1500ms;
      });
}

// Every collective, ring and direct, with a limit below a single pipeline piece.
TEST(comm_flow_control, collectives_complete_under_a_small_limit) {
  test::run_ranks(
      3,
      [](group& g) {
        check_all_collectives(g, {3, 40000});
        const int64_t n = 3 << 20;  // 12 MB of f32 through the ring
        array x = test::seeded({n}, dtype::f32, seed_of(g.rank(), 77));
        expect_equal(g.all_reduce(x, reduce_op::sum),
                     reference_reduce({n}, dtype::f32, reduce_op::sum, 3, 77), "12 MB all_reduce");
        array all = g.all_gather(x);
        for (int r = 0; r < g.size(); ++r)
          EXPECT_EQ(0, std::memcmp(all.data<float>() + r * n,
                                   test::seeded({n}, dtype::f32, seed_of(r, 77)).data<float>(), n * 4))
              << "all_gather row " << r;
      },
      [](group_options& o) {
        o.max_buffered_bytes = 32 << 10;
        o.pipeline_bytes = 256 << 10;
        o.small_all_reduce_bytes = 4 << 10;
      });
}

}  // namespace
}  // namespace mlxd::comm
