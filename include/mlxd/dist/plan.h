// Pipeline plans: which node runs which contiguous range of a model's decoder layers. Pure functions of the
// model's config and the nodes' reported capabilities; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "mlxd/models/llama.h"

namespace mlxd::dist {

// No partition of the model fits the nodes (too little memory, or an override that does not cover the
// layers). The message says what was needed and what was offered.
class plan_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a worker reported in its handshake.
struct node_info {
  std::string address;  // host:port
  uint32_t cores = 0;
  uint64_t memory_bytes = 0;  // usable for weights and KV caches
  double gflops = 0;          // measured fp32 matmul speed; 0 when unknown
};

// One stage: `node` indexes the node list (-1: the coordinator itself), `layers` its part of the model.
struct plan_stage {
  int node = -1;
  models::llama_stage layers;
};
using pipeline_plan = std::vector<plan_stage>;

// Half-open layer ranges [begin, end).
using layer_range = std::pair<int, int>;

// "0-11,12-23" (inclusive, as users write them) -> {{0, 12}, {12, 24}}; "5" is one layer. Throws
// std::invalid_argument for anything else.
std::vector<layer_range> parse_layer_ranges(const std::string& text);

struct plan_options {
  // Explicit ranges, one per node in order; empty: planned from memory and speed.
  std::vector<layer_range> layers;
  // Layers the coordinator runs first, with the embedding (must start at layer 0); nullopt: none, the first
  // node embeds.
  std::optional<layer_range> coordinator_layers;
  // KV cache positions each node must have room for on top of its weights.
  int kv_positions = 0;
};

// Bytes of f32 weights a stage holds, and bytes of KV cache per position for `n_layers` layers.
uint64_t stage_weight_bytes(const models::llama_config& c, const models::llama_stage& s);
uint64_t kv_bytes_per_position(const models::llama_config& c, int n_layers);

// Contiguous ranges covering every layer, in node order; the first stage embeds and the last holds the head.
// Planned: each node's share is proportional to its measured speed (equal when unknown), capped by what its
// memory holds, the surplus moved to nodes with room; nodes left without layers are left out (unless they
// must hold the head). Throws plan_error when the model does not fit or an override is inconsistent.
pipeline_plan plan_pipeline(const models::llama_config& c, const std::vector<node_info>& nodes,
                            const plan_options& o);

// "coordinator 0-3 (embedding) | 127.0.0.1:9001 4-11 (head)".
std::string describe(const pipeline_plan& plan, const std::vector<node_info>& nodes);

// "host" of "host:port", "v6" of "[v6]:port"; an address without a port is its own host. Nodes reached at
// one host share its cores.
std::string host_of(const std::string& address);

}  // namespace mlxd::dist
