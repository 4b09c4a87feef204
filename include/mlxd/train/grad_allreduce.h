// Data-parallel gradient summation: every rank's f32 gradients summed over a comm::group in buckets.
//
// Every rank must call sum() and sum_scalars() in the same order with gradients of the same count, shapes
// and dtype (as with any collective). Results are bit-identical on every rank (the group reduces in a fixed
// order) and from run to run. An instance uses its group from at most two threads at a time: the caller's
// and one it starts per sum() to run the collectives while the caller packs the next bucket; do not use
// the group elsewhere while sum() runs. Not thread-safe itself.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "mlxd/comm/group.h"
#include "mlxd/core/array.h"

namespace mlxd::train {

// How sum() groups the gradients: bucket k holds elements [begin, end) of their concatenation (in order,
// flattened), always whole gradients. A gradient of at least max(1, bucket_bytes / 4) elements is a bucket
// of its own (sent and returned without a copy; the group pipelines it); smaller ones are packed in order
// into buckets of at most that many elements. Empty gradients belong to no bucket.
struct grad_bucket {
  int64_t begin = 0, end = 0;
};
std::vector<grad_bucket> plan_grad_buckets(const std::vector<array>& grads, size_t bucket_bytes);

class grad_allreducer {
 public:
  // `g` must not be null; bucket_bytes must be at least 4. Throws std::invalid_argument otherwise.
  explicit grad_allreducer(std::shared_ptr<comm::group> g, size_t bucket_bytes = 8 << 20);

  // The sum over all ranks of each gradient (f32, any shape or view; an empty list gives an empty list and
  // sends nothing). Each bucket is one all_reduce(sum); while it travels the next one is packed and the one
  // before unpacked. Returns new contiguous arrays with the inputs' shapes. Throws std::invalid_argument for
  // a non-f32 gradient, and comm::comm_error naming "grad_allreducer::sum", the bucket and the lost peer when
  // communication fails (the group is broken after that).
  std::vector<array> sum(const std::vector<array>& grads);

  // The sums over all ranks of a few scalars (token counts, loss sums, non-finite flags), in one all_gather
  // and added in double in rank order 0..n-1, so identical on every rank; integers up to 2^53 stay exact.
  // Every rank must pass the same number of values (none sends nothing). Throws comm::comm_error like sum().
  std::vector<double> sum_scalars(const std::vector<double>& values);

  // Wall time spent inside the collectives so far (the all_reduces and all_gathers themselves, measured
  // where they run), in seconds.
  double comm_seconds() const { return comm_seconds_; }
  int rank() const { return group_->rank(); }
  int size() const { return group_->size(); }
  size_t bucket_bytes() const { return bucket_bytes_; }

 private:
  std::shared_ptr<comm::group> group_;
  size_t bucket_bytes_;
  double comm_seconds_ = 0;
};

}  // namespace mlxd::train
