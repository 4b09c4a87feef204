// Whether the client of a request handler is still connected. cpp-httplib 0.11 does not hand its socket to
// handlers, so the socket is found among the process's descriptors by the connection's two addresses.
#pragma once

#include <httplib.h>

namespace mlxd::serve::detail {

class peer_socket {
 public:
  // Looks up the socket `req` arrived on (it stays open while the handler runs, so the descriptor is stable).
  explicit peer_socket(const httplib::Request& req);
  // True once the client has closed the connection (or it failed); false while it is open or when the socket
  // was not found.
  bool closed() const;
  bool found() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace mlxd::serve::detail
