// Envelope messages encoded and decoded by hand, in exactly the wire format of comm.proto's Envelope, so that
// tensor bytes leave without a copy (the message points at the array's memory) and arrive with one (from
// gRPC's read buffers straight into the tensor). Peers that use the generated protobuf code see ordinary
// Envelopes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <grpcpp/support/byte_buffer.h>

#include "comm/grpc/wire.h"

namespace mlxd::comm::frame {

// The Envelope carrying bytes [offset, offset + n) of the contiguous array `x` as one chunk of (group, tag).
// Data of up to `copy_below` bytes is copied into the message; larger data is referenced, and x's storage
// stays alive until gRPC releases the message (x must not change until the write has completed).
grpc::ByteBuffer encode_chunk(uint64_t group, uint64_t tag, const array& x, size_t offset, size_t n,
                              size_t copy_below);
// The Envelope that says goodbye, with why the sender leaves ("" for a plain exit; cut to
// wire::max_goodbye_reason bytes).
grpc::ByteBuffer encode_goodbye(const std::string& reason = "");

// One received Envelope: its fields, and where its chunk's data lies in the message (not yet copied).
class envelope {
 public:
  // Parses `message` as protobuf would (any field order, unknown fields skipped, repeated occurrences of a
  // field merged). Returns "" or why the bytes are not a valid Envelope. Keeps references to the message's
  // slices until the next parse.
  std::string parse(const grpc::ByteBuffer& message);

  uint64_t group = 0, tag = 0;
  bool goodbye = false;
  std::string goodbye_reason;
  bool has_chunk = false;
  wire::chunk_header chunk;  // valid when has_chunk
  size_t data_size() const { return data_size_; }
  // Calls piece(data, n) for the consecutive pieces of the chunk's data (data_size() bytes in all).
  void for_each_data_piece(const std::function<void(const char*, size_t)>& piece) const;

 private:
  std::vector<grpc::Slice> slices_;
  size_t data_begin_ = 0, data_size_ = 0;  // absolute offsets into the message
};

}  // namespace mlxd::comm::frame
