// The typed exception of the io module: a file or stream that could not be read or written, or whose bytes
// are malformed. Failures of this kind are normal (a truncated download, a full disk), so callers at a
// boundary catch io_error and report its message, which names the file and the fault.
#pragma once

#include <stdexcept>

namespace mlxd {

class io_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace mlxd
