#include "mlxd/comm/rendezvous.h"

#include <algorithm>
#include <cstdlib>
#include <stdexcept>

#include <unistd.h>  // environ (declared here, not by hand: a unity batch may include it too)

namespace mlxd::comm {
namespace {

int parse_int(const std::string& what, const std::string& text, int lo, int hi) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    throw std::invalid_argument("[rendezvous] " + what + "=\"" + text + "\" is not an integer in " +
                                std::to_string(lo) + ".." + std::to_string(hi));
  return static_cast<int>(v);
}

std::map<std::string, std::string> process_env() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

}  // namespace

std::pair<std::string, int> split_host_port(const std::string& address) {
  std::string host;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':')
      throw std::invalid_argument("[rendezvous] \"" + address + "\" is not [host]:port");
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0)
      throw std::invalid_argument("[rendezvous] \"" + address + "\" is not host:port");
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  return {host, parse_int("port of " + address, port, 1, 65535)};
}

bool is_loopback_host(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::vector<std::string> parse_peer_list(const std::string& list) {
  std::vector<std::string> peers;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    std::string entry = list.substr(start, comma - start);
    split_host_port(entry);
    peers.push_back(entry);
    start = comma + 1;
  }
  return peers;
}

std::string first_slurm_host(const std::string& nodelist) {
  // "pre[01-04,7]suf,other": the prefix, then the first number of the first range, then what follows "]".
  const size_t comma = nodelist.find(',');
  const size_t bracket = nodelist.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    std::string host = nodelist.substr(0, comma);
    if (host.empty()) throw std::invalid_argument("[rendezvous] empty Slurm node list");
    return host;
  }
  const size_t close = nodelist.find(']', bracket);
  if (close == std::string::npos)
    throw std::invalid_argument("[rendezvous] unbalanced Slurm node list \"" + nodelist + "\"");
  const std::string inner = nodelist.substr(bracket + 1, close - bracket - 1);
  const std::string first = inner.substr(0, inner.find_first_of(",-"));
  const size_t tail_end = nodelist.find(',', close);
  return nodelist.substr(0, bracket) + first +
         nodelist.substr(close + 1, tail_end == std::string::npos ? std::string::npos : tail_end - close - 1);
}

std::optional<group_options> options_from_env(const std::map<std::string, std::string>* env_in) {
  const auto env = env_in ? *env_in : process_env();
  auto get = [&](const char* k) -> std::string {
    auto it = env.find(k);
    return it == env.end() ? "" : it->second;
  };
  group_options o;
  std::string rank = get("MLXD_RANK"), world = get("MLXD_WORLD_SIZE");
  const bool slurm = rank.empty() && world.empty() && !get("SLURM_PROCID").empty();
  if (slurm) {
    rank = get("SLURM_PROCID");
    world = get("SLURM_NTASKS");
  }
  if (rank.empty() && world.empty()) return std::nullopt;
  if (rank.empty() || world.empty())
    throw std::invalid_argument(
        "[rendezvous] set both MLXD_RANK and MLXD_WORLD_SIZE (or SLURM_PROCID and SLURM_NTASKS)");
  o.world_size = parse_int("MLXD_WORLD_SIZE", world, 1, 1 << 16);
  o.rank = parse_int("MLXD_RANK", rank, 0, o.world_size - 1);
  if (const std::string peers = get("MLXD_PEERS"); !peers.empty()) {
    o.peers = parse_peer_list(peers);
    if (static_cast<int>(o.peers.size()) != o.world_size)
      throw std::invalid_argument("[rendezvous] MLXD_PEERS names " + std::to_string(o.peers.size()) +
                                  " ranks but the world size is " + std::to_string(o.world_size));
  } else {
    o.master_addr = get("MLXD_MASTER_ADDR");
    if (o.master_addr.empty() && slurm) {
      const std::string nodes =
          get("SLURM_JOB_NODELIST").empty() ? get("SLURM_NODELIST") : get("SLURM_JOB_NODELIST");
      if (!nodes.empty()) o.master_addr = first_slurm_host(nodes);
    }
    if (o.master_addr.empty() && o.world_size > 1)
      throw std::invalid_argument("[rendezvous] MLXD_MASTER_ADDR (or MLXD_PEERS) is not set");
    const std::string port = get("MLXD_MASTER_PORT");
    o.master_port = port.empty() ? 8101 : parse_int("MLXD_MASTER_PORT", port, 1, 65535);
  }
  o.cluster_token = get("MLXD_CLUSTER_TOKEN");
  o.tls_cert = get("MLXD_TLS_CERT");
  o.tls_key = get("MLXD_TLS_KEY");
  o.tls_ca = get("MLXD_TLS_CA");
  if (const std::string t = get("MLXD_COMM_TIMEOUT_MS"); !t.empty())
    o.timeout = std::chrono::milliseconds(parse_int("MLXD_COMM_TIMEOUT_MS", t, 1, 1 << 30));
  return o;
}

}  // namespace mlxd::comm
