// Freeze windows (engine/freeze.h): when a freeze applies, the end time users give, the refusal
// message, the reason's rules and the JSON. Time comes from a hand-driven clock.
#include "engine/freeze.h"

#include <gtest/gtest.h>

namespace slipway::engine {
namespace {

constexpr TimeMs kNow = 1'700'000'000'000;  // 2023-11-14T22:13:20Z
constexpr TimeMs kHour = 3'600'000;

Freeze freeze(FreezeId id, std::string env, std::string app, TimeMs until,
              std::string reason = "release freeze") {
  Freeze f;
  f.id = id;
  f.env = std::move(env);
  f.app = std::move(app);
  f.until = until;
  f.reason = std::move(reason);
  f.created_by = "alice@laptop";
  f.created_at = kNow - kHour;
  return f;
}

TEST(FreezeUntil, Rfc3339WithZAndOffsets) {
  EXPECT_EQ(parse_until("2026-12-24T18:00:00Z", kNow).value(), 1'798'135'200'000);
  EXPECT_EQ(parse_until("2026-12-24T19:00:00+01:00", kNow).value(), 1'798'135'200'000);
  EXPECT_EQ(parse_until("2026-12-24T12:30:00-05:30", kNow).value(), 1'798'135'200'000);
  EXPECT_EQ(parse_until("2023-11-14T22:13:20.001Z", kNow).value(), kNow + 1);
}

TEST(FreezeUntil, RelativeDurations) {
  EXPECT_EQ(parse_until("2h", kNow).value(), kNow + 2 * kHour);
  EXPECT_EQ(parse_until("3d", kNow).value(), kNow + 72 * kHour);
  EXPECT_EQ(parse_until("1h30m", kNow).value(), kNow + 90 * 60'000);
  EXPECT_EQ(parse_until("90s", kNow).value(), kNow + 90'000);
}

TEST(FreezeUntil, GarbageIsRefusedWithExamples) {
  for (const char* text : {"", "tomorrow", "2h30", "-2h", "2026-12-24", "2026-12-24T18:00:00",
                           "2026-13-01T00:00:00Z", "2026-12-24T18:00:00+1:00", "\x01\x02"}) {
    auto r = parse_until(text, kNow);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, Errc::invalid_argument) << text;
    EXPECT_NE(r.error().message.find("2026-12-24T18:00:00Z"), std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find("2h"), std::string::npos) << r.error().message;
    EXPECT_EQ(r.error().message.find('\x01'), std::string::npos) << "control characters shown";
  }
}

TEST(FreezeUntil, ThePastAndNowAreRefused) {
  for (const char* text : {"2023-11-14T22:13:20Z", "2023-11-14T22:13:19.999Z",
                           "2020-01-01T00:00:00Z", "2023-11-14T23:13:20+01:00", "0s", "0"}) {
    auto r = parse_until(text, kNow);
    ASSERT_FALSE(r) << text;
    EXPECT_EQ(r.error().code, Errc::invalid_argument);
    EXPECT_NE(r.error().message.find("not in the future"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("2023-11-14 22:13:20 UTC"), std::string::npos)
        << "says what time it is: " << r.error().message;
  }
}

TEST(FreezeMatch, EnvWideCoversEveryAppOfItsEnvOnly) {
  const Freeze f = freeze(1, "production", "", kNow + kHour);
  EXPECT_TRUE(f.applies_to("web", "production", kNow));
  EXPECT_TRUE(f.applies_to("billing", "production", kNow));
  EXPECT_FALSE(f.applies_to("web", "staging", kNow));
  EXPECT_FALSE(f.applies_to("web", "production-eu", kNow));
}

TEST(FreezeMatch, AppSpecificCoversThatAppOnly) {
  const Freeze f = freeze(1, "production", "web", kNow + kHour);
  EXPECT_TRUE(f.applies_to("web", "production", kNow));
  EXPECT_FALSE(f.applies_to("billing", "production", kNow));
  EXPECT_FALSE(f.applies_to("web", "staging", kNow));
}

TEST(FreezeMatch, ExpiredAndLiftedFreezesStopApplying) {
  Freeze f = freeze(1, "production", "", kNow + kHour);
  EXPECT_TRUE(f.active(kNow));
  EXPECT_TRUE(f.active(kNow + kHour - 1));
  EXPECT_FALSE(f.active(kNow + kHour));  // `until` is the first moment it no longer applies
  EXPECT_FALSE(f.applies_to("web", "production", kNow + kHour));
  EXPECT_FALSE(f.applies_to("web", "production", kNow + 100 * kHour));

  f.lifted_by = "bob";
  f.lifted_at = kNow - 1;
  EXPECT_FALSE(f.active(kNow));
  EXPECT_FALSE(f.applies_to("web", "production", kNow));
}

TEST(FreezeMatch, BlockingKeepsTheOnesThatApplyInOrder) {
  ManualClock clock(kNow);
  const std::vector<Freeze> all = {
      freeze(1, "production", "", kNow + 2 * kHour, "year end"),
      freeze(2, "production", "web", kNow + kHour, "web launch"),
      freeze(3, "production", "billing", kNow + 5 * kHour),
      freeze(4, "staging", "", kNow + 5 * kHour),
  };
  auto ids = [&](std::string_view app, std::string_view env) {
    std::vector<FreezeId> out;
    for (const auto& f : freezes_blocking(all, app, env, clock.now()))
      out.push_back(f.id);
    return out;
  };
  EXPECT_EQ(ids("web", "production"), (std::vector<FreezeId>{1, 2}));
  EXPECT_EQ(ids("billing", "production"), (std::vector<FreezeId>{1, 3}));
  EXPECT_EQ(ids("search", "production"), (std::vector<FreezeId>{1}));
  EXPECT_EQ(ids("web", "staging"), (std::vector<FreezeId>{4}));
  EXPECT_TRUE(ids("web", "qa").empty());

  clock.advance(kHour);  // the web freeze is over
  EXPECT_EQ(ids("web", "production"), (std::vector<FreezeId>{1}));
  clock.advance(kHour);  // and the year-end one
  EXPECT_TRUE(ids("web", "production").empty());
  EXPECT_EQ(ids("billing", "production"), (std::vector<FreezeId>{3}));
}

TEST(FreezeMessage, NamesWhoUntilWhenWhyAndForce) {
  const std::vector<Freeze> blocking = {freeze(7, "production", "", kNow + kHour, "Black Friday"),
                                        freeze(9, "production", "web", kNow + 2 * kHour)};
  const Error e = frozen_error("web", "production", blocking);
  EXPECT_EQ(e.code, Errc::failed_precondition);
  for (const char* part : {"web cannot be deployed to production", "freeze #7 of production",
                           "alice@laptop", "2023-11-14 23:13:20 UTC", "Black Friday",
                           "freeze #9 of web in production", "--force", "slipway unfreeze"}) {
    EXPECT_NE(e.message.find(part), std::string::npos) << part << " in: " << e.message;
  }
  const std::string record = forced_record(blocking);
  EXPECT_NE(record.find("freeze #7"), std::string::npos) << record;
  EXPECT_NE(record.find("freeze #9"), std::string::npos) << record;
  EXPECT_NE(record.find("Black Friday"), std::string::npos) << record;
}

TEST(FreezeReason, RequiredBoundedPrintable) {
  EXPECT_TRUE(validate_freeze_reason("Black Friday: no changes, ask #ops"));
  EXPECT_TRUE(validate_freeze_reason("Weihnachten — Änderungsstopp"));  // UTF-8 is fine
  EXPECT_TRUE(validate_freeze_reason(std::string(kMaxFreezeReason, 'x')));
  for (const std::string& bad :
       {std::string(), std::string("   "), std::string(kMaxFreezeReason + 1, 'x'),
        std::string("a\nb"), std::string("tab\there"), std::string("bell\x07"),
        std::string("del\x7f"), std::string("nul\0x", 5), std::string("bad \xff utf-8"),
        std::string("\xc3")}) {
    auto st = validate_freeze_reason(bad);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code, Errc::invalid_argument);
  }
}

TEST(FreezeJson, RoundTrip) {
  Freeze f = freeze(3, "production", "web", kNow + kHour, "launch");
  auto v = to_json(f, kNow);
  EXPECT_EQ(
      slipway::to_json(v),
      R"({"id":3,"env":"production","app":"web","until":"2023-11-14T23:13:20.000Z",)"
      R"("reason":"launch","created_by":"alice@laptop","created_at":"2023-11-14T21:13:20.000Z",)"
      R"("lifted_by":"","lifted_at":null,"active":true})");
  auto back = freeze_from_json(v);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->id, 3);
  EXPECT_EQ(back->env, "production");
  EXPECT_EQ(back->app, "web");
  EXPECT_EQ(back->until, f.until);
  EXPECT_EQ(back->created_at, f.created_at);
  EXPECT_EQ(back->lifted_at, 0);

  f.lifted_by = "bob";
  f.lifted_at = kNow;
  v = to_json(f, kNow);
  EXPECT_FALSE(v.as_object().at("active").as_bool());
  back = freeze_from_json(v);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->lifted_by, "bob");
  EXPECT_EQ(back->lifted_at, kNow);

  EXPECT_FALSE(freeze_from_json(json::value("x")));
  EXPECT_FALSE(freeze_from_json(json::object{{"id", 1}, {"env", "e"}, {"until", "never"}}));
}

}  // namespace
}  // namespace slipway::engine
