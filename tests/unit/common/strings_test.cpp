// Small string helpers (common/strings.h).
#include "common/strings.h"

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway {
namespace {

using V = std::vector<std::string>;

TEST(Split, SkipsEmptyPartsByDefault) {
  EXPECT_EQ(split("a,b,c", ','), (V{"a", "b", "c"}));
  EXPECT_EQ(split(",a,,b,", ','), (V{"a", "b"}));
  EXPECT_EQ(split("", ','), V{});
  EXPECT_EQ(split(",,,", ','), V{});
  EXPECT_EQ(split("abc", ','), V{"abc"});
  EXPECT_EQ(split("/api/v1/nodes", '/'), (V{"api", "v1", "nodes"}));
}

TEST(Split, KeepsEmptyPartsWhenAsked) {
  EXPECT_EQ(split("a,,b", ',', false), (V{"a", "", "b"}));
  EXPECT_EQ(split(",a,", ',', false), (V{"", "a", ""}));
  EXPECT_EQ(split("", ',', false), V{""});
  EXPECT_EQ(split(",", ',', false), (V{"", ""}));
}

TEST(Join, InverseOfSplitWithoutEmptyParts) {
  EXPECT_EQ(join({}, ","), "");
  EXPECT_EQ(join({"a"}, ","), "a");
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(join({"", ""}, ","), ",");
  const std::string s = "x,y,z";
  EXPECT_EQ(join(split(s, ','), ","), s);
  const std::string with_empty = ",a,,b,";
  EXPECT_EQ(join(split(with_empty, ',', false), ","), with_empty);
}

TEST(Trim, RemovesWhitespaceAtBothEndsOnly) {
  EXPECT_EQ(trim("  a b  "), "a b");
  EXPECT_EQ(trim("\t\n a\r\n"), "a");
  EXPECT_EQ(trim(""), "");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(trim("x"), "x");
  EXPECT_EQ(trim("caf\xc3\xa9 "), "caf\xc3\xa9");  // bytes >= 0x80 are not whitespace
}

TEST(ToLower, AsciiOnly) {
  EXPECT_EQ(to_lower("Content-Type"), "content-type");
  EXPECT_EQ(to_lower("ABC123xyz"), "abc123xyz");
  EXPECT_EQ(to_lower("\xc3\x89"), "\xc3\x89");
}

TEST(Excerpt, KeepsShortPrintableTextAndCutsTheRest) {
  EXPECT_EQ(excerpt("role: api"), "role: api");
  EXPECT_EQ(excerpt("a\nb\x01"
                    "c\xff"),
            "a?b?c?");
  EXPECT_EQ(excerpt(std::string(70, 'x')), std::string(64, 'x') + "...");
  EXPECT_EQ(excerpt("abcdef", 3), "abc...");
  EXPECT_EQ(excerpt("abc", 3), "abc");
  EXPECT_EQ(excerpt(""), "");
}

TEST(TailBytes, KeepsShortTextAndCutsLongTextWithANote) {
  EXPECT_EQ(tail_bytes("hello", 10), "hello");
  EXPECT_EQ(tail_bytes("hello", 5), "hello");
  EXPECT_EQ(tail_bytes("", 0), "");
  const auto cut = tail_bytes("0123456789", 4);
  EXPECT_EQ(cut, "[... 6 bytes cut ...]\n6789");
  EXPECT_EQ(tail_bytes("abc", 0), "[... 3 bytes cut ...]\n");
}

TEST(TailBytes, NeverStartsInTheMiddleOfAUtf8Character) {
  // "é" is two bytes; a cut that would keep only its second byte keeps neither.
  const std::string s = "ab\xc3\xa9xyz";
  const auto cut = tail_bytes(s, 4);
  EXPECT_EQ(cut, "[... 4 bytes cut ...]\nxyz");
  // A cut on a character boundary keeps the character.
  EXPECT_EQ(tail_bytes(s, 5), "[... 2 bytes cut ...]\n\xc3\xa9xyz");
  // Four-byte characters (an emoji) too.
  const std::string emoji = "\xf0\x9f\x9a\x80!";
  EXPECT_EQ(tail_bytes(emoji, 3), "[... 4 bytes cut ...]\n!");
}

TEST(ValidUtf8, LeavesValidTextAlone) {
  for (std::string s :
       {std::string(""), std::string("plain ascii\n\t"), std::string("caf\xc3\xa9"),
        std::string("\xe2\x82\xac 10"), std::string("\xf0\x9f\x9a\x80"),
        std::string("nul \0 inside", 12), std::string("\xf4\x8f\xbf\xbf") /* U+10FFFF */}) {
    EXPECT_EQ(valid_utf8(s), s);
  }
}

TEST(ValidUtf8, ReplacesEachInvalidSubpartWithOneReplacementCharacter) {
  const std::string r = "\xef\xbf\xbd";  // U+FFFD
  EXPECT_EQ(valid_utf8("\xff"), r);
  EXPECT_EQ(valid_utf8("a\xff\xfe"
                       "b"),
            "a" + r + r + "b");
  EXPECT_EQ(valid_utf8("\x80"), r);               // a lone continuation byte
  EXPECT_EQ(valid_utf8("cut \xc3"), "cut " + r);  // truncated at the end
  EXPECT_EQ(valid_utf8("\xe2\x82"), r);           // one truncated character, one mark
  EXPECT_EQ(valid_utf8("\xe2\x82x"), r + "x");
  EXPECT_EQ(valid_utf8("\xc0\xaf"), r + r);                  // overlong '/'
  EXPECT_EQ(valid_utf8("\xe0\x80\xaf"), r + r + r);          // overlong, three bytes
  EXPECT_EQ(valid_utf8("\xed\xa0\x80"), r + r + r);          // a UTF-16 surrogate
  EXPECT_EQ(valid_utf8("\xf4\x90\x80\x80"), r + r + r + r);  // above U+10FFFF
  EXPECT_EQ(valid_utf8("\xf0\x9f\x9a"), r);
  // The result is always valid: running it again changes nothing.
  std::string noise;
  for (int i = 0; i < 2048; ++i)
    noise += static_cast<char>((i * 131u + 7u) % 256u);
  const auto once = valid_utf8(noise);
  EXPECT_EQ(valid_utf8(once), once);
}

TEST(ExpandVars, ReplacesKnownNamesOnly) {
  const std::map<std::string, std::string> vars{
      {"SLIPWAY_PORT", "8080"}, {"SLIPWAY_ADDRESS", "127.0.0.11"}, {"EMPTY", ""}};
  auto lookup = [&](const std::string& name) -> const std::string* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : &it->second;
  };
  EXPECT_EQ(expand_vars("http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health", lookup),
            "http://127.0.0.11:8080/health");
  EXPECT_EQ(expand_vars("${SLIPWAY_PORT}${SLIPWAY_PORT}", lookup), "80808080");
  EXPECT_EQ(expand_vars("x${EMPTY}y", lookup), "xy");
  EXPECT_EQ(expand_vars("${UNKNOWN} stays", lookup), "${UNKNOWN} stays");
  EXPECT_EQ(expand_vars("$SLIPWAY_PORT stays", lookup), "$SLIPWAY_PORT stays");
  EXPECT_EQ(expand_vars("${SLIPWAY_PORT", lookup), "${SLIPWAY_PORT");
  EXPECT_EQ(expand_vars("${}", lookup), "${}");
  EXPECT_EQ(expand_vars("$", lookup), "$");
  EXPECT_EQ(expand_vars("$$${SLIPWAY_PORT}", lookup), "$$8080");
  EXPECT_EQ(expand_vars("", lookup), "");
  // Values are not expanded again.
  const std::map<std::string, std::string> tricky{{"A", "${B}"}, {"B", "b"}};
  auto lookup2 = [&](const std::string& name) -> const std::string* {
    auto it = tricky.find(name);
    return it == tricky.end() ? nullptr : &it->second;
  };
  EXPECT_EQ(expand_vars("${A}", lookup2), "${B}");
}

}  // namespace
}  // namespace slipway
