#include "mlxd/rlhf/reward_loss.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "checks.h"
#include "mlxd/core/ops.h"

namespace mlxd::rlhf {

reward_loss_result reward_loss(const array& chosen, const array& rejected, const array& margin,
                               const reward_loss_options& options) {
  constexpr const char* fn = "reward_loss";
  const int64_t n = detail::expect_vector(fn, "chosen", chosen);
  detail::expect_float(fn, "rejected", rejected, chosen.shape());
  const bool has_margin = margin.size() > 0 || margin.ndim() != 1;
  if (has_margin) detail::expect_float(fn, "margin", margin, chosen.shape());
  if (!(options.center_coefficient >= 0) || !std::isfinite(options.center_coefficient)) {
    detail::fail(
        fn, "center_coefficient must be finite and >= 0, got " + std::to_string(options.center_coefficient));
  }
  const array rc = detail::f32(chosen), rr = detail::f32(rejected);
  array diff = subtract(rc, rr);
  if (has_margin) diff = subtract(diff, detail::f32(margin));
  reward_loss_result r;
  r.losses = neg(log_sigmoid(diff));
  if (options.center_coefficient > 0) {
    r.losses =
        add(r.losses, multiply(array(static_cast<float>(options.center_coefficient)), square(add(rc, rr))));
  }
  r.loss = n > 0 ? mean(r.losses) : zeros({}, dtype::f32);
  const std::vector<float> c = rc.to_vector<float>(), j = rr.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) r.correct += c[i] > j[i] ? 1 : 0;
  r.pairs = n;
  r.accuracy = static_cast<double>(r.correct) / static_cast<double>(std::max<int64_t>(n, 1));
  return r;
}

}  // namespace mlxd::rlhf
