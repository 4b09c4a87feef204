// What one hand-off between pipeline stages costs this machine before any gRPC: two threads take turns to
// compute for T ms and then pass a token through a pipe, as a sequence's stages do on one machine. The figure
// is the time from the write to the reader running; the baseline is the same hand-off to a reader that polls
// instead of sleeping in read(). On a VM a sleeping thread's virtual CPU halts, and waking it costs the
// host's rescheduling: that is the floor under issue 6's "a hop adds under 0.3 ms" on this machine. Usage:
// handoff_bench [ROUNDS]   (JSON on stdout)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now().time_since_epoch()).count();
}

// Keeps a core busy for `ms` milliseconds, as a stage's forward pass does.
void compute_for(double ms) {
  const auto end = clock_type::now() + std::chrono::duration<double, std::milli>(ms);
  volatile double x = 0;
  while (clock_type::now() < end) x = x + 1;
}

struct pipe_pair {
  int fd[2];
  explicit pipe_pair(bool nonblocking_read) {
    if (pipe(fd) != 0) throw std::runtime_error("pipe failed");
    if (nonblocking_read) fcntl(fd[0], F_SETFL, fcntl(fd[0], F_GETFL) | O_NONBLOCK);
  }
  ~pipe_pair() {
    close(fd[0]);
    close(fd[1]);
  }
  pipe_pair(const pipe_pair&) = delete;
  pipe_pair& operator=(const pipe_pair&) = delete;
  void send(int64_t t) const {
    if (write(fd[1], &t, sizeof t) != sizeof t) throw std::runtime_error("pipe write failed");
  }
  // The write time of the next token; `poll` spins on a non-blocking read instead of sleeping in it.
  int64_t receive(bool poll) const {
    int64_t t = 0;
    for (;;) {
      const ssize_t n = read(fd[0], &t, sizeof t);
      if (n == sizeof t) return t;
      if (!(poll && n < 0)) throw std::runtime_error("pipe read failed");
    }
  }
};

// Two stages pass a token back and forth `rounds` times, each computing `ms` first; the latencies of every
// hand-off in microseconds, sorted.
std::vector<double> handoffs(double ms, int rounds, bool poll) {
  const pipe_pair to_b(poll), to_a(poll);
  std::vector<double> a_waits, b_waits;
  auto stage = [&](const pipe_pair& in, const pipe_pair& out, std::vector<double>& waits, bool first) {
    if (first) {
      compute_for(ms);
      out.send(now_ns());
    }
    for (int i = 0; i < rounds; ++i) {
      const int64_t sent = in.receive(poll);
      waits.push_back(static_cast<double>(now_ns() - sent) / 1000.0);
      if (first && i + 1 == rounds) break;
      compute_for(ms);
      out.send(now_ns());
    }
  };
  std::thread b([&] { stage(to_b, to_a, b_waits, false); });
  stage(to_a, to_b, a_waits, true);
  b.join();
  a_waits.insert(a_waits.end(), b_waits.begin(), b_waits.end());
  std::sort(a_waits.begin(), a_waits.end());
  return a_waits;
}

double quantile(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(q * static_cast<double>(sorted.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(10, std::atoi(argv[1])) : 100;
  nlohmann::json runs = nlohmann::json::array();
  for (double ms : {0.1, 1.0, 5.0, 10.0}) {
    // Alternated, so that both see the same state of a noisy host.
    const auto sleeping = handoffs(ms, rounds, false), polling = handoffs(ms, rounds, true);
    runs.push_back({{"compute_ms", ms},
                    {"handoffs", sleeping.size()},
                    {"sleeping_us",
                     {{"p10", quantile(sleeping, 0.1)},
                      {"p50", quantile(sleeping, 0.5)},
                      {"p90", quantile(sleeping, 0.9)}}},
                    {"polling_us",
                     {{"p10", quantile(polling, 0.1)},
                      {"p50", quantile(polling, 0.5)},
                      {"p90", quantile(polling, 0.9)}}},
                    {"ratio_p50", quantile(sleeping, 0.5) / quantile(polling, 0.5)}});
  }
  nlohmann::json out = {{"benchmark", "stage_handoff"},
                        {"cores", std::thread::hardware_concurrency()},
                        {"rounds", rounds},
                        {"runs", runs}};
  std::printf("%s\n", out.dump(1).c_str());
}
