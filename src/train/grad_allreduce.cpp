#include "mlxd/train/grad_allreduce.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <future>
#include <stdexcept>
#include <string>

#include "mlxd/core/ops.h"

namespace mlxd::train {
namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

struct reduced {
  array values;
  double seconds = 0;
};

}  // namespace

std::vector<grad_bucket> plan_grad_buckets(const std::vector<array>& grads, size_t bucket_bytes) {
  const int64_t per_bucket = std::max<int64_t>(1, static_cast<int64_t>(bucket_bytes / sizeof(float)));
  std::vector<grad_bucket> buckets;
  int64_t begin = 0, pos = 0;  // the open bucket is [begin, pos)
  auto close = [&] {
    if (pos > begin) buckets.push_back({begin, pos});
    begin = pos;
  };
  for (const auto& g : grads) {
    const int64_t n = g.size();
    if (n >= per_bucket || pos + n - begin > per_bucket) close();
    pos += n;
    if (n >= per_bucket) close();
  }
  close();
  return buckets;
}

grad_allreducer::grad_allreducer(std::shared_ptr<comm::group> g, size_t bucket_bytes)
    : group_(std::move(g)), bucket_bytes_(bucket_bytes) {
  if (!group_) throw std::invalid_argument("[grad_allreducer] the group is null");
  if (bucket_bytes_ < sizeof(float))
    throw std::invalid_argument("[grad_allreducer] bucket_bytes must be at least 4, got " +
                                std::to_string(bucket_bytes_));
}

std::vector<array> grad_allreducer::sum(const std::vector<array>& grads) {
  std::vector<array> in(grads.size()), out(grads.size());
  std::vector<int64_t> offset(grads.size() + 1, 0);  // where each gradient starts in the concatenation
  for (size_t i = 0; i < grads.size(); ++i) {
    if (grads[i].type() != dtype::f32)
      throw std::invalid_argument("[grad_allreducer::sum] gradient " + std::to_string(i) + " is " +
                                  grads[i].to_string() + "; only f32 gradients are summed");
    in[i] = contiguous(grads[i]);
    if (grads[i].size() == 0) out[i] = array::empty(grads[i].shape(), dtype::f32);
    offset[i + 1] = offset[i] + grads[i].size();
  }
  const auto buckets = plan_grad_buckets(grads, bucket_bytes_);
  // Calls fn(gradient, first element in it, first element in the bucket, count) for each piece of bucket b.
  auto for_pieces = [&](const grad_bucket& b, auto&& fn) {
    for (size_t i = 0; i < in.size(); ++i) {
      const int64_t lo = std::max(b.begin, offset[i]), hi = std::min(b.end, offset[i + 1]);
      if (lo < hi) fn(i, lo - offset[i], lo - b.begin, hi - lo);
    }
  };
  // A bucket of one gradient travels as it is and its sum is the result; others are packed and unpacked.
  auto pack = [&](const grad_bucket& b) {
    const int64_t n = b.end - b.begin;
    array whole;
    for_pieces(b, [&](size_t i, int64_t, int64_t, int64_t len) {
      if (len == n) whole = in[i];
    });
    if (whole.size() == n) return whole;
    array buf = array::empty({n}, dtype::f32);
    for_pieces(b, [&](size_t i, int64_t src, int64_t dst, int64_t len) {
      std::memcpy(buf.mutable_data<float>() + dst, in[i].data<float>() + src, len * sizeof(float));
    });
    return buf;
  };
  auto unpack = [&](const grad_bucket& b, const array& sum) {
    for_pieces(b, [&](size_t i, int64_t dst, int64_t src, int64_t len) {
      if (len == b.end - b.begin) {
        out[i] = sum;
        return;
      }
      out[i] = array::empty(in[i].shape(), dtype::f32);
      std::memcpy(out[i].mutable_data<float>() + dst, sum.data<float>() + src, len * sizeof(float));
    });
  };
  auto start = [this](array buf) {
    return std::async(std::launch::async, [this, buf = std::move(buf)] {
      const auto t0 = clock_type::now();
      array s = group_->all_reduce(buf, comm::reduce_op::sum);
      return reduced{std::move(s), seconds_since(t0)};
    });
  };
  auto finish = [&](std::future<reduced>& f, size_t k) {
    try {
      reduced r = f.get();
      comm_seconds_ += r.seconds;
      return r.values;
    } catch (const comm::comm_error& e) {
      throw comm::comm_error(
          "[grad_allreducer::sum] bucket " + std::to_string(k + 1) + " of " + std::to_string(buckets.size()) +
          " (" + std::to_string((buckets[k].end - buckets[k].begin) * 4) + " bytes): " + e.what());
    }
  };
  // One collective in flight at a time, in bucket order: bucket k+1 is packed and bucket k-1 unpacked while
  // bucket k travels. The group sees the same sequence of calls as without the overlap.
  std::future<reduced> inflight;
  for (size_t k = 0; k < buckets.size(); ++k) {
    array buf = pack(buckets[k]);
    array prev;
    if (k > 0) prev = finish(inflight, k - 1);
    inflight = start(std::move(buf));
    if (k > 0) unpack(buckets[k - 1], prev);
  }
  if (!buckets.empty()) unpack(buckets.back(), finish(inflight, buckets.size() - 1));
  return out;
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
