// mlxd::comm::group: a set of ranks that exchange arrays point to point and run collectives together.
//
// Every rank of a group calls the collectives in the same order with matching arguments (as in MPI and NCCL).
// Results are fresh, contiguous arrays owned by the caller; inputs may be any view (non-contiguous ones are
// copied first). A group is safe to use from one thread at a time per rank; point-to-point calls with
// distinct peers or tags may overlap through the non-blocking variants.
//
// Errors: misuse (a rank out of range, a dtype a reduction does not support) throws std::invalid_argument
// with a "[function]" prefix. Ranks that call one collective with different arguments (another collective,
// reduction or root, another dtype or shape) all throw std::invalid_argument at once, naming two ranks and
// what differs, and the group stays usable. A network failure, a lost peer or a timeout throws comm_error
// naming the peer and the operation. After a comm_error the group is broken: every later call throws the
// same error.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "mlxd/core/array.h"

namespace mlxd::comm {

enum class reduce_op : uint8_t { sum, mean, max, min, count };
inline constexpr int n_reduce_ops = static_cast<int>(reduce_op::count);
static_assert(n_reduce_ops == 4, "update reduce.cpp and reduce_op_name when adding a reduction");
// "sum", "mean", "max", "min".
const char* reduce_op_name(reduce_op op);

// A network failure, a lost or departed peer, a refused handshake, or a timeout.
class comm_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The handle of a non-blocking send or receive. wait() blocks until it completes and returns the received
// array (for a send: an empty array), or throws what the operation failed with. wait() may be called once.
class request {
 public:
  struct state;
  request() = default;
  explicit request(std::shared_ptr<state> s) : state_(std::move(s)) {}
  array wait();
  bool ready() const;  // true once wait() would not block
  bool valid() const { return state_ != nullptr; }

 private:
  std::shared_ptr<state> state_;
};

class group {
 public:
  virtual ~group() = default;
  group() = default;
  group(const group&) = delete;
  group& operator=(const group&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string backend() const = 0;

  // Point to point. Messages from one sender with one tag arrive in the order they were sent. A send may
  // return before the receiver calls recv (the receiver buffers). `tag` is any value below 2^62.
  virtual request isend(const array& x, int dst, uint64_t tag) = 0;
  virtual request irecv(int src, uint64_t tag) = 0;
  virtual void send(const array& x, int dst, uint64_t tag) { isend(x, dst, tag).wait(); }
  virtual array recv(int src, uint64_t tag) { return irecv(src, tag).wait(); }

  // The elementwise reduction of `x` over all ranks, on every rank. mean needs a floating dtype; on bool,
  // sum and max are OR and min is AND; integer sums wrap. The reduction order is fixed for a given group
  // size, dtype and element count, so results are bit-identical from run to run and on every rank.
  virtual array all_reduce(const array& x, reduce_op op) = 0;
  // The inputs of all ranks (same dtype and shape everywhere) concatenated along a new leading axis:
  // [size, ...x.shape].
  virtual array all_gather(const array& x) = 0;
  // all_reduce(x) split into size() equal parts along axis 0; rank r gets part r. x.shape(0) must be a
  // multiple of size().
  virtual array reduce_scatter(const array& x, reduce_op op) = 0;
  // Rank `root`'s `x` on every rank (other ranks' `x` gives nothing but must be passed: empty, or of the
  // root's dtype and shape).
  virtual array broadcast(const array& x, int root) = 0;
  virtual void barrier() = 0;
  // Sub-groups: ranks with the same `color` form one, ordered by (key, rank). Collective over this group.
  virtual std::shared_ptr<group> split(int color, int key) = 0;
};

}  // namespace mlxd::comm
