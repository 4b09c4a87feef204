#include "mlxd/train/grad_allreduce.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>

#include "mlxd/core/ops.h"
#include "mlxd/core/thread_name.h"

namespace mlxd::train {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::vector<grad_bucket> plan_buckets_of_sizes(const std::vector<int64_t>& sizes, size_t bucket_bytes) {
  const int64_t per_bucket = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes / sizeof(float)));
  std::vector<grad_bucket> buckets;
  int64_t begin = 0, pos = 0;  // the open bucket is [begin, pos)
  auto close = [&] {
    if (pos > begin) buckets.push_back({begin, pos});
    begin = pos;
  };
  for (const int64_t n : sizes) {
    if (n >= per_bucket || pos + n - begin > per_bucket) close();
    pos += n;
    if (n >= per_bucket) close();
  }
  close();
  return buckets;
}

}  // namespace

std::vector<grad_bucket> plan_grad_buckets(const std::vector<array>& grads, size_t bucket_bytes) {
  std::vector<int64_t> sizes;
  for (const auto& g : grads) sizes.push_back(g.size());
  return plan_buckets_of_sizes(sizes, bucket_bytes);
}

grad_allreducer::grad_allreducer(std::shared_ptr<comm::group> g, size_t bucket_bytes)
    : group_(std::move(g)), bucket_bytes_(bucket_bytes) {
  if (!group_) throw std::invalid_argument("[grad_allreducer] the group is null");
  if (bucket_bytes_ < sizeof(float))
    throw std::invalid_argument("[grad_allreducer] bucket_bytes must be at least 4, got " +
                                std::to_string(bucket_bytes_));
}

std::vector<array> grad_allreducer::sum(const std::vector<array>& grads) {
  std::vector<shape_t> shapes;
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].type() != dtype::f32)
      throw std::invalid_argument("[grad_allreducer::sum] gradient " + std::to_string(i) + " is " +
                                  grads[i].to_string() + "; only f32 gradients are summed");
    shapes.push_back(grads[i].shape());
  }
  overlapped_grad_sum s(*this, std::move(shapes));
  // Last first: each bucket is then complete, packed and started in turn while the one before travels.
  for (size_t i = grads.size(); i-- > 0;) s.add(i, grads[i]);
  return s.finish();
}

overlapped_grad_sum::overlapped_grad_sum(grad_allreducer& reducer, std::vector<shape_t> shapes)
    : reducer_(reducer), shapes_(std::move(shapes)) {
  const size_t n = shapes_.size();
  offset_.assign(n + 1, 0);
  std::vector<int64_t> sizes(n);
  in_.resize(n);
  out_.resize(n);
  added_.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    sizes[i] = shape_size(shapes_[i]);
    offset_[i + 1] = offset_[i] + sizes[i];
    if (sizes[i] == 0) out_[i] = array::empty(shapes_[i], dtype::f32);
  }
  buckets_ = plan_buckets_of_sizes(sizes, reducer_.bucket_bytes());
  missing_.assign(buckets_.size(), 0);
  // Buckets hold whole gradients, so each non-empty gradient lies in exactly one.
  for (size_t k = 0, i = 0; k < buckets_.size(); ++k)
    for (; i < n && offset_[i] < buckets_[k].end; ++i)
      if (sizes[i] > 0) ++missing_[k];
}

overlapped_grad_sum::~overlapped_grad_sum() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard lock(mutex_);
    closing_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void overlapped_grad_sum::add(size_t index, const array& grad) {
  const std::string what = "[overlapped_grad_sum::add] gradient " + std::to_string(index);
  if (finished_) throw std::logic_error(what + ": the sum is finished");
  if (index >= shapes_.size())
    throw std::invalid_argument(what + " is out of range; there are " + std::to_string(shapes_.size()));
  if (grad.type() != dtype::f32 || grad.shape() != shapes_[index])
    throw std::invalid_argument(what + " is " + grad.to_string() + "; expected f32 of the shape given");
  if (added_[index]) throw std::invalid_argument(what + " was added twice");
  added_[index] = true;
  if (grad.size() == 0) return;
  in_[index] = contiguous(grad);
  const auto bucket = std::upper_bound(buckets_.begin(), buckets_.end(), offset_[index],
                                       [](int64_t at, const grad_bucket& b) { return at < b.end; });
  --missing_[static_cast<size_t>(bucket - buckets_.begin())];
  start_ready_buckets();
}

