#include "comm/grpc/frame.h"

#include <algorithm>
#include <cstring>

namespace mlxd::comm::frame {
namespace {

// Field keys of comm.proto: (field number << 3) | wire type.
enum : uint8_t {
  k_varint = 0,
  k_fixed64 = 1,
  k_bytes = 2,
  k_fixed32 = 5,
};
constexpr uint8_t key(int field, int type) {
  return static_cast<uint8_t>((field << 3) | type);
}

size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}

uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

uint8_t* put_fixed64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) *p++ = static_cast<uint8_t>(v >> (8 * i));
  return p;
}

void release_array(void* holder) {
  delete static_cast<array*>(holder);
}

// Reads a message spread over several slices; every read is bounded by `end` (an absolute offset).
class reader {
 public:
  explicit reader(const std::vector<grpc::Slice>& slices) : slices_(slices) {
    for (const auto& s : slices_) size_ += s.size();
    skip_empty();
  }
  size_t at() const { return abs_; }
  size_t size() const { return size_; }

  bool byte(uint8_t& out, size_t end) {
    if (abs_ >= end) return false;
    out = slices_[idx_].begin()[pos_];
    advance(1);
    return true;
  }
  bool varint(uint64_t& out, size_t end) {
    out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      uint8_t b = 0;
      if (!byte(b, end)) return false;
      if (shift == 63 && b > 1) return false;  // more than 64 bits
      out |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  bool fixed(uint64_t& out, int bytes, size_t end) {
    out = 0;
    for (int i = 0; i < bytes; ++i) {
      uint8_t b = 0;
      if (!byte(b, end)) return false;
      out |= static_cast<uint64_t>(b) << (8 * i);
    }
    return true;
  }
  bool text(std::string& out, uint64_t n, size_t end) {
    if (n > end - abs_) return false;
    out.resize(static_cast<size_t>(n));
    for (char& c : out) {
      uint8_t b = 0;
      byte(b, end);
      c = static_cast<char>(b);
    }
    return true;
  }
  bool skip(uint64_t n, size_t end) {
    if (n > end - abs_) return false;
    size_t left = static_cast<size_t>(n);
    while (left > 0) {
      const size_t step = std::min(left, slices_[idx_].size() - pos_);
      advance(step);
      left -= step;
    }
    return true;
  }

 private:
  void advance(size_t n) {
    abs_ += n;
    pos_ += n;
    if (pos_ == slices_[idx_].size()) {
      ++idx_;
      pos_ = 0;
      skip_empty();
    }
  }
  void skip_empty() {
    while (idx_ < slices_.size() && slices_[idx_].size() == 0) ++idx_;
  }

  const std::vector<grpc::Slice>& slices_;
  size_t size_ = 0, idx_ = 0, pos_ = 0, abs_ = 0;
};

// Skips the value of a field of an unknown number (or a known one with an unexpected wire type).
bool skip_value(reader& r, uint64_t type, size_t end) {
  uint64_t v = 0;
  switch (type) {
    case k_varint:
      return r.varint(v, end);
    case k_fixed64:
      return r.skip(8, end);
    case k_bytes:
      return r.varint(v, end) && r.skip(v, end);
    case k_fixed32:
      return r.skip(4, end);
    default:
      return false;  // groups (3, 4) are not part of proto3; 6 and 7 do not exist
  }
}

}  // namespace

grpc::ByteBuffer encode_chunk(uint64_t group, uint64_t tag, const array& x, size_t offset, size_t n,
                              size_t copy_below) {
  const auto& shape = x.shape();
  size_t shape_bytes = 0;
  for (int64_t d : shape) shape_bytes += varint_size(static_cast<uint64_t>(d));
  const size_t total = x.nbytes();
  // TensorChunk: dtype, shape (packed), total_bytes, offset, then the data field's key and length.
  const size_t chunk_size = 1 + varint_size(static_cast<uint64_t>(wire::to_wire(x.type()))) +
                            (shape.empty() ? 0 : 1 + varint_size(shape_bytes) + shape_bytes) + 1 +
                            varint_size(total) + 1 + varint_size(offset) + 1 + varint_size(n) + n;
  const size_t head_size = 9 + 9 + 1 + varint_size(chunk_size) + (chunk_size - n);
  const bool copy = n <= copy_below;
  grpc::Slice head(copy ? head_size + n : head_size);
  auto* p = const_cast<uint8_t*>(head.begin());
  *p++ = key(1, k_fixed64);
  p = put_fixed64(p, group);
  *p++ = key(2, k_fixed64);
  p = put_fixed64(p, tag);
  *p++ = key(3, k_bytes);
  p = put_varint(p, chunk_size);
  *p++ = key(1, k_varint);
  p = put_varint(p, static_cast<uint64_t>(wire::to_wire(x.type())));
  if (!shape.empty()) {
    *p++ = key(2, k_bytes);
    p = put_varint(p, shape_bytes);
    for (int64_t d : shape) p = put_varint(p, static_cast<uint64_t>(d));
  }
  *p++ = key(3, k_varint);
  p = put_varint(p, total);
  *p++ = key(4, k_varint);
  p = put_varint(p, offset);
  *p++ = key(5, k_bytes);
  p = put_varint(p, n);
  const char* data = static_cast<const char*>(x.raw_data()) + offset;
  if (copy) {
    if (n > 0) std::memcpy(p, data, n);
    return grpc::ByteBuffer(&head, 1);
  }
  grpc::Slice slices[2] = {std::move(head),
                           grpc::Slice(const_cast<char*>(data), n, release_array, new array(x))};
  return grpc::ByteBuffer(slices, 2);
}

