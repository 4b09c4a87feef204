// What this machine offers, for the handshake.
#pragma once

#include "mlxd/v1/comm.pb.h"

namespace mlxd::comm::rpc {

// Cores, physical memory and the feature list of this process.
void fill_capabilities(v1::Capabilities* caps);
// "hostname:pid".
std::string default_node_id();

}  // namespace mlxd::comm::rpc
