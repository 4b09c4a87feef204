// One rank of a multi-process test, started by `mlxd launch` or by a test harness with the MLXD_*
// environment.
//   comm_worker [gtest flags]   run the collective checks of collective_checks.h on the group from the
//   environment comm_worker loop            all-reduce 4 MB over and over; print "looping" once, and when a
//   peer is lost
//                               print the error and exit with status 3
//   comm_worker echo TOKEN      serve (Hello, Echo) on a free port of 127.0.0.1, print "port N", stop at EOF
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>

#include "collective_checks.h"
#include "comm/grpc/node.h"
#include "mlxd/comm/rendezvous.h"

namespace mlxd::comm {
namespace {

std::shared_ptr<group> group_from_env() {
  auto o = options_from_env();
  if (!o) throw std::runtime_error("comm_worker: MLXD_RANK and MLXD_WORLD_SIZE are not set");
  o->connect_timeout = std::chrono::seconds(30);
  return make_group("grpc", *o);
}

TEST(env_group, collectives_match_the_reference) {
  auto g = group_from_env();
  check_all_collectives(*g, {0, 1, 33, 3000});
}

TEST(env_group, ring_and_large_messages) {
  auto o = options_from_env();
  ASSERT_TRUE(o);
  o->small_all_reduce_bytes = 1024;
  o->pipeline_bytes = 256 << 10;
  auto g = make_group("grpc", *o);
  check_all_collectives(*g, {1000, 300000});
  // 12 MB through one send, around the ring.
  const int n = g->size(), me = g->rank();
  array x = seeded({3 << 20}, dtype::f32, seed_of(me, 99));
  g->send(x, (me + 1) % n, 5);
  array got = g->recv((me + n - 1) % n, 5);
  EXPECT_EQ(bytes_of(got), bytes_of(seeded({3 << 20}, dtype::f32, seed_of((me + n - 1) % n, 99))));
}

int loop() {
  auto g = group_from_env();
  array x = seeded({1 << 20}, dtype::f32, static_cast<uint64_t>(g->rank()));
  const auto start = std::chrono::steady_clock::now();
  try {
    for (int i = 0;; ++i) {
      g->all_reduce(x, reduce_op::sum);
      if (i == 0) std::printf("looping\n"), std::fflush(stdout);
      if (std::chrono::steady_clock::now() - start > std::chrono::seconds(60)) return 0;
    }
  } catch (const comm_error& e) {
    std::fprintf(stderr, "comm_error: %s\n", e.what());
    return 3;
  }
}

int echo(const std::string& token) {
  mailbox box(1);
  rpc::comm_service service(rpc::identity{0, 1, "echo", token, {}}, &box);
  int port = 0;
  auto server = rpc::start_server(service, "127.0.0.1", 0, group_options{}, &port);
  std::printf("port %d\n", port);
  std::fflush(stdout);
  std::string line;
  while (std::getline(std::cin, line)) {
  }
  server->shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return 0;
}

}  // namespace
}  // namespace mlxd::comm

int main(int argc, char** argv) {
  try {
    if (argc >= 2 && std::strcmp(argv[1], "loop") == 0) return mlxd::comm::loop();
    if (argc >= 2 && std::strcmp(argv[1], "echo") == 0) return mlxd::comm::echo(argc >= 3 ? argv[2] : "");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "comm_worker: %s\n", e.what());
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
