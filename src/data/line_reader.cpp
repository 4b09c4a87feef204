#include "mlxd/data/line_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <sys/types.h>

#include "mlxd/data/sample.h"

namespace mlxd::data {

line_reader::line_reader(const std::filesystem::path& path, uint64_t offset, uint64_t line_number,
                         size_t buffer_bytes)
    : path_(path),
      file_(std::fopen(path.c_str(), "rb"), &std::fclose),
      buffer_(std::max<size_t>(buffer_bytes, 64), '\0') {
  if (!file_) throw data_error(path.string() + ": cannot open: " + std::strerror(errno));
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw data_error(path.string() + ": cannot read its size: " + ec.message());
  if (offset > size) {
    throw data_error(path.string() + ": offset " + std::to_string(offset) + " is past the end (" +
                     std::to_string(size) + " bytes)");
  }
  if (::fseeko(file_.get(), static_cast<off_t>(offset), SEEK_SET) != 0)
    throw data_error(path.string() + ": cannot seek to " + std::to_string(offset));
  next_offset_ = offset;
  line_number_ = line_number - 1;
}

bool line_reader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // keep the partial line at the front, then read behind it
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a line longer than the buffer
  const size_t n = std::fread(buffer_.data() + end_, 1, buffer_.size() - end_, file_.get());
  if (n == 0) {
    if (std::ferror(file_.get())) throw data_error(path_.string() + ": read error");
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

bool line_reader::next(std::string& line) {
  size_t scanned = begin_;
  while (true) {
    const void* nl = std::memchr(buffer_.data() + scanned, '\n', end_ - scanned);
    if (nl != nullptr) {
      const size_t at = static_cast<const char*>(nl) - buffer_.data();
      size_t stop = at;
      if (stop > begin_ && buffer_[stop - 1] == '\r') --stop;
      line.assign(buffer_.data() + begin_, stop - begin_);
      line_offset_ = next_offset_;
      next_offset_ += at + 1 - begin_;
      begin_ = at + 1;
      ++line_number_;
      return true;
    }
    const size_t consumed = end_ - begin_;
    if (!fill()) {
      if (end_ == begin_) return false;
      line.assign(buffer_.data() + begin_, end_ - begin_);  // the last line has no newline
      line_offset_ = next_offset_;
      next_offset_ += end_ - begin_;
      begin_ = end_;
      ++line_number_;
      return true;
    }
    scanned = begin_ + consumed;
  }
}

}  // namespace mlxd::data
