// Re-planning after a loss without moving what need not move: the survivors keep their ranges and a lost
// stage's layers go to one neighbour, so that only that neighbour loads anything.
#pragma once

#include <optional>
#include <vector>

#include "mlxd/dist/plan.h"

namespace mlxd::dist {

// The plan over `nodes` that keeps every stage of `previous` (planned over `previous_nodes`) whose node is
// still in `nodes` exactly as it was, and gives each lost stage's layers to the worker stage before it (else
// the one after it, which then embeds; never the coordinator's own stage). nullopt when that cannot be done:
// a node of `nodes` that `previous` did not use (a new or returning worker: the layers are spread again), no
// worker stage left to take the layers, or a stage that would not fit its node's memory.
std::optional<pipeline_plan> plan_keeping_survivors(const models::llama_config& c,
                                                    const pipeline_plan& previous,
                                                    const std::vector<node_info>& previous_nodes,
                                                    const std::vector<node_info>& nodes,
                                                    const plan_options& o);

}  // namespace mlxd::dist
