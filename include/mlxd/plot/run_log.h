// The curves in a training run's metrics log: one JSON object per line, as `mlxd train` writes it.
//   {"step":N,"loss":x,"lr":x,...}          a training step
//   {"step":N,"val_loss":x,"val_ppl":x}     a validation
//   {"step":N,"skipped":"reason",...}       a skipped step (counted, not plotted)
// Unknown keys, blank lines and lines without a plotted key are ignored; a plotted key whose value is null
// is absent.
#pragma once

#include <istream>
#include <string>
#include <vector>

namespace mlxd::plot {

// Points (x = step) of one curve, in file order.
struct series {
  std::vector<double> x, y;
  size_t size() const { return x.size(); }
};

struct run_log {
  series loss;      // "loss" by "step"
  series val_loss;  // "val_loss" by "step"
  series lr;        // "lr" by "step"
  int n_skipped = 0;
};

// Reads the log from `in`; `name` prefixes errors. Throws std::invalid_argument "name:LINE: ..." for a line
// that is not a JSON object, or a "step", "loss", "val_loss" or "lr" that is neither a number nor null.
run_log parse_run_log(std::istream& in, const std::string& name);
// The same from a file; throws std::runtime_error when it cannot be read.
run_log read_run_log(const std::string& path);

}  // namespace mlxd::plot
