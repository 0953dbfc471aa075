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

namespace {

// Parses "YYYY-MM-DDTHH:MM:SS[.fraction]" and a zone. Strict (what format_time writes): 'T', at
// most 3 fraction digits, 'Z' only. RFC 3339: 'T' or 't', any number of fraction digits (cut to
// milliseconds), and 'Z', 'z' or an offset "+HH:MM" / "-HH:MM". -1 for anything else.
TimeMs parse_date_time(std::string_view text, bool rfc3339) {
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
      !number(2, tm.tm_mday) || !(literal('T') || (rfc3339 && literal('t'))) ||
      !number(2, tm.tm_hour) || !literal(':') || !number(2, tm.tm_min) || !literal(':') ||
      !number(2, tm.tm_sec)) {
    return -1;
  }
  int ms = 0;
  if (literal('.')) {
    int digits = 0;
    for (; pos < text.size() && text[pos] >= '0' && text[pos] <= '9'; ++digits, ++pos) {
      if (digits >= 3 && !rfc3339) return -1;
      if (digits < 3) ms = ms * 10 + (text[pos] - '0');
    }
    if (digits == 0) return -1;
    for (; digits < 3; ++digits)
      ms *= 10;  // ".5" is 500 ms
  }
  int offset_min = 0;  // local time minus UTC
  if (rfc3339 && pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    const int sign = text[pos++] == '+' ? 1 : -1;
    int oh = 0;
    int om = 0;
    if (!number(2, oh) || !literal(':') || !number(2, om) || oh > 23 || om > 59) return -1;
    offset_min = sign * (oh * 60 + om);
  } else if (!literal('Z') && !(rfc3339 && literal('z'))) {
    return -1;
  }
  if (pos != text.size()) return -1;
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
  // timegm normalises (November 31st becomes December 1st): such a date does not exist.
  if (tm.tm_year + 1900 != year || tm.tm_mon + 1 != month || tm.tm_mday != day) return -1;
  const TimeMs t = (static_cast<TimeMs>(secs) - offset_min * 60LL) * 1000 + ms;
  return t < 0 ? -1 : t;
}

}  // namespace

TimeMs parse_time(const std::string& text) {
  return parse_date_time(text, false);
}

TimeMs parse_rfc3339(std::string_view text) {
  return parse_date_time(text, true);
}

}  // namespace slipway
