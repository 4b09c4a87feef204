#include "bench_tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <exception>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

namespace mlxd::app::tcp {
namespace {

int listen_loopback(int* port) {
  const int ls = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (ls < 0 || bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(ls, 4) != 0 ||
      getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("bench: cannot listen for the TCP baseline");
  *port = ntohs(a.sin_port);
  return ls;
}

int connect_loopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("bench: TCP connect to port " + std::to_string(port) + " failed");
  return fd;
}

int accept_one(int ls) {
  const int fd = accept(ls, nullptr, nullptr);
  close(ls);
  if (fd < 0) throw std::runtime_error("bench: TCP accept failed");
  return fd;
}

void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

void write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) throw std::runtime_error("bench: TCP write failed");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void read_all(int fd, void* data, size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) throw std::runtime_error("bench: TCP read failed");
    p += r;
    n -= static_cast<size_t>(r);
  }
}

int connect_pair(comm::group& g) {
  int fd = -1;
  if (g.rank() == 1) {
    int port = 0;
    const int ls = listen_loopback(&port);
    g.send(array::from(std::vector<int32_t>{port}, {1}), 0, 1);
    fd = accept_one(ls);
  } else {
    fd = connect_loopback(g.recv(1, 1).item<int32_t>());
  }
  no_delay(fd);
  return fd;
}

ring::~ring() {
  if (to_right >= 0) close(to_right);
  if (from_left >= 0) close(from_left);
}

void connect_ring(comm::group& g, ring& out) {
  int port = 0;
  const int ls = listen_loopback(&port);
  const auto ports = g.all_gather(array::from(std::vector<int32_t>{port}, {1})).to_vector<int32_t>();
  // The listen backlog completes the connect before the neighbour accepts, so no rank waits for another.
  out.to_right = connect_loopback(ports[static_cast<size_t>((g.rank() + 1) % g.size())]);
  out.from_left = accept_one(ls);
  no_delay(out.to_right);
  no_delay(out.from_left);
}

void ring_all_reduce(const ring& t, float* x, int64_t n_elements, int r, int n) {
  auto segment = [&](int k) {  // [begin, end) of segment k mod n
    k = ((k % n) + n) % n;
    return std::pair<int64_t, int64_t>{n_elements * k / n, n_elements * (k + 1) / n};
  };
  constexpr int64_t piece = (1 << 20) / sizeof(float);
  std::vector<float> got(static_cast<size_t>(piece));
  for (int phase = 0; phase < 2; ++phase) {
    for (int s = 0; s < n - 1; ++s) {
      // Reduce-scatter sends segment r-s-1 and receives r-s-2; the all-gather sends r-s and receives r-s-1.
      const auto [send_begin, send_end] = segment(r - s - 1 + phase);
      const auto [recv_begin, recv_end] = segment(r - s - 2 + phase);
      std::exception_ptr send_error;
      std::thread sender([&] {
        try {
          write_all(t.to_right, x + send_begin, static_cast<size_t>(send_end - send_begin) * sizeof(float));
        } catch (...) {
          send_error = std::current_exception();
        }
      });
      try {
        for (int64_t b = recv_begin; b < recv_end; b += piece) {
          const int64_t m = std::min(piece, recv_end - b);
          if (phase == 1) {
            read_all(t.from_left, x + b, static_cast<size_t>(m) * sizeof(float));
            continue;
          }
          read_all(t.from_left, got.data(), static_cast<size_t>(m) * sizeof(float));
          for (int64_t i = 0; i < m; ++i) x[b + i] += got[static_cast<size_t>(i)];
        }
      } catch (...) {
        shutdown(t.to_right, SHUT_RDWR);  // ends the sender too
        sender.join();
        throw;
      }
      sender.join();
      if (send_error) std::rethrow_exception(send_error);
    }
  }
}

}  // namespace mlxd::app::tcp
