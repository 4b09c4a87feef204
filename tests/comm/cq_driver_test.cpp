// cq_driver: who drives the server's completion queue. Events are gRPC alarms on a real queue; each records
// the thread that handled it, so the tests see that a waiter handles what arrives while it waits, hands the
// queue on when it leaves, ends its wait when another thread completes its request, and that the background
// thread drives while nobody waits and gives way to a waiter.
#include <grpcpp/alarm.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "comm/grpc/cq_driver.h"

namespace mlxd::comm::rpc {
namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

// A started server with no services, for its completion queue. Ends in the order gRPC needs.
class queue_owner {
 public:
  queue_owner() {
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    cq_ = b.AddCompletionQueue();
    server_ = b.BuildAndStart();
  }
  std::unique_ptr<cq_driver> driver(std::chrono::milliseconds background_after) {
    auto d = std::make_unique<cq_driver>(
        std::move(cq_), [] {}, background_after);
    d->start();
    return d;
  }
  void stop(cq_driver& d) {
    server_->Shutdown(std::chrono::system_clock::now());
    d.stop();
  }

 private:
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
};

std::shared_ptr<request::state> request_until(steady::duration timeout) {
  auto s = std::make_shared<request::state>();
  s->what = "test";
  s->deadline = steady::now() + timeout;
  return s;
}

array nothing() {
  return array::empty({0}, dtype::u8);
}

// An alarm that completes `s` (when given) on whichever thread drives, and says which thread that was.
struct event {
  event(cq_driver& d, std::chrono::milliseconds after, std::shared_ptr<request::state> s = nullptr)
      : target(std::move(s)) {
    alarm.Set(d.cq(), std::chrono::system_clock::now() + after, op(tag));
  }
  std::shared_ptr<request::state> target;
  std::atomic<std::thread::id> handled_by{};
  std::atomic<bool> handled{false};
  cq_driver::tag tag{[this](bool) {
    handled_by = std::this_thread::get_id();
    if (target) target->complete(nothing());
    handled = true;
  }};
  grpc::Alarm alarm;
};

bool eventually(const std::atomic<bool>& flag) {
  const auto end = steady::now() + 10s;
  while (!flag && steady::now() < end) std::this_thread::sleep_for(1ms);
  return flag;
}

TEST(cq_driver, a_waiter_handles_the_event_it_waits_for) {
  queue_owner q;
  auto d = q.driver(60s);  // the background thread never takes over here
  auto s = request_until(10s);
  event e(*d, 20ms, s);
  d->wait(*s);
  EXPECT_TRUE(s->ready());
  EXPECT_EQ(e.handled_by.load(), std::this_thread::get_id());
  q.stop(*d);
}

TEST(cq_driver, the_background_thread_drives_while_nobody_waits) {
  queue_owner q;
  auto d = q.driver(1ms);
  event e(*d, 5ms);
  ASSERT_TRUE(eventually(e.handled));
  EXPECT_NE(e.handled_by.load(), std::this_thread::get_id());
  q.stop(*d);
}

TEST(cq_driver, a_waiter_takes_the_queue_from_the_background_thread) {
  queue_owner q;
  auto d = q.driver(1ms);
  std::this_thread::sleep_for(30ms);  // the background thread drives by now
  auto s = request_until(10s);
  event e(*d, 300ms, s);
  d->wait(*s);
  EXPECT_TRUE(s->ready());
  EXPECT_EQ(e.handled_by.load(), std::this_thread::get_id());
  q.stop(*d);
}

TEST(cq_driver, a_completion_on_another_thread_ends_the_wait) {
  queue_owner q;
  auto d = q.driver(60s);
  auto s = request_until(60s);
  std::thread other([s] {
    std::this_thread::sleep_for(50ms);
    s->complete(nothing());
  });
  const auto start = steady::now();
  d->wait(*s);  // would block in the queue until the deadline without the kick
  other.join();
  EXPECT_TRUE(s->ready());
  EXPECT_LT(steady::now() - start, 10s);
  q.stop(*d);
}

TEST(cq_driver, a_leaving_waiter_hands_the_queue_to_the_next) {
  queue_owner q;
  auto d = q.driver(60s);
  auto first = request_until(10s), second = request_until(10s);
  event e1(*d, 40ms, first), e2(*d, 300ms, second);
  std::thread::id second_thread;
  std::thread a([&] { d->wait(*first); });
  std::this_thread::sleep_for(10ms);
  std::thread b([&] {
    second_thread = std::this_thread::get_id();
    d->wait(*second);
  });
  a.join();
  b.join();
  EXPECT_TRUE(first->ready());
  EXPECT_TRUE(second->ready());
  // Whoever drove first, the second waiter drove the queue for its own event once the first had left.
  EXPECT_EQ(e2.handled_by.load(), second_thread);
  q.stop(*d);
}

// The driver's event also completes the first waiter in line, which leaves when its turn comes: the turn
// must go on to the next one, or that one sleeps with nobody driving its event.
TEST(cq_driver, a_turn_given_to_a_waiter_already_done_goes_on) {
  queue_owner q;
  auto d = q.driver(60s);
  for (int round = 0; round < 10; ++round) {
    auto driving = request_until(10s), done_in_line = request_until(10s), last = request_until(2s);
    cq_driver::tag both{[&](bool) {
      done_in_line->complete(nothing());
      driving->complete(nothing());
    }};
    grpc::Alarm alarm;
    alarm.Set(d->cq(), std::chrono::system_clock::now() + 40ms, op(both));
    event later(*d, 80ms, last);
    std::thread a([&] { d->wait(*driving); });
    std::this_thread::sleep_for(10ms);
    std::thread b([&] { d->wait(*done_in_line); });
    std::this_thread::sleep_for(10ms);
    d->wait(*last);
    a.join();
    b.join();
    ASSERT_TRUE(last->ready()) << "round " << round;
  }
  q.stop(*d);
}

TEST(cq_driver, a_wait_ends_at_the_deadline) {
  queue_owner q;
  auto d = q.driver(60s);
  auto s = request_until(50ms);
  const auto start = steady::now();
  d->wait(*s);
  EXPECT_FALSE(s->ready());
  EXPECT_GE(steady::now() - start, 50ms);
  EXPECT_THROW(s->wait(), comm_error);  // the request then times out as usual
  q.stop(*d);
}

TEST(cq_driver, after_stop_a_wait_returns_at_once) {
  queue_owner q;
  auto d = q.driver(1ms);
  q.stop(*d);
  auto s = request_until(10s);
  const auto start = steady::now();
  d->wait(*s);
  EXPECT_LT(steady::now() - start, 5s);
  EXPECT_FALSE(s->ready());
}

}  // namespace
}  // namespace mlxd::comm::rpc
