// Memory a receive lands in instead of a new array: a collective posts the part of its buffer a message is
// meant for, and the transport copies the message's bytes there, or reduces them into it, as they arrive
// (one pass over the data instead of a copy into a new array and a second pass).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "mlxd/comm/group.h"
#include "mlxd/core/array.h"

namespace mlxd::comm {

class recv_sink {
 public:
  // `dst` is contiguous; only a message of its dtype and size lands here. With `reduce`, element i becomes
  // dst[i] (op) message[i], exactly as reduce_into computes it, where dst[i] is first taken from `base`
  // when one is given (contiguous, like dst).
  recv_sink(array dst, bool reduce, reduce_op op, array base = array())
      : dst_(std::move(dst)), base_(std::move(base)), reduce_(reduce), op_(op) {}
  const array& dst() const { return dst_; }
  // Consumes the message's next n bytes; pieces may split elements. Used by one thread at a time.
  void write(const char* data, size_t n);

 private:
  array dst_, base_;
  bool reduce_;
  reduce_op op_;
  size_t written_ = 0;            // bytes consumed
  std::vector<uint8_t> staging_;  // aligned elements waiting to be reduced (whole and partial)
};

}  // namespace mlxd::comm
