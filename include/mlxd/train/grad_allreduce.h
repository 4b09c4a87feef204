// Data-parallel gradient summation: every rank's f32 gradients summed over a comm::group in buckets.
//
// Every rank must call sum() and sum_scalars() (or run an overlapped_grad_sum) in the same order with
// gradients of the same count, shapes and dtype (as with any collective). Results are bit-identical on every
// rank (the group reduces in a fixed order) and from run to run, overlapped or not. An instance uses its
// group from at most two threads at a time: the caller's and one it starts per sum to run the collectives
// while the caller packs the next bucket (or, overlapped, goes on with the backward pass); do not use the
// group elsewhere while a sum runs. Not thread-safe itself.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
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

class overlapped_grad_sum;

class grad_allreducer {
 public:
  // `g` must not be null; bucket_bytes must be at least 4. Throws std::invalid_argument otherwise.
  explicit grad_allreducer(std::shared_ptr<comm::group> g, size_t bucket_bytes = 8 << 20);

  // The sum over all ranks of each gradient (f32, any shape or view; an empty list gives an empty list and
  // sends nothing). Each bucket is one all_reduce(sum); while it travels the next one is packed. The same as
  // an overlapped_grad_sum given the gradients all at once. Returns new contiguous arrays with the inputs'
  // shapes. Throws std::invalid_argument for a non-f32 gradient, and comm::comm_error naming
  // "grad_allreducer::sum", the bucket and the lost peer when communication fails (the group is broken after
  // that).
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
  friend class overlapped_grad_sum;
  std::shared_ptr<comm::group> group_;
  size_t bucket_bytes_;
  double comm_seconds_ = 0;
};

// A sum over the ranks that overlaps a backward pass: the gradients arrive one at a time as they become
// final (value_and_grad's grad_ready_fn), in any order, and each bucket's all_reduce starts on a background
// thread as soon as it is complete while the caller goes on. The buckets are plan_grad_buckets' for the
// shapes, so the sums are the bytes grad_allreducer::sum gives. They start in reverse order (the last
// parameters first, as a backward pass finalises them), each only after those before it in that order, so
// every rank issues the same collectives in the same order whatever order its gradients arrive in.
class overlapped_grad_sum {
 public:
  // Gradients with these shapes (f32) will be added, each once, before finish().
  overlapped_grad_sum(grad_allreducer& reducer, std::vector<shape_t> shapes);
  ~overlapped_grad_sum();  // waits for the collectives already started (never for unstarted ones)
  overlapped_grad_sum(const overlapped_grad_sum&) = delete;
  overlapped_grad_sum& operator=(const overlapped_grad_sum&) = delete;

  // Gradient `index` is final (f32, any layout; the caller must not change it). Starts every bucket now
  // complete whose turn it is. Throws std::invalid_argument for an index out of range, one added twice, or
  // another shape or dtype.
  void add(size_t index, const array& grad);
  // Waits for every bucket and returns the sums (contiguous, the given shapes) and adds the time spent in
  // the collectives to the reducer's comm_seconds(). Throws std::logic_error when a gradient is missing, and
  // comm::comm_error naming "grad_allreducer::sum" and the bucket when communication failed.
  std::vector<array> finish();

 private:
  void start_ready_buckets();
  void run();  // the background thread: all_reduces the queued buckets in order and unpacks them

  grad_allreducer& reducer_;
  std::vector<shape_t> shapes_;
  std::vector<int64_t> offset_;  // where each gradient starts in the concatenation
  std::vector<grad_bucket> buckets_;
  std::vector<size_t> missing_;  // per bucket: gradients not yet added
  std::vector<array> in_, out_;
  std::vector<bool> added_;
  size_t next_ = 0;  // buckets started, in reverse order
  bool finished_ = false;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<size_t, array>> queue_;  // (bucket, packed values) waiting for the thread
  bool closing_ = false;
  std::exception_ptr error_;
  size_t failed_bucket_ = 0;
  double seconds_ = 0;
  std::thread thread_;
};

}  // namespace mlxd::train
