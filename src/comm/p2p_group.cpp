#include "comm/p2p_group.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "comm/reduce.h"
#include "mlxd/core/ops.h"

namespace mlxd::comm {
namespace {

int mod(int a, int n) {
  return ((a % n) + n) % n;
}

// A fresh contiguous copy (collectives reduce into it in place).
array copy_of(const array& contiguous_in) {
  array out = array::empty(contiguous_in.shape(), contiguous_in.type());
  if (contiguous_in.nbytes() > 0)
    std::memcpy(out.mutable_data<uint8_t>(), contiguous_in.raw_data(), out.nbytes());
  return out;
}

// Elements [begin, begin + n) of a flat contiguous array, as a 1-d view (no copy).
array flat_view(const array& buf, int64_t begin, int64_t n) {
  return array::view(buf, {n}, {1}, buf.offset() + begin);
}

uint8_t* bytes_at(const array& buf, int64_t element) {
  return buf.mutable_data<uint8_t>() + static_cast<size_t>(element) * buf.itemsize();
}

uint64_t mix(uint64_t x) {  // splitmix64 finaliser
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

p2p_group::p2p_group(int rank, int size, uint64_t id, p2p_settings settings)
    : rank_(rank), size_(size), id_(id), settings_(settings) {
  if (size < 1 || rank < 0 || rank >= size)
    throw std::invalid_argument("[group] rank " + std::to_string(rank) + " is outside a group of size " +
                                std::to_string(size));
  settings_.pipeline_bytes = std::max<size_t>(settings_.pipeline_bytes, 1);
}

template <class F>
auto p2p_group::run(const char* op, F&& body) {
  {
    std::lock_guard lock(broken_->mu);
    if (!broken_->reason.empty())
      throw comm_error(std::string(op) +
                       ": the group is unusable after an earlier failure: " + broken_->reason);
  }
  try {
    return body();
  } catch (const comm_error& e) {
    std::lock_guard lock(broken_->mu);
    if (broken_->reason.empty()) broken_->reason = e.what();
    throw;
  }
}

std::shared_ptr<request::state> p2p_group::new_request(std::string what) {
  auto r = std::make_shared<request::state>();
  r->what = std::move(what);
  r->timeout = settings_.timeout;
  r->deadline = request::state::clock::now() + settings_.timeout;
  r->on_error = [flag = broken_](const std::string& message) {
    std::lock_guard lock(flag->mu);
    if (flag->reason.empty()) flag->reason = message;
  };
  return r;
}

void p2p_group::check_peer(const char* where, int peer) const {
  if (peer < 0 || peer >= size_)
    throw std::invalid_argument(std::string("[") + where + "] rank " + std::to_string(peer) +
                                " is outside a group of size " + std::to_string(size_));
}

// The wire carries plain dtypes; block-quantized arrays have no element layout a peer could validate.
static array sendable(const array& x) {
  if (is_quantized(x.type()))
    throw std::invalid_argument("[comm] a " + std::string(name(x.type())) +
                                " array cannot be sent: convert it with astype to a plain dtype first");
  return contiguous(x);
}

static void check_tag(const char* where, uint64_t tag) {
  if (tag >= first_reserved_tag)
    throw std::invalid_argument(std::string("[") + where + "] tag " + std::to_string(tag) +
                                " is reserved (tags must be below 2^62)");
}

request p2p_group::isend(const array& x, int dst, uint64_t tag) {
  check_peer("isend", dst);
  check_tag("isend", tag);
  return run("isend", [&] { return start_send(sendable(x), dst, tag, "send"); });
}

request p2p_group::irecv(int src, uint64_t tag) {
  check_peer("irecv", src);
  check_tag("irecv", tag);
  return run("irecv", [&] {
    auto r = new_request("recv from " + peer_name(src) + ", tag " + std::to_string(tag));
    post_recv(src, tag, r);
    return request(r);
  });
}

void p2p_group::send(const array& x, int dst, uint64_t tag) {
  check_peer("send", dst);
  check_tag("send", tag);
  run("send", [&] { send_message(sendable(x), dst, tag, "send"); });
}

array p2p_group::recv(int src, uint64_t tag) {
  check_peer("recv", src);
  check_tag("recv", tag);
  return run("recv", [&] {
    auto r = new_request("recv from " + peer_name(src) + ", tag " + std::to_string(tag));
    post_recv(src, tag, r);
    return r->wait();
  });
}

array p2p_group::recv_now(int src, uint64_t tag, const char* op) {
  auto r = new_request(std::string(op) + ": recv from " + peer_name(src));
  post_recv(src, tag, r);
  return r->wait();
}

p2p_group::posted_recv p2p_group::post_into(int src, uint64_t tag, const char* op, const array& dst,
                                            bool reduce, reduce_op rop, const array& base) {
  auto r = new_request(std::string(op) + ": recv from " + peer_name(src));
  r->sink = std::make_shared<recv_sink>(dst, reduce, rop, base);
  post_recv(src, tag, r);
  return {std::move(r), dst, base, reduce, rop, src};
}

void p2p_group::finish_into(posted_recv& p, const char* op) {
  array got = p.r->wait();
  if (p.r->landed_in_sink()) return;
  check_piece(got, p.dst, p.dst.size(), p.src, op);
  if (p.base.nbytes() > 0) std::memcpy(p.dst.mutable_data<uint8_t>(), p.base.raw_data(), p.dst.nbytes());
  if (p.reduce)
    reduce_into(p.dst.mutable_data<uint8_t>(), got.raw_data(), p.dst.size(), p.dst.type(), p.op);
  else if (got.nbytes() > 0)
    std::memcpy(p.dst.mutable_data<uint8_t>(), got.raw_data(), got.nbytes());
}

void p2p_group::check_piece(const array& got, const array& like, int64_t n, int src,
                            const char* where) const {
  if (got.type() != like.type() || got.size() != n)
    throw comm_error(std::string(where) + ": " + peer_name(src) + " sent " + got.to_string() + " where " +
                     std::string(name(like.type())) + "[" + std::to_string(n) +
                     "] was expected (do all ranks pass the same dtype and shape?)");
}

// Every rank sends its whole input to every other and reduces the contributions in rank order 0..n-1.
void p2p_group::direct_reduce(const array& in, array& out, reduce_op op, uint64_t tag, const char* where) {
  const int n = size_;
  for (int i = 1; i < n; ++i) send_message(in, mod(rank_ + i, n), tag, where);
  std::vector<array> got(n);
  got[rank_] = in;
  for (int i = 1; i < n; ++i) {
    const int src = mod(rank_ - i, n);
    got[src] = recv_now(src, tag, where);
    check_piece(got[src], in, in.size(), src, where);
    if (got[src].shape() != in.shape())
      throw comm_error(std::string(where) + ": " + peer_name(src) + " sent " + got[src].to_string() +
                       ", this rank has " + in.to_string());
  }
  if (out.nbytes() > 0) std::memcpy(out.mutable_data<uint8_t>(), got[0].raw_data(), out.nbytes());
  for (int r = 1; r < n; ++r)
    reduce_into(out.mutable_data<uint8_t>(), got[r].raw_data(), out.size(), out.type(), op);
}

// Ring reduce-scatter over the flat buffer: at step s rank r receives segment r-s-2 from its left neighbour,
// reduces it into its own and forwards it, so after n-1 steps it holds segment r reduced over all ranks.
// With then_all_gather the final segments travel once more around the ring. Sends are non-blocking, so a rank
// never waits for its right neighbour while its left one waits for it. Each phase's receives land in memory
// nothing else touches until then, so all are posted first and every piece is reduced or copied into place
// as it arrives. The reduce-scatter reads the input where out still lacks it, so out needs no copy of it.
void p2p_group::ring_reduce_scatter(const array& in, array& buf, reduce_op op, uint64_t tag,
                                    bool then_all_gather, const char* where) {
  const int n = size_, r = rank_, right = mod(r + 1, n), left = mod(r - 1, n);
  const int64_t total = buf.size();
  const int64_t piece = std::max<int64_t>(1, static_cast<int64_t>(settings_.pipeline_bytes / buf.itemsize()));
  auto seg_begin = [&](int k) { return total * k / n; };
  auto for_pieces = [&](int k, auto&& fn) {
    for (int64_t b = seg_begin(k), e = seg_begin(k + 1); b < e; b += piece) fn(b, std::min(piece, e - b));
  };
  std::vector<request> sends;
  auto forward = [&](int64_t b, int64_t len) {
    sends.push_back(start_send(flat_view(buf, b, len), right, tag, where));
  };
  auto send_input = [&](int64_t b, int64_t len) {
    sends.push_back(start_send(flat_view(in, b, len), right, tag, where));
  };
  // Receives step s of a phase into segment first_seg - s, forwarding what `forwards(s)` says.
  auto run_phase = [&](int first_seg, bool reduce, auto&& forwards) {
    std::vector<posted_recv> recvs;
    for (int s = 0; s < n - 1; ++s)
      for_pieces(mod(first_seg - s, n), [&](int64_t b, int64_t len) {
        recvs.push_back(post_into(left, tag, where, flat_view(buf, b, len), reduce, op,
                                  reduce ? flat_view(in, b, len) : array()));
      });
    size_t i = 0;
    for (int s = 0; s < n - 1; ++s)
      for_pieces(mod(first_seg - s, n), [&](int64_t b, int64_t len) {
        finish_into(recvs[i++], where);
        if (forwards(s)) forward(b, len);
      });
  };
  for_pieces(mod(r - 1, n), send_input);
  run_phase(r - 2, true, [&](int s) { return s < n - 2 || then_all_gather; });
  // The all-gather overwrites segments whose sends must be out first.
  for (auto& s : sends) s.wait();
  sends.clear();
  if (!then_all_gather) return;
  run_phase(r - 1, false, [&](int s) { return s < n - 2; });
  for (auto& s : sends) s.wait();
}

array p2p_group::all_reduce(const array& x, reduce_op op) {
  check_reduction("all_reduce", op, x.type());
  return run("all_reduce", [&] {
    array in = sendable(x);
    array out = array::empty(in.shape(), in.type());
    if (size_ == 1) {
      out = copy_of(in);
    } else if (in.nbytes() <= settings_.small_all_reduce_bytes || in.size() < size_) {
      direct_reduce(in, out, op, next_tag(), "all_reduce");
    } else {
      array flat = reshape(out, {out.size()});
      ring_reduce_scatter(reshape(in, {in.size()}), flat, op, next_tag(), true, "all_reduce");
    }
    if (op == reduce_op::mean) divide_by(out.mutable_data<uint8_t>(), out.size(), out.type(), size_);
    return out;
  });
}

array p2p_group::reduce_scatter(const array& x, reduce_op op) {
  check_reduction("reduce_scatter", op, x.type());
  if (x.ndim() == 0 || x.shape(0) % size_ != 0)
    throw std::invalid_argument("[reduce_scatter] the leading dimension of " + x.to_string() +
                                " must be a multiple of the group size " + std::to_string(size_));
  return run("reduce_scatter", [&] {
    array in = sendable(x);
    shape_t out_shape = in.shape();
    out_shape[0] /= size_;
    const int64_t m = shape_size(out_shape);
    array out = array::empty(out_shape, in.type());
    array flat_in = reshape(in, {in.size()});
    if (size_ == 1) {
      if (out.nbytes() > 0) std::memcpy(out.mutable_data<uint8_t>(), in.raw_data(), out.nbytes());
    } else if (in.nbytes() <= settings_.small_all_reduce_bytes || m == 0) {
      const uint64_t tag = next_tag();
      for (int i = 1; i < size_; ++i) {
        const int dst = mod(rank_ + i, size_);
        send_message(flat_view(flat_in, dst * m, m), dst, tag, "reduce_scatter");
      }
      array mine = flat_view(flat_in, rank_ * m, m);
      std::vector<array> got(size_);
      got[rank_] = mine;
      for (int i = 1; i < size_; ++i) {
        const int src = mod(rank_ - i, size_);
        got[src] = recv_now(src, tag, "reduce_scatter");
        check_piece(got[src], in, m, src, "reduce_scatter");
      }
      if (out.nbytes() > 0) std::memcpy(out.mutable_data<uint8_t>(), got[0].raw_data(), out.nbytes());
      for (int r = 1; r < size_; ++r)
        reduce_into(out.mutable_data<uint8_t>(), got[r].raw_data(), m, out.type(), op);
    } else {
      array buf = array::empty(flat_in.shape(), flat_in.type());
      ring_reduce_scatter(flat_in, buf, op, next_tag(), false, "reduce_scatter");
      std::memcpy(out.mutable_data<uint8_t>(), bytes_at(buf, rank_ * m), out.nbytes());
    }
    if (op == reduce_op::mean) divide_by(out.mutable_data<uint8_t>(), out.size(), out.type(), size_);
    return out;
  });
}

array p2p_group::all_gather(const array& x) {
  return run("all_gather", [&] {
    array in = sendable(x);
    shape_t out_shape = in.shape();
    out_shape.insert(out_shape.begin(), size_);
    array out = array::empty(out_shape, in.type());
    const size_t part = in.nbytes();
    if (part > 0) std::memcpy(out.mutable_data<uint8_t>() + part * rank_, in.raw_data(), part);
    if (size_ == 1) return out;
    const uint64_t tag = next_tag();
    if (part > settings_.small_all_reduce_bytes) {
      ring_all_gather(in, out, tag, tag | (uint64_t{1} << 61));
      return out;
    }
    for (int i = 1; i < size_; ++i) send_message(in, mod(rank_ + i, size_), tag, "all_gather");
    for (int i = 1; i < size_; ++i) {
      const int src = mod(rank_ - i, size_);
      array got = recv_now(src, tag, "all_gather");
      if (got.type() != in.type() || got.shape() != in.shape())
        throw comm_error("all_gather: " + peer_name(src) + " sent " + got.to_string() + ", this rank has " +
                         in.to_string() + " (all ranks must pass the same dtype and shape)");
      if (part > 0) std::memcpy(out.mutable_data<uint8_t>() + part * src, got.raw_data(), part);
    }
    return out;
  });
}

// Each rank's part travels around the ring in pipeline pieces: at step s rank r receives part r-s-1 from its
// left neighbour and forwards it. A header with dtype and shape goes first (on `tag`; the parts on
// `data_tag`); every rank checks its left neighbour's against its own, so by the ring all agree.
void p2p_group::ring_all_gather(const array& in, array& out, uint64_t tag, uint64_t data_tag) {
  const int n = size_, r = rank_, right = mod(r + 1, n), left = mod(r - 1, n);
  const char* where = "all_gather";
  const int64_t m = in.size();
  array flat = reshape(out, {out.size()});
  const int64_t piece = std::max<int64_t>(1, static_cast<int64_t>(settings_.pipeline_bytes / in.itemsize()));
  auto for_pieces = [&](int k, auto&& fn) {
    for (int64_t b = k * m, e = (k + 1) * m; b < e; b += piece) fn(b, std::min(piece, e - b));
  };
  std::vector<posted_recv> recvs;
  for (int s = 0; s < n - 1; ++s)
    for_pieces(mod(r - s - 1, n), [&](int64_t b, int64_t len) {
      recvs.push_back(post_into(left, data_tag, where, flat_view(flat, b, len), false, reduce_op::sum));
    });
  std::vector<int64_t> header{static_cast<int64_t>(in.type()), in.ndim()};
  header.insert(header.end(), in.shape().begin(), in.shape().end());
  std::vector<request> sends;
  sends.push_back(
      start_send(array::from(header, {static_cast<int64_t>(header.size())}, dtype::i64), right, tag, where));
  for_pieces(r, [&](int64_t b, int64_t len) {
    sends.push_back(start_send(flat_view(flat, b, len), right, data_tag, where));
  });
  array h = recv_now(left, tag, where);
  if (h.type() != dtype::i64 || h.to_vector<int64_t>() != header)
    throw comm_error("all_gather: " + peer_name(left) +
                     " passed a different dtype or shape than this rank's " + in.to_string() +
                     " (all ranks must pass the same dtype and shape)");
  size_t i = 0;
  for (int s = 0; s < n - 1; ++s) {
    for_pieces(mod(r - s - 1, n), [&](int64_t b, int64_t len) {
      finish_into(recvs[i++], where);
      if (s < n - 2) sends.push_back(start_send(flat_view(flat, b, len), right, data_tag, where));
    });
  }
  for (auto& s : sends) s.wait();
}

// The root first sends every rank a header [mode, dtype, ndim, shape...]; then either the whole tensor goes
// to each rank directly (mode 0), or it flows in pieces along the chain root, root+1, ... (mode 1).
array p2p_group::broadcast(const array& x, int root) {
  check_peer("broadcast", root);
  return run("broadcast", [&] {
    if (size_ == 1) return copy_of(sendable(x));
    const uint64_t tag = next_tag(), data_tag = tag | (uint64_t{1} << 61);
    const int pos = mod(rank_ - root, size_);
    const int next = mod(rank_ + 1, size_), prev = mod(rank_ - 1, size_);
    if (rank_ == root) {
      array in = sendable(x);
      const bool chain = size_ > 2 && in.nbytes() > settings_.small_all_reduce_bytes;
      std::vector<int64_t> header{chain ? 1 : 0, static_cast<int64_t>(in.type()), in.ndim()};
      header.insert(header.end(), in.shape().begin(), in.shape().end());
      array h = array::from(header, {static_cast<int64_t>(header.size())}, dtype::i64);
      for (int i = 1; i < size_; ++i) send_message(h, mod(rank_ + i, size_), tag, "broadcast");
      if (!chain) {
        for (int i = 1; i < size_; ++i) send_message(in, mod(rank_ + i, size_), data_tag, "broadcast");
      } else {
        array flat = reshape(in, {in.size()});
        const int64_t piece =
            std::max<int64_t>(1, static_cast<int64_t>(settings_.pipeline_bytes / in.itemsize()));
        for (int64_t b = 0; b < in.size(); b += piece)
          send_message(flat_view(flat, b, std::min(piece, in.size() - b)), next, data_tag, "broadcast");
      }
      return copy_of(in);
    }
    array h = recv_now(root, tag, "broadcast");
    const auto hv = h.to_vector<int64_t>();
    if (h.type() != dtype::i64 || hv.size() < 3 || hv[1] < 0 || hv[1] >= n_dtypes || hv[2] < 0 ||
        hv.size() != static_cast<size_t>(3 + hv[2]))
      throw comm_error("broadcast: " + peer_name(root) + " sent a malformed header " + h.to_string());
    if (hv[0] == 0) return recv_now(root, data_tag, "broadcast");
    const shape_t shape(hv.begin() + 3, hv.end());
    array out = array::empty(shape, static_cast<dtype>(hv[1]));
    array flat = reshape(out, {out.size()});
    const int64_t piece =
        std::max<int64_t>(1, static_cast<int64_t>(settings_.pipeline_bytes / out.itemsize()));
    std::vector<posted_recv> recvs;
    for (int64_t b = 0; b < out.size(); b += piece)
      recvs.push_back(post_into(prev, data_tag, "broadcast",
                                flat_view(flat, b, std::min(piece, out.size() - b)), false, reduce_op::sum));
    for (int64_t b = 0, i = 0; b < out.size(); b += piece, ++i) {
      const int64_t len = std::min(piece, out.size() - b);
      finish_into(recvs[static_cast<size_t>(i)], "broadcast");
      if (pos < size_ - 1) send_message(flat_view(flat, b, len), next, data_tag, "broadcast");
    }
    return out;
  });
}

void p2p_group::barrier() {
  all_reduce(array::empty({0}, dtype::u8), reduce_op::max);
}

std::shared_ptr<group> p2p_group::split(int color, int key) {
  array mine = array::from(std::vector<int64_t>{color, key}, {2}, dtype::i64);
  const auto all = all_gather(mine).to_vector<int64_t>();  // [size, 2]
  const uint64_t n = n_splits_++;
  if (color < 0) return nullptr;
  std::vector<int> ranks;
  for (int r = 0; r < size_; ++r)
    if (all[2 * r] == color) ranks.push_back(r);
  std::stable_sort(ranks.begin(), ranks.end(), [&](int a, int b) { return all[2 * a + 1] < all[2 * b + 1]; });
  const uint64_t sub_id = mix(id_ ^ mix(n ^ mix(static_cast<uint64_t>(color)))) | 1;
  return make_subgroup(ranks, sub_id);
}

}  // namespace mlxd::comm
