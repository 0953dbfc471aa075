#include "artifacts/template.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

const std::map<std::string, std::string> kVars{
    {"DB_URL", "postgres://db/app"}, {"PORT", "8080"}, {"EMPTY", ""}, {"_x1", "y"}};

std::string render_ok(std::string_view text) {
  auto r = render_template(text, kVars);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : "";
}

std::string render_error(std::string_view text) {
  auto r = render_template(text, kVars);
  EXPECT_FALSE(r) << "rendered: " << (r ? *r : "");
  return r ? "" : r.error().message;
}

TEST(Template, ReplacesKeysWithOrWithoutBlanks) {
  EXPECT_EQ(render_ok("url={{ DB_URL }}\nport={{PORT}}{{\tEMPTY\t}}!{{_x1}}"),
            "url=postgres://db/app\nport=8080!y");
}

TEST(Template, TextWithoutTagsIsCopiedAsIs) {
  EXPECT_EQ(render_ok(""), "");
  EXPECT_EQ(render_ok("a { b } c }} d {x} }}}"), "a { b } c }} d {x} }}}");
  EXPECT_EQ(render_ok(std::string("bin\0ary\xff", 8)), std::string("bin\0ary\xff", 8));
}

TEST(Template, FourBracesAreALiteralPair) {
  EXPECT_EQ(render_ok("{{{{ PORT }}"), "{{ PORT }}");
  EXPECT_EQ(render_ok("{{{{{{PORT}}"), "{{8080");
}

TEST(Template, ValuesAreNotRenderedAgain) {
  auto r = render_template("{{ A }}", {{"A", "{{ B }}"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "{{ B }}");
}

TEST(Template, UnknownKeyNamesItsLineAndColumn) {
  const auto m = render_error("a\nbb {{ NOPE }}\n");
  EXPECT_NE(m.find("line 2, column 4"), std::string::npos) << m;
  EXPECT_NE(m.find("unknown key 'NOPE'"), std::string::npos) << m;
}

TEST(Template, MalformedTagsAreErrorsWithPositions) {
  for (const auto* text : {"{{ }}", "{{1A}}", "{{ A B }}", "{{ A-B }}", "{{", "x {{ PORT",
                           "{{ PORT\n}}", "{{ SLIPWAY.X }}", "{{{ PORT }}"}) {
    const auto m = render_error(text);
    EXPECT_NE(m.find("line 1, column"), std::string::npos) << text << ": " << m;
    EXPECT_NE(m.find("malformed tag"), std::string::npos) << text << ": " << m;
  }
  EXPECT_NE(render_error("ok\n\n  {{ 9 }}").find("line 3, column 3"), std::string::npos);
}

TEST(Template, ErrorsNeverHoldAValue) {
  const std::map<std::string, std::string> secret{{"TOKEN", "s3cr3t-value"}};
  for (const auto* text : {"{{ TOKEN }} {{ OTHER }}", "{{ TOKEN }} {{", "{{ TOKEN }}{{ TOKEN"}) {
    auto r = render_template(text, secret);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message.find("s3cr3t"), std::string::npos) << r.error().message;
  }
}

TEST(Template, OverlongKeyIsMalformed) {
  const std::string key(129, 'K');
  EXPECT_NE(render_error("{{" + key + "}}").find("malformed"), std::string::npos);
}

TEST(Template, InputAndOutputAreBounded) {
  auto big = render_template(std::string(kMaxTemplateInput + 1, 'x'), {});
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error().code, Errc::too_large);
  // A small template that expands past the output limit.
  std::string text;
  for (int i = 0; i < 10'000; ++i)
    text += "{{A}}";
  auto r = render_template(text, {{"A", std::string(1024, 'v')}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::too_large);
}

TEST(Template, HostileInputNeverCrashes) {
  // Deterministic pseudo-random texts made of the syntax's characters.
  uint32_t seed = 12345;
  const std::string alphabet = "{}{} \n\tAPORT_9x-\0";
  for (int round = 0; round < 2000; ++round) {
    std::string text;
    const int len = static_cast<int>(seed % 64);
    for (int i = 0; i < len; ++i) {
      seed = seed * 1103515245u + 12345u;
      text += alphabet[(seed >> 16) % alphabet.size()];
    }
    auto r = render_template(text, kVars);
    if (!r) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

}  // namespace
}  // namespace slipway
