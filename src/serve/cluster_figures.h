// The figures of the sequences that went through the worker pipeline, summed for GET /metrics: each stage
// node's decode compute time, the decode round trips and the time the hops added to them, re-plans, and
// sequences cancelled or failed. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "mlxd/dist/coordinator.h"

namespace mlxd::serve::detail {

class cluster_figures {
 public:
  void record(const dist::generation_result& g);
  void count_cancelled();
  void count_failed();
  // Prometheus text: these sums, each worker's state as `nodes` (a probe, in --workers order) reports it, and
  // the plans the coordinator made after a loss or a rejoin (`plans_replaced`, whether a request saw it or
  // not).
  std::string render(const std::vector<dist::node_status>& nodes, uint64_t plans_replaced) const;

 private:
  struct stage_sums {
    double compute_ms = 0;
    uint64_t steps = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, stage_sums> stages_;  // by node ("coordinator" for --coordinator-layers)
  uint64_t decode_steps_ = 0, looped_steps_ = 0;
  double round_trip_ms_ = 0, hop_ms_ = 0;
  size_t hops_ = 0;  // stages of the last plan used; a decode step crosses each stage's link both ways
  uint64_t sequences_ = 0, replans_ = 0, cancelled_ = 0, failed_ = 0;
};

}  // namespace mlxd::serve::detail
