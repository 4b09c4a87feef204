// line_reader: lines, offsets and numbers through buffers smaller than a line, CRLF, a last line without a
// newline, reopening at an offset.
#include <gtest/gtest.h>

#include "data_test_util.h"
#include "mlxd/data/line_reader.h"
#include "mlxd/data/sample.h"

namespace mlxd::data {
namespace {

TEST(LineReader, LinesOffsetsAndNumbers) {
  test::temp_dir dir;
  const std::string text = "first\r\n\nthird line is longer than the buffer\nlast";
  const auto path = dir.write("a.txt", text);
  for (size_t buffer : {64, 4096}) {
    line_reader r(path, 0, 1, buffer);
    std::string line;
    std::vector<std::tuple<std::string, uint64_t, uint64_t>> got;
    while (r.next(line)) got.emplace_back(line, r.line_offset(), r.line_number());
    ASSERT_EQ(got.size(), 4u);
    EXPECT_EQ(got[0], std::make_tuple(std::string("first"), 0ull, 1ull));
    EXPECT_EQ(got[1], std::make_tuple(std::string(""), 7ull, 2ull));
    EXPECT_EQ(got[2], std::make_tuple(std::string("third line is longer than the buffer"), 8ull, 3ull));
    EXPECT_EQ(got[3], std::make_tuple(std::string("last"), 45ull, 4ull));
    EXPECT_EQ(r.next_offset(), text.size());
  }
}

TEST(LineReader, LongLinesGrowTheBuffer) {
  test::temp_dir dir;
  std::string big(100000, 'x');
  const auto path = dir.write("b.txt", "a\n" + big + "\nb\n");
  line_reader r(path, 0, 1, 64);
  std::string line;
  ASSERT_TRUE(r.next(line));
  ASSERT_TRUE(r.next(line));
  EXPECT_EQ(line, big);
  ASSERT_TRUE(r.next(line));
  EXPECT_EQ(line, "b");
  EXPECT_FALSE(r.next(line));
}

TEST(LineReader, ReopensAtAnOffset) {
  test::temp_dir dir;
  const auto path = dir.write("c.txt", "one\ntwo\nthree\n");
  line_reader r(path, 8, 3);
  std::string line;
  ASSERT_TRUE(r.next(line));
  EXPECT_EQ(line, "three");
  EXPECT_EQ(r.line_number(), 3u);
  EXPECT_FALSE(r.next(line));
  EXPECT_THROW(line_reader(path, 100, 1), data_error);
  EXPECT_THROW(line_reader(dir.path() / "missing.txt"), data_error);
}

}  // namespace
}  // namespace mlxd::data
