#include "comm/collective_desc.h"

#include <climits>

namespace mlxd::comm {
namespace {

constexpr int64_t desc_version = 1;
constexpr size_t desc_fixed = 7;  // version, kind, param, dtype, ok, direct, ndim; then the shape
constexpr int64_t desc_max_ndim = 32;
constexpr int64_t desc_max_elements = int64_t{1} << 62;

const char* kind_name(collective_kind k) {
  switch (k) {
    case collective_kind::all_reduce:
      return "all_reduce";
    case collective_kind::reduce_scatter:
      return "reduce_scatter";
    case collective_kind::all_gather:
      return "all_gather";
    case collective_kind::broadcast:
      return "broadcast";
  }
  return "?";
}

bool is_reduction(collective_kind k) {
  return k == collective_kind::all_reduce || k == collective_kind::reduce_scatter;
}

std::string what_it_has(const collective_desc& d) {
  return std::to_string(d.elements()) + " " + std::string(name(d.type)) + " elements " +
         shape_to_string(d.shape);
}

bool same_data(const collective_desc& a, const collective_desc& b) {
  return a.type == b.type && a.shape == b.shape;
}

}  // namespace

array collective_desc::encode() const {
  std::vector<int64_t> v{
      desc_version,   static_cast<int64_t>(kind),        param, static_cast<int64_t>(type), ok ? 1 : 0,
      direct ? 1 : 0, static_cast<int64_t>(shape.size())};
  v.insert(v.end(), shape.begin(), shape.end());
  return array::from(v, {static_cast<int64_t>(v.size())}, dtype::i64);
}

std::optional<collective_desc> collective_desc::parse(const array& message, std::string& why) {
  if (message.type() != dtype::i64 || message.ndim() != 1 ||
      message.size() < static_cast<int64_t>(desc_fixed)) {
    why = "a collective descriptor must be i64[7 + ndim], got " + message.to_string();
    return std::nullopt;
  }
  const std::vector<int64_t> v = message.to_vector<int64_t>();
  auto bad = [&](const std::string& what) {
    why = "malformed collective descriptor (" + what + ")";
    return std::nullopt;
  };
  if (v[0] != desc_version) return bad("version " + std::to_string(v[0]));
  if (v[1] < 1 || v[1] > 4) return bad("kind " + std::to_string(v[1]));
  collective_desc d;
  d.kind = static_cast<collective_kind>(v[1]);
  d.param = v[2];
  if (is_reduction(d.kind)
          ? (v[2] < 0 || v[2] >= n_reduce_ops)
          : (d.kind == collective_kind::all_gather ? v[2] != 0 : v[2] < INT_MIN || v[2] > INT_MAX))
    return bad("parameter " + std::to_string(v[2]));
  if (v[3] < 0 || v[3] >= n_dtypes) return bad("dtype " + std::to_string(v[3]));
  d.type = static_cast<dtype>(v[3]);
  if ((v[4] != 0 && v[4] != 1) || (v[5] != 0 && v[5] != 1)) return bad("flags");
  d.ok = v[4] == 1;
  d.direct = v[5] == 1;
  if (v[6] < 0 || v[6] > desc_max_ndim || v.size() != desc_fixed + static_cast<size_t>(v[6]))
    return bad("ndim " + std::to_string(v[6]) + " with " + std::to_string(v.size()) + " values");
  int64_t n = 1;
  for (size_t i = desc_fixed; i < v.size(); ++i) {
    if (v[i] < 0 || (v[i] > 0 && n > desc_max_elements / v[i]))
      return bad("dimension " + std::to_string(v[i]));
    n *= v[i];
    d.shape.push_back(v[i]);
  }
  return d;
}

bool collective_desc::sent_direct_data(int sender, int to) const {
  if (!ok || !direct || elements() == 0 || sender == to) return false;
  return kind != collective_kind::broadcast || param == sender;
}

std::string disagreement(const std::vector<collective_desc>& all) {
  const collective_desc& d0 = all[0];
  const std::string r0 = "rank 0";
  for (size_t q = 1; q < all.size(); ++q) {
    const collective_desc& d = all[q];
    const std::string rq = "rank " + std::to_string(q);
    if (d.kind != d0.kind)
      return rq + " calls " + kind_name(d.kind) + ", " + r0 + " calls " + kind_name(d0.kind);
    if (d.param != d0.param) {
      if (d.kind == collective_kind::broadcast)
        return rq + " broadcasts from root " + std::to_string(d.param) + ", " + r0 + " from root " +
               std::to_string(d0.param);
      return rq + " reduces with " + reduce_op_name(static_cast<reduce_op>(d.param)) + ", " + r0 + " with " +
             reduce_op_name(static_cast<reduce_op>(d0.param));
    }
  }
  if (d0.kind == collective_kind::broadcast) {
    // Only the root's tensor is sent; another rank's must be empty or like it.
    const int64_t root = d0.param;
    if (root < 0 || root >= static_cast<int64_t>(all.size())) return "";
    const collective_desc& dr = all[static_cast<size_t>(root)];
    for (size_t q = 0; q < all.size(); ++q)
      if (static_cast<int64_t>(q) != root && all[q].elements() > 0 && !same_data(all[q], dr))
        return "rank " + std::to_string(q) + " has " + what_it_has(all[q]) + ", the root rank " +
               std::to_string(root) + " has " + what_it_has(dr);
    return "";
  }
  for (size_t q = 1; q < all.size(); ++q) {
    const collective_desc& d = all[q];
    const std::string rq = "rank " + std::to_string(q);
    if (!same_data(d, d0)) return rq + " has " + what_it_has(d) + ", " + r0 + " has " + what_it_has(d0);
    if (d.ok != d0.ok)
      return rq + (d.ok ? " accepts" : " refuses") + " arguments that " + r0 +
             (d0.ok ? " accepts" : " refuses");
    if (d.direct != d0.direct)
      return rq + " chose the " + (d.direct ? "direct" : "ring") + " algorithm, " + r0 + " the " +
             (d0.direct ? "direct" : "ring") + " one (do all ranks use the same small_all_reduce_bytes?)";
  }
  return "";
}

}  // namespace mlxd::comm