grpc::ByteBuffer encode_goodbye(const std::string& reason) {
  const size_t n = std::min(reason.size(), wire::max_goodbye_reason);
  std::string bytes = {static_cast<char>(key(4, k_varint)), 1};
  if (n > 0) {
    bytes.push_back(static_cast<char>(key(5, k_bytes)));
    uint8_t length[10];
    bytes.append(reinterpret_cast<const char*>(length), put_varint(length, n) - length);
    bytes.append(reason, 0, n);
  }
  grpc::Slice s(bytes);
  return grpc::ByteBuffer(&s, 1);
}

std::string envelope::parse(const grpc::ByteBuffer& message) {
  group = tag = 0;
  goodbye = has_chunk = false;
  goodbye_reason.clear();
  chunk.dtype = 0;
  chunk.shape.clear();
  chunk.total_bytes = chunk.offset = 0;
  data_begin_ = data_size_ = 0;
  slices_.clear();
  if (!message.Dump(&slices_).ok()) return "unreadable message";
  reader r(slices_);
  const size_t end = r.size();
  while (r.at() < end) {
    uint64_t k = 0, v = 0;
    if (!r.varint(k, end)) return "truncated field key";
    const uint64_t field = k >> 3, type = k & 7;
    if (field == 1 && type == k_fixed64) {
      if (!r.fixed(group, 8, end)) return "truncated group";
    } else if (field == 2 && type == k_fixed64) {
      if (!r.fixed(tag, 8, end)) return "truncated tag";
    } else if (field == 4 && type == k_varint) {
      if (!r.varint(v, end)) return "truncated goodbye";
      goodbye = v != 0;
    } else if (field == 5 && type == k_bytes) {
      if (!r.varint(v, end)) return "truncated goodbye reason";
      if (v > wire::max_goodbye_reason)
        return "goodbye reason of " + std::to_string(v) + " bytes (at most " +
               std::to_string(wire::max_goodbye_reason) + ")";
      if (!r.text(goodbye_reason, v, end)) return "truncated goodbye reason";
    } else if (field == 3 && type == k_bytes) {
      if (!r.varint(v, end) || v > end - r.at()) return "truncated chunk";
      has_chunk = true;
      const size_t chunk_end = r.at() + static_cast<size_t>(v);
      while (r.at() < chunk_end) {
        if (!r.varint(k, chunk_end)) return "truncated chunk field key";
        const uint64_t f = k >> 3, t = k & 7;
        if (f == 1 && t == k_varint) {
          if (!r.varint(v, chunk_end)) return "truncated dtype";
          chunk.dtype = static_cast<int>(static_cast<int32_t>(static_cast<uint32_t>(v)));
        } else if (f == 2 && (t == k_varint || t == k_bytes)) {
          // Packed (a length, then varints) or one unpacked value; both may repeat.
          size_t list_end = 0;
          if (t == k_bytes) {
            if (!r.varint(v, chunk_end) || v > chunk_end - r.at()) return "truncated shape";
            list_end = r.at() + static_cast<size_t>(v);
          }
          for (bool first = true; t == k_bytes ? r.at() < list_end : first; first = false) {
            if (!r.varint(v, t == k_bytes ? list_end : chunk_end)) return "truncated shape";
            if (chunk.shape.size() == static_cast<size_t>(wire::max_ndim))
              return "shape has more than " + std::to_string(wire::max_ndim) + " dimensions";
            chunk.shape.push_back(static_cast<int64_t>(v));
          }
        } else if (f == 3 && t == k_varint) {
          if (!r.varint(chunk.total_bytes, chunk_end)) return "truncated total_bytes";
        } else if (f == 4 && t == k_varint) {
          if (!r.varint(chunk.offset, chunk_end)) return "truncated offset";
        } else if (f == 5 && t == k_bytes) {
          if (!r.varint(v, chunk_end) || v > chunk_end - r.at()) return "truncated data";
          data_begin_ = r.at();
          data_size_ = static_cast<size_t>(v);
          r.skip(v, chunk_end);
        } else if (!skip_value(r, t, chunk_end)) {
          return "malformed chunk field " + std::to_string(f);
        }
      }
    } else if (!skip_value(r, type, end)) {
      return "malformed field " + std::to_string(field);
    }
  }
  return "";
}

void envelope::for_each_data_piece(const std::function<void(const char*, size_t)>& piece) const {
  size_t skip = data_begin_, left = data_size_;
  for (const auto& s : slices_) {
    if (left == 0) break;
    if (skip >= s.size()) {
      skip -= s.size();
      continue;
    }
    const size_t n = std::min(left, s.size() - skip);
    piece(reinterpret_cast<const char*>(s.begin()) + skip, n);
    left -= n;
    skip = 0;
  }
}

}  // namespace mlxd::comm::frame
