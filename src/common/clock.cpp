#include "common/clock.h"

#include <chrono>
#include <ctime>

#include <fmt/format.h>

namespace slipway {

TimeMs SystemClock::now() const {
  return now_ms();
}

const SystemClock& SystemClock::instance() {
  static const SystemClock clock;
  return clock;
}

TimeMs now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {
std::tm utc(TimeMs t) {
  std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return tm;
}
}  // namespace

std::string format_time(TimeMs t) {
  if (t <= 0) return "";
  const std::tm tm = utc(t);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t % 1000);
}

std::string format_time_short(TimeMs t) {
  if (t <= 0) return "-";
  const std::tm tm = utc(t);
  return fmt::format("{:04}-{:02}-{:02} {:02}:{:02}:{:02}", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

TimeMs parse_time(const std::string& text) {
  // Exactly "YYYY-MM-DDTHH:MM:SS[.f{1,3}]Z": fixed-width unsigned fields, UTC only.
  size_t pos = 0;
  auto number = [&](size_t width, int& out) {
    if (pos + width > text.size()) return false;
    out = 0;
    for (size_t i = 0; i < width; ++i) {
      const char c = text[pos + i];
      if (c < '0' || c > '9') return false;
      out = out * 10 + (c - '0');
    }
    pos += width;
    return true;
  };
  auto literal = [&](char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
  };
  std::tm tm{};
  if (!number(4, tm.tm_year) || !literal('-') || !number(2, tm.tm_mon) || !literal('-') ||
      !number(2, tm.tm_mday) || !literal('T') || !number(2, tm.tm_hour) || !literal(':') ||
      !number(2, tm.tm_min) || !literal(':') || !number(2, tm.tm_sec)) {
    return -1;
  }
  int ms = 0;
  if (literal('.')) {
    int digits = 0;
    for (; digits < 3 && pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++digits)
      ms = ms * 10 + (text[pos++] - '0');
    if (digits == 0) return -1;
    for (; digits < 3; ++digits)
      ms *= 10;  // ".5" is 500 ms
  }
  if (!literal('Z') || pos != text.size()) return -1;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 59) {
    return -1;
  }
  const int year = tm.tm_year;
  const int month = tm.tm_mon;
  const int day = tm.tm_mday;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t secs = timegm(&tm);
  if (secs < 0) return -1;
  // timegm normalises (November 31st becomes December 1st): such a date does not exist.
  if (tm.tm_year + 1900 != year || tm.tm_mon + 1 != month || tm.tm_mday != day) return -1;
  return static_cast<TimeMs>(secs) * 1000 + ms;
}

}  // namespace slipway
