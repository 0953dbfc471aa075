// Durations as users write them (common/duration.h).
#include "common/duration.h"

#include <gtest/gtest.h>

namespace slipway {
namespace {

int64_t ms(std::string_view text) {
  auto d = parse_duration(text);
  EXPECT_TRUE(d) << text << ": " << (d ? "" : d.error().message);
  return d ? d->count() : -1;
}

std::string error_of(std::string_view text) {
  auto d = parse_duration(text);
  EXPECT_FALSE(d) << text << " parsed as " << (d ? d->count() : 0) << "ms";
  if (d) return {};
  EXPECT_EQ(d.error().code, Errc::invalid_argument);
  return d.error().message;
}

TEST(Duration, Units) {
  EXPECT_EQ(ms("500ms"), 500);
  EXPECT_EQ(ms("30s"), 30'000);
  EXPECT_EQ(ms("2m"), 120'000);
  EXPECT_EQ(ms("1h"), 3'600'000);
  EXPECT_EQ(ms("1d"), 86'400'000);
  EXPECT_EQ(ms("0s"), 0);
  EXPECT_EQ(ms("0ms"), 0);
}

TEST(Duration, Compound) {
  EXPECT_EQ(ms("1h30m"), 5'400'000);
  EXPECT_EQ(ms("2m30s"), 150'000);
  EXPECT_EQ(ms("1m500ms"), 60'500);
  EXPECT_EQ(ms("1d2h3m4s5ms"), 86'400'000 + 7'200'000 + 180'000 + 4'000 + 5);
}

TEST(Duration, Fractions) {
  EXPECT_EQ(ms("1.5s"), 1500);
  EXPECT_EQ(ms("0.25s"), 250);
  EXPECT_EQ(ms("1.5h"), 5'400'000);
  EXPECT_EQ(ms("0.1s"), 100);
  EXPECT_EQ(ms("2.5ms"), 3);  // rounded to the millisecond
}

TEST(Duration, PlainNumbersAreSeconds) {
  EXPECT_EQ(ms("45"), 45'000);
  EXPECT_EQ(ms("0"), 0);
  EXPECT_EQ(ms("007"), 7'000);
}

TEST(Duration, BadUnits) {
  EXPECT_NE(error_of("5x").find("unknown unit 'x'"), std::string::npos);
  EXPECT_NE(error_of("5sec").find("unknown unit"), std::string::npos);
  error_of("5S");
  error_of("5A");
  error_of("5µs");
  EXPECT_NE(error_of("1h30").find("unit is missing"), std::string::npos);
  error_of("1.5");
}

TEST(Duration, Malformed) {
  EXPECT_NE(error_of("").find("empty"), std::string::npos);
  error_of("s");
  error_of("ms");
  error_of("-5s");
  error_of("+5s");
  error_of(".5s");
  error_of("5 s");
  error_of(" 5s");
  error_of("5s ");
  error_of("1h 30m");
  error_of("1e3s");
  error_of("0x10s");
  error_of(std::string_view("5\0s", 3));
  // The message gives examples and quotes the input.
  const auto m = error_of("soon");
  EXPECT_NE(m.find("'soon'"), std::string::npos);
  EXPECT_NE(m.find("30s"), std::string::npos);
}

TEST(Duration, HugeValuesAreRefusedNotWrapped) {
  // 100 years is the limit.
  EXPECT_EQ(ms("36500d"), 36'500LL * 86'400'000);
  EXPECT_EQ(ms("3153600000"), 3'153'600'000'000LL);
  error_of("36501d");
  error_of("3153600001");
  // Far beyond int64 in every form: an error, never an overflow.
  error_of("99999999999999999999");
  error_of("99999999999999999999999999999999");
  error_of("999999999999d");
  error_of("999999999999h");
  error_of("99999999999999s");
  error_of("999999999999.9d");
  error_of("36499d36499d");
  const auto m = error_of(std::string(33, '1') + "s");
  EXPECT_NE(m.find("too long"), std::string::npos);
}

TEST(Duration, Format) {
  EXPECT_EQ(format_duration(Millis(0)), "0ms");
  EXPECT_EQ(format_duration(Millis(350)), "350ms");
  EXPECT_EQ(format_duration(Millis(999)), "999ms");
  EXPECT_EQ(format_duration(Millis(1000)), "1.0s");
  EXPECT_EQ(format_duration(Millis(2400)), "2.4s");
  EXPECT_EQ(format_duration(Millis(59'999)), "59.9s");  // never "60.0s"
  EXPECT_EQ(format_duration(Millis(60'000)), "1m00s");
  EXPECT_EQ(format_duration(Millis(185'000)), "3m05s");
  EXPECT_EQ(format_duration(Millis(3'599'999)), "59m59s");
  EXPECT_EQ(format_duration(Millis(3'600'000)), "1h00m");
  EXPECT_EQ(format_duration(Millis(3'720'000)), "1h02m");
  EXPECT_EQ(format_duration(Millis(100 * 3'600'000LL)), "100h00m");
  EXPECT_EQ(format_duration(Millis(-1500)), "-1.5s");
}

TEST(Duration, FormatThenParseGivesTheSameValueForWholeUnits) {
  for (int64_t v : {0LL, 350LL, 2'400LL, 185'000LL, 3'720'000LL}) {
    EXPECT_EQ(ms(format_duration(Millis(v))), v) << format_duration(Millis(v));
  }
}

}  // namespace
}  // namespace slipway