void overlapped_grad_sum::start_ready_buckets() {
  while (next_ < buckets_.size()) {
    const size_t k = buckets_.size() - 1 - next_;
    if (missing_[k] > 0) return;
    const grad_bucket& b = buckets_[k];
    const int64_t n = b.end - b.begin;
    array buf;
    bool packing = false;
    for (size_t i = 0; i < in_.size(); ++i) {
      if (offset_[i] < b.begin || offset_[i + 1] > b.end || offset_[i] == offset_[i + 1]) continue;
      // A bucket of one gradient travels as it is; others are packed in order.
      if (offset_[i + 1] - offset_[i] == n) {
        buf = in_[i];
        break;
      }
      if (!packing) buf = array::empty({n}, dtype::f32);
      packing = true;
      std::memcpy(buf.mutable_data<float>() + (offset_[i] - b.begin), in_[i].data<float>(),
                  static_cast<size_t>(in_[i].size()) * sizeof(float));
    }
    {
      std::lock_guard lock(mutex_);
      queue_.emplace_back(k, std::move(buf));
    }
    if (!thread_.joinable())
      thread_ = std::thread([this] {
        name_this_thread("mlxd-grad-sum");
        run();
      });
    wake_.notify_all();
    ++next_;
  }
}

void overlapped_grad_sum::run() {
  for (;;) {
    std::pair<size_t, array> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;
      job = std::move(queue_.front());
      queue_.pop_front();
      if (error_) continue;  // the group is broken; later buckets are dropped
    }
    const auto [k, buf] = job;
    try {
      const auto t0 = clock_type::now();
      const array sum = reducer_.group_->all_reduce(buf, comm::reduce_op::sum);
      const double seconds = seconds_since(t0);
      const grad_bucket& b = buckets_[k];
      for (size_t i = 0; i < in_.size(); ++i) {
        if (offset_[i] < b.begin || offset_[i + 1] > b.end || offset_[i] == offset_[i + 1]) continue;
        if (offset_[i + 1] - offset_[i] == b.end - b.begin) {
          out_[i] = sum;
          break;
        }
        out_[i] = array::empty(shapes_[i], dtype::f32);
        std::memcpy(out_[i].mutable_data<float>(), sum.data<float>() + (offset_[i] - b.begin),
                    static_cast<size_t>(in_[i].size()) * sizeof(float));
      }
      std::lock_guard lock(mutex_);
      seconds_ += seconds;
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      failed_bucket_ = k;
    }
  }
}

std::vector<array> overlapped_grad_sum::finish() {
  if (finished_) throw std::logic_error("[overlapped_grad_sum::finish] called twice");
  for (size_t i = 0; i < shapes_.size(); ++i)
    if (!added_[i])
      throw std::logic_error("[overlapped_grad_sum::finish] gradient " + std::to_string(i) +
                             " was never added");
  finished_ = true;
  if (thread_.joinable()) {
    {
      std::lock_guard lock(mutex_);
      closing_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  reducer_.comm_seconds_ += seconds_;
  if (error_) {
    const grad_bucket& b = buckets_[failed_bucket_];
    // Numbered in the order they travel.
    const size_t travelled = buckets_.size() - failed_bucket_;
    try {
      std::rethrow_exception(error_);
    } catch (const comm::comm_error& e) {
      throw comm::comm_error("[grad_allreducer::sum] bucket " + std::to_string(travelled) + " of " +
                             std::to_string(buckets_.size()) + " (" + std::to_string((b.end - b.begin) * 4) +
                             " bytes): " + e.what());
    }
  }
  return std::move(out_);
}

std::vector<double> grad_allreducer::sum_scalars(const std::vector<double>& values) {
  const int64_t k = static_cast<int64_t>(values.size());
  if (k == 0) return {};
  std::vector<int64_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i) bits[i] = std::bit_cast<int64_t>(values[i]);
  // The doubles travel as their bit patterns (the wire has no f64) and are added here in rank order.
  array gathered;
  const auto t0 = clock_type::now();
  try {
    gathered = group_->all_gather(array::from(bits, {k}, dtype::i64));
  } catch (const comm::comm_error& e) {
    throw comm::comm_error("[grad_allreducer::sum_scalars] " + std::to_string(k) + " values: " + e.what());
  }
  comm_seconds_ += seconds_since(t0);
  const int n = group_->size();
  if (gathered.shape() != shape_t{n, k})
    throw comm::comm_error("[grad_allreducer::sum_scalars] gathered " + gathered.to_string() +
                           ", expected i64[" + std::to_string(n) + "," + std::to_string(k) + "]");
  const int64_t* g = gathered.data<int64_t>();
  std::vector<double> sums(values.size(), 0.0);
  for (int r = 0; r < n; ++r)
    for (int64_t i = 0; i < k; ++i) sums[i] += std::bit_cast<double>(g[r * k + i]);
  return sums;
}

}  // namespace mlxd::train
