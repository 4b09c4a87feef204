// What one rank calls a collective with, exchanged by every rank before any data moves, so that ranks whose
// arguments differ (a user bug) all fail at once with an error naming the difference instead of waiting for
// pieces that never come. A descriptor is a small i64 array; one from a peer is untrusted and parsed
// strictly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/comm/group.h"
#include "mlxd/core/array.h"

namespace mlxd::comm {

enum class collective_kind : int64_t { all_reduce = 1, reduce_scatter, all_gather, broadcast };

struct collective_desc {
  collective_kind kind = collective_kind::all_reduce;
  int64_t param = 0;  // the reduce_op of a reduction, the root of a broadcast, 0 for all_gather
  dtype type = dtype::f32;
  shape_t shape;
  bool ok = true;  // the arguments passed this rank's own checks
  bool direct =
      false;  // the direct algorithm: its data went out with the descriptor (a broadcast's: root only)

  int64_t elements() const { return shape_size(shape); }
  array encode() const;
  // nullopt, with `why`, for anything that is not a well-formed descriptor.
  static std::optional<collective_desc> parse(const array& message, std::string& why);
  // Whether the rank that sent this descriptor sent `to` data ahead of agreement (the direct algorithm's
  // one message per peer), which a rank that stops at a disagreement must take out of its mailbox.
  bool sent_direct_data(int sender, int to) const;
};

// "" when the descriptors of all ranks (indexed by rank) agree, else the disagreement, worded the same on
// every rank: "rank 1 has 1000 float32 elements [1000], rank 0 has 999 float32 elements [999]".
std::string disagreement(const std::vector<collective_desc>& all);

}  // namespace mlxd::comm
