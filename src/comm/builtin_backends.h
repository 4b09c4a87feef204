// Built-in backends the registry knows without registration.
#pragma once

#include <memory>

#include "mlxd/comm/registry.h"

namespace mlxd::comm {

// The gRPC backend (src/comm/grpc).
std::shared_ptr<group> make_grpc_group(const group_options& options);

}  // namespace mlxd::comm
