// Tensors on the wire: dtype codes, chunking, and the validation every received chunk passes before use.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mlxd/core/array.h"
#include "mlxd/v1/comm.pb.h"

namespace mlxd::comm::wire {

inline constexpr uint32_t protocol_major = 1;
// 1.1: every collective starts with a descriptor message from each rank to every other (collective_desc.h).
// 1.2: a goodbye may carry the error that made its sender leave (Envelope.goodbye_reason).
inline constexpr uint32_t protocol_minor = 2;
inline constexpr const char* protocol_key = "mlxd-protocol";  // metadata: "1.0"
inline constexpr const char* rank_key = "mlxd-rank";          // metadata of Exchange: the sender's world rank
inline constexpr int max_ndim = 32;
inline constexpr size_t max_goodbye_reason = 1024;
// The largest HTTP/2 frame every mlxd server and client accepts (comm's and the stage protocol's). At
// HTTP/2's default, 16 KB, a 16 KB tensor and its envelope took two frames and a round trip of 70 us against
// 51 in one (bench comm, this VM, 2026-11-30); 64 KB leaves large transfers as fast as before.
inline constexpr int max_frame_bytes = 64 << 10;

v1::DType to_wire(dtype t);
// nullopt for a code this node does not know.
std::optional<dtype> from_wire(int code);

struct limits {
  size_t max_message_bytes = 8 << 20;
  size_t max_tensor_bytes = size_t{16} << 30;
};

// Calls `emit` with consecutive chunks of the contiguous array `x`, each with at most `chunk_bytes` of data
// (at least one chunk, even for an empty tensor). `chunk` is reused between calls.
void for_each_chunk(const array& x, size_t chunk_bytes, v1::TensorChunk& chunk,
                    const std::function<void(const v1::TensorChunk&)>& emit);

// A chunk's header fields: every chunk of a tensor repeats them.
struct chunk_header {
  int dtype = 0;  // a DType code, not yet validated
  std::vector<int64_t> shape;
  uint64_t total_bytes = 0;
  uint64_t offset = 0;
};

// A chunk's data as consecutive pieces of memory: calls `piece(data, n)` for each, in order.
using byte_pieces = std::function<void(const std::function<void(const char*, size_t)>& piece)>;

// Rebuilds tensors from chunks, refusing anything inconsistent: an unknown dtype, a negative or oversized
// shape, total_bytes != product(shape) x element size, a tensor or chunk over the limits, an offset that is
// not where the previous chunk ended, data past the end, a header that changes between chunks.
class assembler {
 public:
  explicit assembler(limits l) : limits_(l) {}
  // Returns "" when the chunk is accepted, else why it is not (the assembler is then reset). Sets `done` to
  // the tensor when this chunk completes it. The chunk has `n` bytes of data, given by `data` once the
  // header is accepted.
  std::string add(const chunk_header& header, size_t n, const byte_pieces& data, std::optional<array>& done);
  std::string add(const v1::TensorChunk& chunk, std::optional<array>& done);
  // The tensor whose first chunk comes next goes to `write` (its bytes in order, in pieces) instead of a new
  // array, and completes as an empty array. Dropped when that chunk is refused.
  void write_next_to(std::function<void(const char*, size_t)> write) { direct_ = std::move(write); }
  bool in_progress() const { return started_; }
  // "received 10 of 100 bytes of f32[25]", for a stream that ends early.
  std::string progress() const;

 private:
  limits limits_;
  bool started_ = false;
  std::optional<array> partial_;                     // the tensor being filled, unless direct_
  std::function<void(const char*, size_t)> direct_;  // where the bytes go instead
  chunk_header header_;                              // the first chunk's
  size_t received_ = 0;
};

}  // namespace mlxd::comm::wire
