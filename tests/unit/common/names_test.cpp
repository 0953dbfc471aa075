// The one grammar for names (common/names.h), kind by kind.
#include "common/names.h"

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway {
namespace {

const std::vector<NameKind> kAllKinds = {NameKind::app,       NameKind::env,    NameKind::node,
                                         NameKind::role,      NameKind::zone,   NameKind::tag_key,
                                         NameKind::tag_value, NameKind::version};
// The kinds that follow the plain rule (no extra characters, 63 at most, non-empty).
const std::vector<NameKind> kPlainKinds = {NameKind::app,  NameKind::env,  NameKind::node,
                                           NameKind::role, NameKind::zone, NameKind::tag_key};

bool valid(NameKind k, std::string_view v) {
  return static_cast<bool>(validate_name(k, v));
}

std::string message(NameKind k, std::string_view v) {
  auto st = validate_name(k, v);
  return st ? std::string() : st.error().message;
}

TEST(Names, LabelsAreDistinctAndReadable) {
  std::set<std::string_view> labels;
  for (auto k : kAllKinds) {
    const auto label = name_kind_label(k);
    EXPECT_FALSE(label.empty());
    labels.insert(label);
  }
  EXPECT_EQ(labels.size(), kAllKinds.size());
  EXPECT_EQ(name_kind_label(NameKind::app), "app name");
  EXPECT_EQ(name_kind_label(NameKind::env), "environment");
}

TEST(Names, OrdinaryNamesAreValidForEveryKind) {
  for (auto k : kAllKinds) {
    for (const char* v : {"web", "web-1", "Api_2", "a", "0", "eu-1a", "billing.v2", "x.y_z-w"}) {
      EXPECT_TRUE(valid(k, v)) << name_kind_label(k) << ": " << v << ": " << message(k, v);
    }
  }
}

TEST(Names, EmptyIsRefusedExceptForTagValues) {
  for (auto k : kPlainKinds) {
    auto st = validate_name(k, "");
    ASSERT_FALSE(st) << name_kind_label(k);
    EXPECT_EQ(st.error().code, Errc::invalid_argument);
    EXPECT_NE(st.error().message.find(name_kind_label(k)), std::string::npos);
    EXPECT_NE(st.error().message.find("empty"), std::string::npos);
  }
  EXPECT_FALSE(valid(NameKind::version, ""));
  EXPECT_TRUE(valid(NameKind::tag_value, ""));  // "canary=" is a tag with an empty value
}

TEST(Names, LengthLimits) {
  for (auto k : kPlainKinds) {
    EXPECT_TRUE(valid(k, std::string(63, 'a'))) << name_kind_label(k);
    EXPECT_FALSE(valid(k, std::string(64, 'a'))) << name_kind_label(k);
    EXPECT_NE(message(k, std::string(64, 'a')).find("too long"), std::string::npos);
  }
  for (auto k : {NameKind::version, NameKind::tag_value}) {
    EXPECT_TRUE(valid(k, std::string(128, '1'))) << name_kind_label(k);
    EXPECT_FALSE(valid(k, std::string(129, '1'))) << name_kind_label(k);
  }
  // A huge value is refused without echoing all of it back.
  const std::string huge(1 << 20, 'a');
  for (auto k : kAllKinds) {
    const auto m = message(k, huge);
    ASSERT_FALSE(m.empty());
    EXPECT_LT(m.size(), 400u);
  }
}

TEST(Names, DotAndDotDotAreRefusedForEveryKind) {
  for (auto k : kAllKinds) {
    EXPECT_FALSE(valid(k, ".")) << name_kind_label(k);
    EXPECT_FALSE(valid(k, "..")) << name_kind_label(k);
  }
  // Versions may not hide ".." inside either (they become directory names on the agent).
  EXPECT_FALSE(valid(NameKind::version, "1..2"));
  EXPECT_TRUE(valid(NameKind::version, "1.2"));
}

TEST(Names, SlashIsRefusedEverywhere) {
  for (auto k : kAllKinds) {
    for (const char* v : {"a/b", "/a", "a/", "../etc", "a/../b"}) {
      EXPECT_FALSE(valid(k, v)) << name_kind_label(k) << ": " << v;
    }
  }
}

TEST(Names, ControlCharactersAreRefusedAndShownEscaped) {
  for (auto k : kAllKinds) {
    for (std::string v : {std::string("a\nb"), std::string("a\tb"), std::string("a\rb"),
                          std::string("a\x7f"), std::string("a\x01"), std::string("a\0b", 3)}) {
      EXPECT_FALSE(valid(k, v)) << name_kind_label(k);
    }
  }
  const auto m = message(NameKind::app, std::string("we\nb\0x", 6));
  EXPECT_NE(m.find("\\x0a"), std::string::npos) << m;
  EXPECT_NE(m.find("\\x00"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  EXPECT_NE(m.find("position 3"), std::string::npos) << m;
}

TEST(Names, NonAsciiAndSpacesAreRefused) {
  for (auto k : kAllKinds) {
    for (const char* v : {"caf\xc3\xa9", "\xe2\x82\xac", "a b", " a", "a\xff", "a$b", "a;b", "a*",
                          "a\\b", "a\"b", "a'b", "a=b", "a,b", "a%2f"}) {
      EXPECT_FALSE(valid(k, v)) << name_kind_label(k) << ": " << v;
    }
  }
  EXPECT_NE(message(NameKind::env, "caf\xc3\xa9").find("\\xc3\\xa9"), std::string::npos);
}

TEST(Names, MustStartWithALetterOrDigitExceptTagValues) {
  for (auto k : {NameKind::app, NameKind::env, NameKind::node, NameKind::role, NameKind::zone,
                 NameKind::tag_key, NameKind::version}) {
    for (const char* v : {"-a", ".a", "_a", ".hidden"}) {
      EXPECT_FALSE(valid(k, v)) << name_kind_label(k) << ": " << v;
    }
  }
  EXPECT_NE(message(NameKind::app, "-x").find("must start with a letter or a digit"),
            std::string::npos);
  EXPECT_TRUE(valid(NameKind::tag_value, "-x"));
  EXPECT_TRUE(valid(NameKind::tag_value, "_x"));
}

TEST(Names, VersionsAllowPlusAndBang) {
  EXPECT_TRUE(valid(NameKind::version, "1.0.0+build.5"));
  EXPECT_TRUE(valid(NameKind::version, "1!2.0.post1"));
  EXPECT_TRUE(valid(NameKind::version, "1.0.0-rc.1"));
  for (auto k : kPlainKinds) {
    EXPECT_FALSE(valid(k, "a+b")) << name_kind_label(k);
    EXPECT_FALSE(valid(k, "a!b")) << name_kind_label(k);
  }
  EXPECT_FALSE(valid(NameKind::version, "1.0:0"));
  EXPECT_FALSE(valid(NameKind::version, "1.0@0"));
}

TEST(Names, TagValuesAllowColonAtAndPlus) {
  EXPECT_TRUE(valid(NameKind::tag_value, "team@corp:eu+1"));
  EXPECT_TRUE(valid(NameKind::tag_value, ":8080"));
  EXPECT_FALSE(valid(NameKind::tag_value, "a!b"));
  for (auto k : kPlainKinds) {
    EXPECT_FALSE(valid(k, "a:b")) << name_kind_label(k);
    EXPECT_FALSE(valid(k, "a@b")) << name_kind_label(k);
  }
  EXPECT_NE(message(NameKind::tag_value, "a b").find("':', '@', '+'"), std::string::npos);
}

}  // namespace
}  // namespace slipway
