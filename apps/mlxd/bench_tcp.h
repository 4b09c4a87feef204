// Raw TCP on loopback, the baseline `mlxd bench comm` measures beside gRPC between the same processes: a
// connected pair for ping-pong and streams, and a ring of connections for the same ring all-reduce.
#pragma once

#include <cstddef>
#include <cstdint>

#include "mlxd/comm/group.h"

namespace mlxd::app::tcp {

void write_all(int fd, const void* p, size_t n);
void read_all(int fd, void* p, size_t n);

// A TCP connection between ranks 0 and 1 of `g` (rank 1 listens on an ephemeral port and tells rank 0 through
// g); TCP_NODELAY. Collective over ranks 0 and 1 of g. Returns the socket.
int connect_pair(comm::group& g);

// Every rank of `g` connected to its right neighbour (to_right) and from its left one (from_left).
struct ring {
  int to_right = -1, from_left = -1;
  ~ring();
};
// Collective over g.
void connect_ring(comm::group& g, ring& out);

// In-place f32 sum over the ring: reduce-scatter then all-gather, each rank sending one segment while it
// receives the next (a thread per send), pieces reduced as they arrive. `x` has n_elements floats.
void ring_all_reduce(const ring& t, float* x, int64_t n_elements, int rank, int size);

}  // namespace mlxd::app::tcp
