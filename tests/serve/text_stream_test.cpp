// The streamed text of a sequence: whole UTF-8 characters, and stop strings cut out even when their
// characters arrive in several tokens. The tiny byte-level tokenizer of tests/apps/data maps byte b to token
// id b, so each byte of a test string is one token.
#include <gtest/gtest.h>

#include "mlxd/serve/text_stream.h"

namespace mlxd::serve {
namespace {

tokenizer tiny() {
  return tokenizer::load(MLXD_TINY_TOKENIZER);
}

// Pushes the bytes of `text` one token each; returns the pieces, then finish() as the last piece.
std::vector<std::string> feed(text_stream& s, const std::string& text) {
  std::vector<std::string> pieces;
  for (unsigned char c : text) pieces.push_back(s.push(static_cast<token_id>(c)));
  pieces.push_back(s.finish());
  return pieces;
}

std::string joined(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

TEST(TextStream, WithoutStopStringsEmitsEveryCharacterOnce) {
  text_stream s(tiny(), {});
  const auto pieces = feed(s, "hello, world");
  EXPECT_EQ(joined(pieces), "hello, world");
  EXPECT_EQ(pieces[0], "h");  // nothing held back without stop strings
  EXPECT_FALSE(s.stopped());
}

TEST(TextStream, HoldsASplitCharacterUntilWhole) {
  text_stream s(tiny(), {});
  EXPECT_EQ(s.push(0xC3), "");
  EXPECT_EQ(s.push(0xA9), "\xC3\xA9");  // é
  EXPECT_EQ(s.push(0xE2), "");
  EXPECT_EQ(s.push(0x82), "");
  EXPECT_EQ(s.push(0xAC), "\xE2\x82\xAC");  // €
}

TEST(TextStream, CutsAStopStringSplitAcrossTokensAndNeverSendsIt) {
  text_stream s(tiny(), {"lo w"});
  const auto pieces = feed(s, "hello world");
  EXPECT_EQ(joined(pieces), "hel");
  EXPECT_TRUE(s.stopped());
  for (const auto& p : pieces) EXPECT_EQ(p.find('o'), std::string::npos) << p;
  EXPECT_EQ(s.push('x'), "");  // nothing after the stop
}

TEST(TextStream, ReleasesHeldTextOnceItCannotStartAStopString) {
  text_stream s(tiny(), {"xyz"});
  EXPECT_EQ(s.push('a'), "a");
  EXPECT_EQ(s.push('x'), "");  // could start "xyz"
  EXPECT_EQ(s.push('y'), "");  // could still
  EXPECT_EQ(s.push('q'), "xyq");
  EXPECT_EQ(s.push('x'), "");
  EXPECT_EQ(s.finish(), "x");  // the end: what was held is sent
  EXPECT_FALSE(s.stopped());
}

TEST(TextStream, FirstOfSeveralStopStringsWins) {
  text_stream s(tiny(), {"world", "o"});
  EXPECT_EQ(joined(feed(s, "hello world")), "hell");
  text_stream t(tiny(), {"ld", "wor"});
  EXPECT_EQ(joined(feed(t, "hello world")), "hello ");
}

TEST(TextStream, StopStringWithAMultiByteCharacter) {
  text_stream s(tiny(), {"\xC3\xA9!"});  // "é!"
  const auto pieces = feed(s, "caf\xC3\xA9 caf\xC3\xA9!x");
  EXPECT_EQ(joined(pieces), "caf\xC3\xA9 caf");
  EXPECT_TRUE(s.stopped());
}

TEST(TextStream, SpecialTokensAreNotText) {
  const tokenizer tok = tiny();
  text_stream s(tok, {});
  EXPECT_EQ(s.push('a'), "a");
  EXPECT_EQ(s.push(*tok.eos_id()), "");
  EXPECT_EQ(s.finish(), "");
}

}  // namespace
}  // namespace mlxd::serve
