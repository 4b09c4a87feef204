// Streaming a text file line by line through a fixed-size buffer (never the whole file in memory), from
// any byte offset, knowing the offset and the 1-based line number of every line: the position a cursor
// stores to resume exactly.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

namespace mlxd::data {

class line_reader {
 public:
  // Opens `path` at byte `offset`, which must be the start of a line numbered `line_number`. Throws
  // data_error when the file cannot be opened or the offset lies beyond its end.
  explicit line_reader(const std::filesystem::path& path, uint64_t offset = 0, uint64_t line_number = 1,
                       size_t buffer_bytes = size_t{1} << 20);

  // Reads the next line without its "\n" (and a "\r" before it); false at the end of the file. A last line
  // without a newline counts as a line.
  bool next(std::string& line);

  uint64_t line_offset() const { return line_offset_; }  // byte offset of the line next() returned last
  uint64_t line_number() const { return line_number_; }  // its 1-based number
  uint64_t next_offset() const { return next_offset_; }  // byte offset of the line next() returns next
  const std::filesystem::path& path() const { return path_; }

 private:
  bool fill();

  std::filesystem::path path_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
  std::string buffer_;
  size_t begin_ = 0, end_ = 0;  // unread bytes: buffer_[begin_, end_)
  uint64_t line_offset_ = 0, line_number_ = 0, next_offset_ = 0;
  bool eof_ = false;
};

}  // namespace mlxd::data
