#include "comm/recv_sink.h"

#include <algorithm>
#include <cstring>

#include "comm/reduce.h"

namespace mlxd::comm {

void recv_sink::write(const char* data, size_t n) {
  auto* out = dst_.mutable_data<uint8_t>();
  if (!reduce_) {
    std::memcpy(out + written_, data, n);
    written_ += n;
    return;
  }
  // Pieces start anywhere, so elements pass through a small aligned buffer that stays in cache.
  constexpr size_t staging_bytes = 64 << 10;
  const size_t item = dst_.itemsize();
  if (staging_.capacity() < staging_bytes) staging_.reserve(staging_bytes);
  while (n > 0) {
    const size_t had = staging_.size();
    const size_t take = std::min(n, staging_bytes - had);
    staging_.resize(had + take);
    std::memcpy(staging_.data() + had, data, take);
    data += take;
    n -= take;
    const size_t whole = staging_.size() / item * item;
    const size_t first = (written_ - had) / item;  // element of staging_[0]
    if (base_.nbytes() > 0 && whole > 0)
      std::memcpy(out + first * item, base_.data<uint8_t>() + first * item, whole);
    reduce_into(out + first * item, staging_.data(), static_cast<int64_t>(whole / item), dst_.type(), op_);
    written_ += take;
    staging_.erase(staging_.begin(), staging_.begin() + static_cast<std::ptrdiff_t>(whole));
  }
}

}  // namespace mlxd::comm
