// The server's figures for GET /metrics, in Prometheus' text format (version 0.0.4). Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mlxd::serve {

// A cumulative histogram over fixed upper bounds (seconds).
class histogram {
 public:
  explicit histogram(std::vector<double> bounds);
  void observe(double value);
  // "<name>_bucket{le=...}", "<name>_sum", "<name>_count" lines.
  std::string render(const std::string& name, const std::string& help) const;

 private:
  mutable std::mutex mu_;
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bound, not cumulative; the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

// One sample of a metric family: its labels as Prometheus writes them (e.g. node="a:1"; empty: none).
struct metric_sample {
  std::string labels;
  double value = 0;
};
// A metric family in the text format: the HELP and TYPE lines, then one line per sample.
std::string render_family(const std::string& name, const std::string& type, const std::string& help,
                          const std::vector<metric_sample>& samples);
// `name="value"` with the value escaped as the text format requires (backslash, quote, newline).
std::string label(const std::string& name, const std::string& value);

class metrics {
 public:
  metrics();
  void count_request(const std::string& path, int status);
  std::atomic<uint64_t> prompt_tokens{0}, generated_tokens{0};
  std::atomic<int64_t> queue_depth{0}, running_sequences{0}, kv_positions{0};
  histogram time_to_first_token, time_per_output_token, request_duration;
  // Everything, as served at GET /metrics.
  std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (path, status) -> count
};

}  // namespace mlxd::serve
