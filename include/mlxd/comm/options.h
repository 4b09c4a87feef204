// How a group is formed: who the ranks are, where they listen, security, limits and timeouts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mlxd::comm {

struct group_options {
  int rank = 0;
  int world_size = 1;
  // Rendezvous, either: every rank's "host:port" (rank i listens on peers[i]) ...
  std::vector<std::string> peers;
  // ... or a master (rank 0 listens there; the others listen on an ephemeral port of `bind_host` and tell
  // the master, which hands every rank the full list).
  std::string master_addr;
  int master_port = 0;
  std::string bind_host;       // where non-master ranks listen with a master; default: the master's host if
                               // it is loopback, else all interfaces
  std::string advertise_host;  // what others dial to reach this rank; default: the local address that
                               // routes to the master
  std::string node_id;         // default: hostname:pid

  // Security. The token is required when binding beyond loopback. With tls_cert/tls_key the node serves
  // TLS; with tls_ca it verifies peers against that CA and asks them for certificates (mutual TLS).
  std::string cluster_token;
  std::string tls_cert, tls_key, tls_ca;  // PEM file paths

  // Limits on what a peer may send: one gRPC message (a chunk) and one whole tensor.
  size_t chunk_bytes = 1 << 20;                // what this rank sends per chunk
  size_t max_message_bytes = 8 << 20;          // largest accepted chunk message
  size_t max_tensor_bytes = size_t{16} << 30;  // largest accepted tensor
  // Backpressure: the most bytes of messages from one peer that may wait here for a recv. Beyond it this rank
  // stops reading from that peer, whose sends then wait (up to `timeout`) until a recv takes a message. A
  // recv that waits for a message from a peer whose other unreceived messages exceed it fails (comm_error):
  // the program would need unbounded buffering. Collectives need at most a few pipeline pieces per peer.
  size_t max_buffered_bytes = size_t{1} << 30;
  // Failure detection: HTTP/2 keepalive pings every `keepalive`, a peer silent for `keepalive_timeout` is
  // lost; an operation waiting longer than `timeout` fails (a send, when the peer reads nothing for that
  // long); forming the group may take `connect_timeout`.
  std::chrono::milliseconds keepalive{1000};
  std::chrono::milliseconds keepalive_timeout{2000};
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(60)};
  // All-reduce switches from the one-round direct exchange to the ring above this many bytes per rank.
  size_t small_all_reduce_bytes = 64 << 10;
  // The ring and broadcast pipelines move pieces of this many bytes.
  size_t pipeline_bytes = 1 << 20;
};

}  // namespace mlxd::comm
