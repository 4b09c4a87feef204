#include "comm/grpc/capabilities.h"

#include <unistd.h>

#include <thread>

namespace mlxd::comm::rpc {

void fill_capabilities(v1::Capabilities* caps) {
  caps->set_cores(std::thread::hardware_concurrency());
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  caps->set_memory_bytes(pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page)
                                               : 0);
  caps->add_features("p2p");
  caps->add_features("collectives");
}

std::string default_node_id() {
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return std::string(host) + ":" + std::to_string(getpid());
}

}  // namespace mlxd::comm::rpc
