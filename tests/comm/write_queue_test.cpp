// write_queue: one write in flight at a time, in push order, the close's follow-up after the last write,
// and a failed write dropping the rest. The "stream" records which message each started write carries; the
// test completes the writes as gRPC would.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/grpc/write_queue.h"

namespace mlxd::comm::rpc {
namespace {

struct recording_stream {
  std::vector<std::string> started;
  write_queue<std::string> queue{[this](const std::string& m) { started.push_back(m); }};
};

TEST(WriteQueue, OneWriteAtATimeInPushOrder) {
  recording_stream s;
  EXPECT_TRUE(s.queue.push("a"));
  EXPECT_EQ(s.started, std::vector<std::string>{"a"});  // idle: starts at once
  EXPECT_TRUE(s.queue.push("b"));
  EXPECT_TRUE(s.queue.push("c"));
  EXPECT_EQ(s.started.size(), 1u);  // "a" is still in flight
  s.queue.completed(true);
  EXPECT_EQ(s.started, (std::vector<std::string>{"a", "b"}));
  s.queue.completed(true);
  s.queue.completed(true);
  EXPECT_EQ(s.started, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(s.queue.push("d"));  // idle again
  EXPECT_EQ(s.started.back(), "d");
}

TEST(WriteQueue, CloseRunsItsFollowUpOnceTheLastWriteIsOut) {
  recording_stream s;
  int finished = 0;
  s.queue.push("a");
  s.queue.push("b");
  s.queue.close([&] { ++finished; });
  EXPECT_FALSE(s.queue.push("late"));
  EXPECT_EQ(finished, 0);
  s.queue.completed(true);
  EXPECT_EQ(finished, 0);  // "b" goes out first
  EXPECT_EQ(s.started.back(), "b");
  s.queue.completed(true);
  EXPECT_EQ(finished, 1);
  EXPECT_EQ(s.started, (std::vector<std::string>{"a", "b"}));

  recording_stream idle;
  bool now = false;
  idle.queue.close([&] { now = true; });
  EXPECT_TRUE(now);
}

TEST(WriteQueue, WhenFlushedWaitsForTheQueuedWritesAndLetsPushesGoOn) {
  recording_stream s;
  int flushed = 0;
  s.queue.when_flushed([&] { ++flushed; });
  EXPECT_EQ(flushed, 1);  // nothing queued
  s.queue.push("a");
  s.queue.push("b");
  s.queue.when_flushed([&] { ++flushed; });
  s.queue.when_flushed([&] { ++flushed; });
  s.queue.completed(true);
  EXPECT_EQ(flushed, 1);
  s.queue.completed(true);
  EXPECT_EQ(flushed, 3);
  EXPECT_TRUE(s.queue.push("c"));  // not closed
  s.queue.completed(true);
  EXPECT_EQ(flushed, 3);  // each runs once
}

TEST(WriteQueue, AFailedWriteDropsTheRestAndLaterPushes) {
  recording_stream s;
  int finished = 0;
  s.queue.push("a");
  s.queue.push("b");
  s.queue.completed(false);
  EXPECT_EQ(s.started, std::vector<std::string>{"a"});  // "b" never starts
  EXPECT_FALSE(s.queue.push("c"));
  s.queue.close([&] { ++finished; });
  EXPECT_EQ(finished, 1);  // the stream still ends
}

}  // namespace
}  // namespace mlxd::comm::rpc
