// Communication backends by name. Built in: "local" (a size-1 group) and "grpc". Other backends (MPI, Gloo,
// a GPU library) register a factory and callers pick them by name without other changes.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "mlxd/comm/group.h"
#include "mlxd/comm/options.h"

namespace mlxd::comm {

using backend_factory = std::function<std::shared_ptr<group>(const group_options&)>;

// Adds or replaces a backend. Thread-safe.
void register_backend(const std::string& name, backend_factory factory);
// Names of the registered backends, sorted.
std::vector<std::string> backends();
// Forms a group with the named backend; blocks until every rank has joined (or connect_timeout passes).
// Throws std::invalid_argument for an unknown backend or bad options, comm_error when rendezvous fails.
std::shared_ptr<group> make_group(const std::string& backend, const group_options& options);
// A size-1 group: every collective returns a copy of its input, send/recv to rank 0 loop back.
std::shared_ptr<group> make_local_group();

}  // namespace mlxd::comm
