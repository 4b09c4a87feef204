#include "comm/p2p_group.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "comm/collective_desc.h"
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

// "" when `check` returns, else what the std::invalid_argument it threw says.
template <class F>
std::string refusal(F&& check) {
  try {
    check();
    return "";
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
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

// Every rank has sent its whole input to every other (with its descriptor); this reduces the contributions in
// rank order 0..n-1.
void p2p_group::direct_reduce(const array& in, array& out, reduce_op op, uint64_t tag, const char* where) {
  const int n = size_;
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

void p2p_group::send_to_all(const array& x, uint64_t tag, const char* where) {
  for (int i = 1; i < size_; ++i) send_message(x, mod(rank_ + i, size_), tag, where);
}

void p2p_group::announce(const collective_desc& mine, uint64_t tag, const char* where) {
  send_to_all(mine.encode(), tag | desc_tag_bit, where);
}

std::vector<collective_desc> p2p_group::agree(const collective_desc& mine, uint64_t tag, const char* where) {
  std::vector<collective_desc> all(size_);
  all[rank_] = mine;
  for (int i = 1; i < size_; ++i) {
    const int src = mod(rank_ - i, size_);
    std::string why;
    auto d = collective_desc::parse(recv_now(src, tag | desc_tag_bit, where), why);
    if (!d) throw comm_error(std::string(where) + ": " + peer_name(src) + " sent a " + why);
    all[src] = std::move(*d);
  }
  const std::string diff = disagreement(all);
  if (diff.empty()) return all;
  // Every rank saw the same descriptors and stops here; what the direct ones sent ahead must not linger.
  for (int q = 0; q < size_; ++q)
    if (all[q].sent_direct_data(q, rank_)) (void)recv_now(q, tag, where);
  throw std::invalid_argument(
      std::string("[") + where + "] the ranks' arguments differ: " + diff +
      " (every rank must make the same collective call with the same dtype and shape)");
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

// Every collective first sends its descriptor to every rank (the direct algorithms their data right behind
// it) and receives everyone's, so ranks called with different arguments, or arguments one of them refuses,
// all stop before a piece of the ring moves.
array p2p_group::all_reduce(const array& x, reduce_op op) {
  const char* where = "all_reduce";
  return run(where, [&] {
    array in;
    const std::string bad = refusal([&] {
      check_reduction(where, op, x.type());
      in = sendable(x);
    });
    if (size_ == 1 && !bad.empty()) throw std::invalid_argument(bad);
    array out;
    if (size_ == 1) {
      out = copy_of(in);
    } else {
      const bool direct =
          bad.empty() && (in.nbytes() <= settings_.small_all_reduce_bytes || in.size() < size_);
      const collective_desc mine{
          collective_kind::all_reduce, static_cast<int64_t>(op), x.type(), x.shape(), bad.empty(), direct};
      const uint64_t tag = next_tag();
      announce(mine, tag, where);
      if (direct && in.size() > 0) send_to_all(in, tag, where);
      agree(mine, tag, where);
      if (!bad.empty()) throw std::invalid_argument(bad);
      out = array::empty(in.shape(), in.type());
      if (direct) {
        if (in.size() > 0) direct_reduce(in, out, op, tag, where);
      } else {
        array flat = reshape(out, {out.size()});
        ring_reduce_scatter(reshape(in, {in.size()}), flat, op, tag, true, where);
      }
    }
    if (op == reduce_op::mean) divide_by(out.mutable_data<uint8_t>(), out.size(), out.type(), size_);
    return out;
  });
}

array p2p_group::reduce_scatter(const array& x, reduce_op op) {
  const char* where = "reduce_scatter";
  return run(where, [&] {
    array in;
    const std::string bad = refusal([&] {
      check_reduction(where, op, x.type());
      if (x.ndim() == 0 || x.shape(0) % size_ != 0)
        throw std::invalid_argument("[reduce_scatter] the leading dimension of " + x.to_string() +
                                    " must be a multiple of the group size " + std::to_string(size_));
      in = sendable(x);
    });
    if (size_ == 1 && !bad.empty()) throw std::invalid_argument(bad);
    shape_t out_shape = in.shape();
    if (bad.empty()) out_shape[0] /= size_;
    const int64_t m = bad.empty() ? shape_size(out_shape) : 0;
    array flat_in = bad.empty() ? reshape(in, {in.size()}) : array();
    array out;
    if (size_ == 1) {
      out = array::empty(out_shape, in.type());
      if (out.nbytes() > 0) std::memcpy(out.mutable_data<uint8_t>(), in.raw_data(), out.nbytes());
    } else {
      const bool direct = bad.empty() && (in.nbytes() <= settings_.small_all_reduce_bytes || m == 0);
      const collective_desc mine{collective_kind::reduce_scatter,
                                 static_cast<int64_t>(op),
                                 x.type(),
                                 x.shape(),
                                 bad.empty(),
                                 direct};
      const uint64_t tag = next_tag();
      announce(mine, tag, where);
      if (direct && m > 0)
        for (int i = 1; i < size_; ++i) {
          const int dst = mod(rank_ + i, size_);
          send_message(flat_view(flat_in, dst * m, m), dst, tag, where);
        }
      agree(mine, tag, where);
      if (!bad.empty()) throw std::invalid_argument(bad);
      out = array::empty(out_shape, in.type());
      if (direct && m > 0) {
        std::vector<array> got(size_);
        got[rank_] = flat_view(flat_in, rank_ * m, m);
        for (int i = 1; i < size_; ++i) {
          const int src = mod(rank_ - i, size_);
          got[src] = recv_now(src, tag, where);
          check_piece(got[src], in, m, src, where);
        }
        std::memcpy(out.mutable_data<uint8_t>(), got[0].raw_data(), out.nbytes());
        for (int r = 1; r < size_; ++r)
          reduce_into(out.mutable_data<uint8_t>(), got[r].raw_data(), m, out.type(), op);
      } else if (!direct) {
        array buf = array::empty(flat_in.shape(), flat_in.type());
        ring_reduce_scatter(flat_in, buf, op, tag, false, where);
        std::memcpy(out.mutable_data<uint8_t>(), bytes_at(buf, rank_ * m), out.nbytes());
      }
    }
    if (op == reduce_op::mean) divide_by(out.mutable_data<uint8_t>(), out.size(), out.type(), size_);
    return out;
  });
}

array p2p_group::all_gather(const array& x) {
  const char* where = "all_gather";
  return run(where, [&] {
    array in;
    const std::string bad = refusal([&] { in = sendable(x); });
    if (size_ == 1 && !bad.empty()) throw std::invalid_argument(bad);
    const size_t part = bad.empty() ? in.nbytes() : 0;
    const bool direct = part <= settings_.small_all_reduce_bytes;
    if (size_ > 1) {
      const collective_desc mine{collective_kind::all_gather, 0, x.type(), x.shape(), bad.empty(),
                                 bad.empty() && direct};
      const uint64_t tag = next_tag();
      announce(mine, tag, where);
      if (mine.direct && in.size() > 0) send_to_all(in, tag, where);
      agree(mine, tag, where);
      if (!bad.empty()) throw std::invalid_argument(bad);
      shape_t out_shape = in.shape();
      out_shape.insert(out_shape.begin(), size_);
      array out = array::empty(out_shape, in.type());
      if (part > 0) std::memcpy(out.mutable_data<uint8_t>() + part * rank_, in.raw_data(), part);
      if (!direct) {
        ring_all_gather(in, out, tag);
      } else if (in.size() > 0) {
        for (int i = 1; i < size_; ++i) {
          const int src = mod(rank_ - i, size_);
          array got = recv_now(src, tag, where);
          if (got.type() != in.type() || got.shape() != in.shape())
            throw comm_error("all_gather: " + peer_name(src) + " sent " + got.to_string() +
                             ", this rank has " + in.to_string() +
                             " (all ranks must pass the same dtype and shape)");
          std::memcpy(out.mutable_data<uint8_t>() + part * src, got.raw_data(), part);
        }
      }
      return out;
    }
    shape_t out_shape = in.shape();
    out_shape.insert(out_shape.begin(), 1);
    return copy_of(reshape(in, out_shape));
  });
}

// Each rank's part travels around the ring in pipeline pieces: at step s rank r receives part r-s-1 from its
// left neighbour and forwards it. The descriptors agreed on dtype and shape before.
void p2p_group::ring_all_gather(const array& in, array& out, uint64_t tag) {
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
      recvs.push_back(post_into(left, tag, where, flat_view(flat, b, len), false, reduce_op::sum));
    });
  std::vector<request> sends;
  for_pieces(r, [&](int64_t b, int64_t len) {
    sends.push_back(start_send(flat_view(flat, b, len), right, tag, where));
  });
  size_t i = 0;
  for (int s = 0; s < n - 1; ++s) {
    for_pieces(mod(r - s - 1, n), [&](int64_t b, int64_t len) {
      finish_into(recvs[i++], where);
      if (s < n - 2) sends.push_back(start_send(flat_view(flat, b, len), right, tag, where));
    });
  }
  for (auto& s : sends) s.wait();
}

// The root's descriptor tells every rank the dtype, the shape and the algorithm: either the whole tensor goes
// to each rank directly (with the descriptor), or it flows in pieces along the chain root, root+1, ....
array p2p_group::broadcast(const array& x, int root) {
  const char* where = "broadcast";
  return run(where, [&] {
    array in;
    const std::string bad = refusal([&] {
      check_peer(where, root);
      if (rank_ == root) in = sendable(x);
    });
    if (size_ == 1 && !bad.empty()) throw std::invalid_argument(bad);
    if (size_ == 1) return copy_of(in);
    const bool direct =
        bad.empty() && rank_ == root && !(size_ > 2 && in.nbytes() > settings_.small_all_reduce_bytes);
    const collective_desc mine{collective_kind::broadcast, root, x.type(), x.shape(), bad.empty(), direct};
    const uint64_t tag = next_tag();
    announce(mine, tag, where);
    if (direct && in.size() > 0) send_to_all(in, tag, where);
    const std::vector<collective_desc> all = agree(mine, tag, where);
    if (!bad.empty()) throw std::invalid_argument(bad);
    const collective_desc& rd = all[static_cast<size_t>(root)];
    if (!rd.ok)
      throw std::invalid_argument("[broadcast] the root, " + peer_name(root) + ", cannot send its " +
                                  std::string(name(rd.type)) + " tensor");
    const int64_t piece_bytes = static_cast<int64_t>(std::max<size_t>(settings_.pipeline_bytes, 1));
    if (rank_ == root) {
      if (!direct) {
        array flat = reshape(in, {in.size()});
        const int64_t piece = std::max<int64_t>(1, piece_bytes / static_cast<int64_t>(in.itemsize()));
        for (int64_t b = 0; b < in.size(); b += piece)
          send_message(flat_view(flat, b, std::min(piece, in.size() - b)), mod(rank_ + 1, size_), tag, where);
      }
      return copy_of(in);
    }
    if (is_quantized(rd.type))
      throw comm_error("broadcast: " + peer_name(root) + " announced a " + std::string(name(rd.type)) +
                       " tensor, which is never sent");
    array out = array::empty(rd.shape, rd.type);
    if (rd.direct) {
      if (out.size() == 0) return out;
      array got = recv_now(root, tag, where);
      if (got.type() != out.type() || got.shape() != out.shape())
        throw comm_error("broadcast: " + peer_name(root) + " sent " + got.to_string() + " after announcing " +
                         out.to_string());
      return got;
    }
    const int pos = mod(rank_ - root, size_), prev = mod(rank_ - 1, size_), next = mod(rank_ + 1, size_);
    array flat = reshape(out, {out.size()});
    const int64_t piece = std::max<int64_t>(1, piece_bytes / static_cast<int64_t>(out.itemsize()));
    std::vector<posted_recv> recvs;
    for (int64_t b = 0; b < out.size(); b += piece)
      recvs.push_back(post_into(prev, tag, where, flat_view(flat, b, std::min(piece, out.size() - b)), false,
                                reduce_op::sum));
    for (int64_t b = 0, i = 0; b < out.size(); b += piece, ++i) {
      const int64_t len = std::min(piece, out.size() - b);
      finish_into(recvs[static_cast<size_t>(i)], where);
      if (pos < size_ - 1) send_message(flat_view(flat, b, len), next, tag, where);
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
