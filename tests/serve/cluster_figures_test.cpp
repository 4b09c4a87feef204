// The cluster's /metrics figures: sums per stage node over sequences, the hop time as round trip minus
// compute, per-worker gauges from a probe, and label values escaped as Prometheus' text format requires.
#include <gtest/gtest.h>

#include "mlxd/serve/metrics.h"
#include "serve/cluster_figures.h"

namespace mlxd::serve::detail {
namespace {

// The value of the line starting with `start` (name and labels), or -1.
double value_of(const std::string& text, const std::string& start) {
  const size_t at = text.find("\n" + start + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + start.size() + 2));
}

TEST(ClusterFigures, SumsPerStageNodeAndHops) {
  cluster_figures f;
  dist::generation_result a;
  a.decode_steps = 4;
  a.decode_round_trip_ms = 10;
  a.decode_stage_ms = {3, 2};
  a.stage_nodes = {"10.0.0.1:1", "10.0.0.2:2"};
  a.replans = 1;
  a.looped_steps = 3;
  dist::generation_result b = a;
  b.decode_steps = 6;
  b.decode_round_trip_ms = 30;
  b.decode_stage_ms = {7, 9, 4};
  b.stage_nodes = {"coordinator", "10.0.0.1:1", "10.0.0.2:2"};
  b.replans = 0;
  b.looped_steps = 0;
  f.record(a);
  f.record(b);
  f.count_cancelled();
  f.count_failed();
  f.count_failed();
  std::vector<dist::node_status> nodes(2);
  nodes[0].address = "10.0.0.1:1";
  nodes[0].healthy = true;
  nodes[0].n_sequences = 3;
  nodes[0].kv_bytes = 4096;
  nodes[0].weight_bytes = 1 << 20;
  nodes[0].latency_ms = 0.5;
  nodes[1].address = "10.0.0.2:2";
  const std::string text = f.render(nodes, 4);
  EXPECT_DOUBLE_EQ(value_of(text, "mlxd_cluster_stage_compute_seconds_total{node=\"10.0.0.1:1\"}"), 0.012);
  EXPECT_DOUBLE_EQ(value_of(text, "mlxd_cluster_stage_compute_seconds_total{node=\"10.0.0.2:2\"}"), 0.006);
  EXPECT_DOUBLE_EQ(value_of(text, "mlxd_cluster_stage_compute_seconds_total{node=\"coordinator\"}"), 0.007);
  EXPECT_EQ(value_of(text, "mlxd_cluster_stage_steps_total{node=\"10.0.0.1:1\"}"), 10);
  EXPECT_EQ(value_of(text, "mlxd_cluster_stage_steps_total{node=\"coordinator\"}"), 6);
  EXPECT_EQ(value_of(text, "mlxd_cluster_decode_steps_total"), 10);
  EXPECT_EQ(value_of(text, "mlxd_cluster_looped_steps_total"), 3);
  EXPECT_DOUBLE_EQ(value_of(text, "mlxd_cluster_decode_round_trip_seconds_total"), 0.04);
  EXPECT_DOUBLE_EQ(value_of(text, "mlxd_cluster_hop_seconds_total"), (10 - 5 + 30 - 20) / 1000.0);
  EXPECT_EQ(value_of(text, "mlxd_cluster_hops"), 3);
  EXPECT_EQ(value_of(text, "mlxd_cluster_sequences_total"), 2);
  EXPECT_EQ(value_of(text, "mlxd_cluster_replans_total"), 1);
  EXPECT_EQ(value_of(text, "mlxd_cluster_plans_replaced_total"), 4);
  EXPECT_EQ(value_of(text, "mlxd_cluster_sequences_cancelled_total"), 1);
  EXPECT_EQ(value_of(text, "mlxd_cluster_sequences_failed_total"), 2);
  EXPECT_EQ(value_of(text, "mlxd_cluster_node_up{node=\"10.0.0.1:1\"}"), 1);
  EXPECT_EQ(value_of(text, "mlxd_cluster_node_up{node=\"10.0.0.2:2\"}"), 0);
  EXPECT_EQ(value_of(text, "mlxd_cluster_node_sequences{node=\"10.0.0.1:1\"}"), 3);
  EXPECT_EQ(value_of(text, "mlxd_cluster_node_sequences{node=\"10.0.0.2:2\"}"), -1);  // down: no figures
  EXPECT_EQ(value_of(text, "mlxd_cluster_node_kv_bytes{node=\"10.0.0.1:1\"}"), 4096);
  EXPECT_DOUBLE_EQ(value_of(text, "mlxd_cluster_node_handshake_seconds{node=\"10.0.0.1:1\"}"), 0.0005);
  EXPECT_NE(text.find("# TYPE mlxd_cluster_stage_compute_seconds_total counter\n"), std::string::npos);
}

TEST(ClusterFigures, LabelValuesAreEscaped) {
  EXPECT_EQ(label("node", "a\"b\\c\nd"), "node=\"a\\\"b\\\\c\\nd\"");
  EXPECT_EQ(render_family("m", "gauge", "Help.", {{"", 1.5}, {label("x", "y"), 2}}),
            "# HELP m Help.\n# TYPE m gauge\nm 1.5\nm{x=\"y\"} 2\n");
}

}  // namespace
}  // namespace mlxd::serve::detail
