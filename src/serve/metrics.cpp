#include "mlxd/serve/metrics.h"

#include <cstdio>

namespace mlxd::serve {
namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string gauge(const std::string& name, const std::string& type, const std::string& help, double value) {
  return "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + number(value) +
         "\n";
}

}  // namespace

std::string render_family(const std::string& name, const std::string& type, const std::string& help,
                          const std::vector<metric_sample>& samples) {
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  for (const metric_sample& s : samples)
    out += name + (s.labels.empty() ? "" : "{" + s.labels + "}") + " " + number(s.value) + "\n";
  return out;
}

std::string label(const std::string& name, const std::string& value) {
  std::string out = name + "=\"";
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out + "\"";
}

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}

void histogram::observe(double value) {
  std::lock_guard lock(mu_);
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

std::string histogram::render(const std::string& name, const std::string& help) const {
  std::lock_guard lock(mu_);
  std::string out = "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  return out + name + "_sum " + number(sum_) + "\n" + name + "_count " + std::to_string(count_) + "\n";
}

metrics::metrics()
    : time_to_first_token({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}),
      time_per_output_token({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}),
      request_duration({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}) {}

void metrics::count_request(const std::string& path, int status) {
  std::lock_guard lock(mu_);
  ++requests_[{path, status}];
}

std::string metrics::render() const {
  std::string out =
      "# HELP mlxd_http_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE mlxd_http_requests_total counter\n";
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : requests_)
      out += "mlxd_http_requests_total{path=\"" + key.first + "\",code=\"" + std::to_string(key.second) +
             "\"} " + std::to_string(n) + "\n";
  }
  out += gauge("mlxd_prompt_tokens_total", "counter", "Prompt tokens prefilled.",
               static_cast<double>(prompt_tokens));
  out += gauge("mlxd_generation_tokens_total", "counter", "Tokens generated.",
               static_cast<double>(generated_tokens));
  out += gauge("mlxd_queue_depth", "gauge", "Sequences waiting for a place in the running batch.",
               static_cast<double>(queue_depth));
  out += gauge("mlxd_running_sequences", "gauge", "Sequences in the running batch.",
               static_cast<double>(running_sequences));
  out += gauge("mlxd_kv_cache_positions", "gauge", "KV cache positions reserved by running sequences.",
               static_cast<double>(kv_positions));
  out += time_to_first_token.render("mlxd_time_to_first_token_seconds",
                                    "From a sequence's arrival to its first token.");
  out += time_per_output_token.render("mlxd_time_per_output_token_seconds",
                                      "Between consecutive tokens of a sequence.");
  out +=
      request_duration.render("mlxd_request_duration_seconds", "Generation requests, arrival to last token.");
  return out;
}

}  // namespace mlxd::serve
