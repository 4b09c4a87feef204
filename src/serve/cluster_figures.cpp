#include "cluster_figures.h"

#include <algorithm>

#include "mlxd/serve/metrics.h"

namespace mlxd::serve::detail {

void cluster_figures::record(const dist::generation_result& g) {
  std::lock_guard lock(mu_);
  ++sequences_;
  replans_ += static_cast<uint64_t>(g.replans);
  decode_steps_ += static_cast<uint64_t>(g.decode_steps);
  looped_steps_ += static_cast<uint64_t>(g.looped_steps);
  round_trip_ms_ += g.decode_round_trip_ms;
  double compute = 0;
  const size_t n = std::min(g.decode_stage_ms.size(), g.stage_nodes.size());
  for (size_t i = 0; i < n; ++i) {
    stage_sums& s = stages_[g.stage_nodes[i]];
    s.compute_ms += g.decode_stage_ms[i];
    s.steps += static_cast<uint64_t>(g.decode_steps);
    compute += g.decode_stage_ms[i];
  }
  hop_ms_ += std::max(0.0, g.decode_round_trip_ms - compute);
  if (!g.stage_nodes.empty()) hops_ = g.stage_nodes.size();
}

void cluster_figures::count_cancelled() {
  std::lock_guard lock(mu_);
  ++cancelled_;
}

void cluster_figures::count_failed() {
  std::lock_guard lock(mu_);
  ++failed_;
}

std::string cluster_figures::render(const std::vector<dist::node_status>& nodes,
                                    uint64_t plans_replaced) const {
  std::vector<metric_sample> up, seqs, kv, weights, latency;
  for (const dist::node_status& n : nodes) {
    const std::string l = label("node", n.address);
    up.push_back({l, n.healthy ? 1.0 : 0.0});
    if (!n.healthy) continue;
    seqs.push_back({l, static_cast<double>(n.n_sequences)});
    kv.push_back({l, static_cast<double>(n.kv_bytes)});
    weights.push_back({l, static_cast<double>(n.weight_bytes)});
    latency.push_back({l, n.latency_ms / 1000});
  }
  std::string out =
      render_family("mlxd_cluster_node_up", "gauge", "1 when the worker answers its handshake.", up) +
      render_family("mlxd_cluster_node_sequences", "gauge", "Sequences holding a KV cache on the worker.",
                    seqs) +
      render_family("mlxd_cluster_node_kv_bytes", "gauge", "KV cache bytes reserved on the worker.", kv) +
      render_family("mlxd_cluster_node_weight_bytes", "gauge", "Weight bytes of the worker's layers.",
                    weights) +
      render_family("mlxd_cluster_node_handshake_seconds", "gauge",
                    "Round trip of a handshake to the worker.", latency);
  std::lock_guard lock(mu_);
  std::vector<metric_sample> compute, steps;
  for (const auto& [node, s] : stages_) {
    compute.push_back({label("node", node), s.compute_ms / 1000});
    steps.push_back({label("node", node), static_cast<double>(s.steps)});
  }
  const double n_steps = static_cast<double>(decode_steps_);
  out +=
      render_family("mlxd_cluster_stage_compute_seconds_total", "counter",
                    "Decode time spent computing on each stage node.", compute) +
      render_family("mlxd_cluster_stage_steps_total", "counter", "Decode steps each stage node ran.", steps) +
      render_family("mlxd_cluster_decode_steps_total", "counter", "Decode steps through the pipeline.",
                    {{"", n_steps}}) +
      render_family(
          "mlxd_cluster_looped_steps_total", "counter",
          "Decode steps the last stage fed back to the first by itself (rings, stage protocol 1.7).",
          {{"", static_cast<double>(looped_steps_)}}) +
      render_family("mlxd_cluster_decode_round_trip_seconds_total", "counter",
                    "Decode steps from sending to the sampled token's arrival.",
                    {{"", round_trip_ms_ / 1000}}) +
      render_family("mlxd_cluster_hop_seconds_total", "counter",
                    "Decode round trip time not spent computing (the network hops and queues).",
                    {{"", hop_ms_ / 1000}}) +
      render_family("mlxd_cluster_hops", "gauge", "Stages in the pipeline of the last sequence.",
                    {{"", static_cast<double>(hops_)}}) +
      render_family("mlxd_cluster_sequences_total", "counter", "Sequences that went through the pipeline.",
                    {{"", static_cast<double>(sequences_)}}) +
      render_family("mlxd_cluster_replans_total", "counter", "Re-plans after a lost worker, per sequence.",
                    {{"", static_cast<double>(replans_)}}) +
      render_family("mlxd_cluster_plans_replaced_total", "counter",
                    "Plans the coordinator replaced after losing a worker or when one rejoined.",
                    {{"", static_cast<double>(plans_replaced)}}) +
      render_family("mlxd_cluster_sequences_cancelled_total", "counter",
                    "Sequences stopped early (client gone, timeout) and released on the workers.",
                    {{"", static_cast<double>(cancelled_)}}) +
      render_family("mlxd_cluster_sequences_failed_total", "counter",
                    "Sequences the cluster could not finish.", {{"", static_cast<double>(failed_)}});
  return out;
}

}  // namespace mlxd::serve::detail
