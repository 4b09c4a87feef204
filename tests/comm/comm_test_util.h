// Helpers for the comm tests: free loopback ports, groups of in-process ranks, seeded inputs, references.
#pragma once

#include <cstring>
#include <exception>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "mlxd/comm/group.h"
#include "mlxd/comm/launch.h"
#include "mlxd/comm/options.h"
#include "mlxd/comm/registry.h"
#include "mlxd/core/array.h"

namespace mlxd::comm::test {

// A TCP port on 127.0.0.1 that was free a moment ago, out of the way of outgoing connections.
inline int free_port() {
  return pick_free_port();
}

// Options for rank `rank` of `world` with rank 0 as master on `port`; short timeouts for tests.
inline group_options loopback_options(int rank, int world, int port) {
  group_options o;
  o.rank = rank;
  o.world_size = world;
  o.master_addr = "127.0.0.1";
  o.master_port = port;
  o.connect_timeout = std::chrono::seconds(20);
  o.timeout = std::chrono::seconds(30);
#if defined(__SANITIZE_THREAD__)
  // Under ThreadSanitizer eight ranks' threads on two cores can answer a keepalive ping seconds late.
  o.keepalive_timeout = std::chrono::seconds(20);
#endif
  return o;
}

// Forms a gRPC group of `world` ranks in threads of this process and runs `body(group)` on each; rethrows
// the first failure. `tweak` adjusts each rank's options.
inline void run_ranks(int world, const std::function<void(group&)>& body,
                      const std::function<void(group_options&)>& tweak = {}) {
  const int port = free_port();
  std::vector<std::exception_ptr> errors(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      try {
        group_options o = loopback_options(r, world, port);
        if (tweak) tweak(o);
        auto g = make_group("grpc", o);
        body(*g);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Seeded values of every dtype, different per rank: floats in [-4, 4) (exact in bf16 up to 3 significant
// bits, so sums of a few ranks stay exact), integers in a small range, bools.
inline array seeded(const shape_t& shape, dtype t, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int64_t n = shape_size(shape);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) {
    if (t == dtype::boolean)
      x = static_cast<float>(rng() % 2);
    else if (t == dtype::u8)
      x = static_cast<float>(rng() % 200);
    else if (is_floating(t))
      x = static_cast<float>(static_cast<int>(rng() % 64) - 32) / 8.0f;
    else
      x = static_cast<float>(static_cast<int64_t>(rng() % 2001) - 1000);
  }
  return array::from(v, shape, t);
}

inline std::vector<uint8_t> bytes_of(const array& a) {
  std::vector<uint8_t> out(a.nbytes());
  if (!out.empty()) std::memcpy(out.data(), a.raw_data(), out.size());
  return out;
}

}  // namespace mlxd::comm::test
