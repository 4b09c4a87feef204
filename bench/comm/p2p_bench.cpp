// Point-to-point cost by message size: rank 0 sends a message of each size to rank 1, which answers with one
// byte-sized array; the round trip's median over `reps`, beside the same ping-pong over a plain TCP socket
// between the same two processes in the same run. Run under `mlxd launch -n 2 -- p2p_bench [reps] [max_mb]`
// (sizes 4 KB, 16 KB, ... up to max_mb, default 64); rank 0 prints one JSON object (ratio = grpc seconds /
// tcp seconds).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "mlxd/comm/registry.h"
#include "mlxd/comm/rendezvous.h"
#include "mlxd/core/ops.h"

namespace {

using mlxd::array;

// A connected TCP socket pair across the two ranks: rank 1 listens on a free loopback port and tells rank 0
// the port through the group.
class tcp_link {
 public:
  explicit tcp_link(mlxd::comm::group& g) {
    if (g.rank() == 1) {
      const int listener = check(socket(AF_INET, SOCK_STREAM, 0), "socket");
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      check(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), "bind");
      check(listen(listener, 1), "listen");
      socklen_t len = sizeof a;
      check(getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), "getsockname");
      g.send(mlxd::full({1}, ntohs(a.sin_port)), 0, 1);
      fd_ = check(accept(listener, nullptr, nullptr), "accept");
      close(listener);
    } else {
      const auto port = static_cast<uint16_t>(g.recv(1, 1).data<float>()[0]);
      fd_ = check(socket(AF_INET, SOCK_STREAM, 0), "socket");
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(port);
      check(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), "connect");
    }
    const int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~tcp_link() { close(fd_); }
  void send_all(const char* p, size_t n) {
    for (size_t done = 0; done < n;)
      done += static_cast<size_t>(check(::send(fd_, p + done, n - done, 0), "send"));
  }
  void recv_all(char* p, size_t n) {
    for (size_t done = 0; done < n;) {
      const ssize_t got = check(::recv(fd_, p + done, n - done, 0), "recv");
      if (got == 0) throw std::runtime_error("the peer closed the TCP socket");
      done += static_cast<size_t>(got);
    }
  }

 private:
  template <class T>
  static T check(T r, const char* what) {
    if (r < 0) throw std::runtime_error(std::string(what) + " failed");
    return r;
  }
  int fd_ = -1;
};

template <class F>
double seconds(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
    const int64_t max_bytes = static_cast<int64_t>(argc > 2 ? std::max(1, std::atoi(argv[2])) : 64) << 20;
    auto o = mlxd::comm::options_from_env();
    if (!o) throw std::runtime_error("run under `mlxd launch -n 2`");
    auto g = mlxd::comm::make_group("grpc", *o);
    if (g->size() != 2) throw std::runtime_error("needs exactly 2 ranks");
    tcp_link tcp(*g);
    const bool sender = g->rank() == 0;
    const array ack = mlxd::zeros({1}, mlxd::dtype::u8);
    nlohmann::json sizes = nlohmann::json::array();
    for (int64_t bytes = 4 << 10; bytes <= max_bytes; bytes *= 4) {
      const array x = mlxd::full({bytes / 4}, 1.0);
      std::vector<char> buf(static_cast<size_t>(bytes));
      char byte = 0;
      const auto grpc_trip = [&] {
        if (sender) {
          g->send(x, 1, 2);
          g->recv(1, 3);
        } else {
          g->recv(0, 2);
          g->send(ack, 0, 3);
        }
      };
      const auto tcp_trip = [&] {
        if (sender) {
          tcp.send_all(buf.data(), buf.size());
          tcp.recv_all(&byte, 1);
        } else {
          tcp.recv_all(buf.data(), buf.size());
          tcp.send_all(&byte, 1);
        }
      };
      grpc_trip(), tcp_trip();  // warm-up
      // Alternated, so both see the same load.
      std::vector<double> t_grpc, t_tcp;
      for (int r = 0; r < reps; ++r) {
        t_grpc.push_back(seconds(grpc_trip));
        t_tcp.push_back(seconds(tcp_trip));
      }
      const double a = median(t_grpc), b = median(t_tcp);
      sizes.push_back({{"bytes", bytes},
                       {"grpc_round_trip_us", a * 1e6},
                       {"tcp_round_trip_us", b * 1e6},
                       {"grpc_GBps", static_cast<double>(bytes) / a / 1e9},
                       {"tcp_GBps", static_cast<double>(bytes) / b / 1e9},
                       {"ratio", a / b}});
    }
    if (sender) std::printf("%s\n", nlohmann::json{{"reps", reps}, {"sizes", sizes}}.dump().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "p2p_bench: %s\n", e.what());
    return 1;
  }
}
