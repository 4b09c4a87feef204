// mlxd's threads carry names that profilers show (perf sched, top -H).
#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "mlxd/core/thread_name.h"
#include "mlxd/core/thread_pool.h"
#include "proc_threads.h"

namespace mlxd {
namespace {

std::string own_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

// The names of every thread of this process.
std::set<std::string> thread_names() {
  std::set<std::string> names;
  for (const auto& [tid, name] : test::threads_by_id()) names.insert(name);
  return names;
}

TEST(ThreadName, NamesTheCallingThreadAndCutsAtFifteenCharacters) {
  std::string short_name, long_name;
  std::thread([&] {
    name_this_thread("mlxd-test");
    short_name = own_name();
    name_this_thread("mlxd-a-name-longer-than-fifteen");
    long_name = own_name();
  }).join();
  EXPECT_EQ(short_name, "mlxd-test");
  EXPECT_EQ(long_name, "mlxd-a-name-lon");
}

TEST(ThreadName, PoolWorkersAreNamed) {
  const int saved = num_threads();
  set_num_threads(3);
  // A worker names itself as it starts.
  auto names = thread_names();
  for (int i = 0; i < 200 && !(names.count("mlxd-pool-1") && names.count("mlxd-pool-2")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    names = thread_names();
  }
  set_num_threads(saved);
  EXPECT_TRUE(names.count("mlxd-pool-1")) << "no thread named mlxd-pool-1";
  EXPECT_TRUE(names.count("mlxd-pool-2")) << "no thread named mlxd-pool-2";
}

}  // namespace
}  // namespace mlxd
