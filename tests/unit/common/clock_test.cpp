// Timestamps (common/clock.h): formatting, parsing, and the clocks.
#include "common/clock.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

constexpr TimeMs kT = 1'700'000'000'123;  // 2023-11-14T22:13:20.123Z

TEST(Clock, FormatTime) {
  EXPECT_EQ(format_time(kT), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(format_time(1'000), "1970-01-01T00:00:01.000Z");
  EXPECT_EQ(format_time(951'782'400'007), "2000-02-29T00:00:00.007Z");
  EXPECT_EQ(format_time(0), "");
  EXPECT_EQ(format_time(-5), "");
}

TEST(Clock, FormatTimeShort) {
  EXPECT_EQ(format_time_short(kT), "2023-11-14 22:13:20");
  EXPECT_EQ(format_time_short(0), "-");
}

TEST(Clock, RoundTrip) {
  for (TimeMs t : {kT, TimeMs{1}, TimeMs{999}, TimeMs{1'000}, TimeMs{951'782'400'007},
                   TimeMs{4'102'444'799'999} /* 2099-12-31T23:59:59.999Z */}) {
    EXPECT_EQ(parse_time(format_time(t)), t) << format_time(t);
  }
  const TimeMs now = now_ms();
  EXPECT_EQ(parse_time(format_time(now)), now);
}

TEST(Clock, ParseWithoutOrWithShorterMilliseconds) {
  EXPECT_EQ(parse_time("2023-11-14T22:13:20Z"), 1'700'000'000'000);
  // A fraction is a fraction: ".5" is half a second, not five milliseconds.
  EXPECT_EQ(parse_time("2023-11-14T22:13:20.5Z"), 1'700'000'000'500);
  EXPECT_EQ(parse_time("2023-11-14T22:13:20.12Z"), 1'700'000'000'120);
  EXPECT_EQ(parse_time("1970-01-01T00:00:00Z"), 0);
}

TEST(Clock, BadInput) {
  for (const char* text : {
           "",
           "garbage",
           "2023-11-14",
           "2023-11-14T22:13Z",
           "2023-11-14 22:13:20Z",       // space instead of T
           "2023-11-14T22:13:20",        // no zone
           "2023-11-14T22:13:20+01:00",  // only UTC
           "2023-11-14T22:13:20.123",    // no zone
           "2023-11-14T22:13:20.123Zjunk",
           "2023-11-14T22:13:20.Z",      // empty fraction
           "2023-11-14T22:13:20.1234Z",  // more than milliseconds
           "2023-11-14T22:13:20.-12Z",   // signed fraction
           "2023-11-14T22:13:20.+12Z",
           "2023-13-14T22:13:20Z",  // month 13
           "2023-00-14T22:13:20Z",  // month 0
           "2023-11-31T22:13:20Z",  // November has 30 days
           "2023-02-29T22:13:20Z",  // not a leap year
           "2023-11-00T22:13:20Z",
           "2023-11-14T24:00:00Z",
           "2023-11-14T22:60:20Z",
           "2023-11-14T22:13:61Z",
           "2023- 1-14T22:13:20Z",  // blanks inside numbers
           "+2023-11-14T22:13:20Z",
           "2023-1-14T22:13:20Z",  // fields are zero-padded
           "20231114T221320Z",
           "1969-12-31T23:59:59Z",  // before the epoch
       }) {
    EXPECT_EQ(parse_time(text), -1) << text;
  }
  EXPECT_EQ(parse_time(std::string("2023-11-14T22:13:20Z\0x", 22)), -1);
}

TEST(Clock, Rfc3339WithZAndOffsets) {
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20Z"), 1'700'000'000'000);
  EXPECT_EQ(parse_rfc3339("2023-11-14t22:13:20z"), 1'700'000'000'000);
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20.123Z"), 1'700'000'000'123);
  // Any number of fraction digits; beyond milliseconds they are cut.
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20.123456789Z"), 1'700'000'000'123);
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20.5Z"), 1'700'000'000'500);
  // Offsets: the local time minus the offset is UTC.
  EXPECT_EQ(parse_rfc3339("2023-11-14T23:13:20+01:00"), 1'700'000'000'000);
  EXPECT_EQ(parse_rfc3339("2023-11-14T17:43:20-04:30"), 1'700'000'000'000);
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20+00:00"), 1'700'000'000'000);
  EXPECT_EQ(parse_rfc3339("2023-11-14T22:13:20-00:00"), 1'700'000'000'000);
  // Across a day, a month and a year.
  EXPECT_EQ(parse_rfc3339("2024-01-01T05:00:00+05:00"), parse_rfc3339("2024-01-01T00:00:00Z"));
  EXPECT_EQ(parse_rfc3339("2023-12-31T23:00:00-01:00"), parse_rfc3339("2024-01-01T00:00:00Z"));
  EXPECT_EQ(parse_rfc3339("2026-12-24T19:00:00.250+01:00"),
            parse_rfc3339("2026-12-24T18:00:00.250Z"));
  // What format_time writes reads back.
  EXPECT_EQ(parse_rfc3339(format_time(kT)), kT);
}

TEST(Clock, Rfc3339Garbage) {
  for (const char* text : {
           "", "garbage", "2h", "2023-11-14",
           "2023-11-14T22:13:20",        // no zone
           "2023-11-14 22:13:20Z",       // space instead of T
           "2023-11-14T22:13:20+01",     // offset without minutes
           "2023-11-14T22:13:20+0100",   // offset without colon
           "2023-11-14T22:13:20+24:00",  // offset hour out of range
           "2023-11-14T22:13:20+01:60", "2023-11-14T22:13:20Z+01:00", "2023-11-14T22:13:20.Z",
           "2023-11-31T22:13:20Z",  // November has 30 days
           "2023-11-14T22:13:60Z",  // no leap seconds
           "2023-11-14T22:13:20ZZ",
           "1970-01-01T00:30:00+01:00",  // before the epoch
       }) {
    EXPECT_EQ(parse_rfc3339(text), -1) << text;
  }
  EXPECT_EQ(parse_rfc3339(std::string_view("2023-11-14T22:13:20Z\0", 21)), -1);
}

TEST(Clock, ManualClock) {
  ManualClock c(1'000);
  EXPECT_EQ(c.now(), 1'000);
  c.advance(500);
  EXPECT_EQ(c.now(), 1'500);
  c.set(42);
  EXPECT_EQ(c.now(), 42);
  const Clock& base = c;
  EXPECT_EQ(base.now(), 42);
}

TEST(Clock, SystemClockIsTheWallClock) {
  const TimeMs before = now_ms();
  const TimeMs t = SystemClock::instance().now();
  const TimeMs after = now_ms();
  EXPECT_LE(before, t);
  EXPECT_LE(t, after);
  EXPECT_GT(t, 1'600'000'000'000);  // after 2020
}

}  // namespace
}  // namespace slipway
