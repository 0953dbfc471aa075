#include "common/clock.h"

#include <fmt/format.h>

#include <chrono>
#include <ctime>

namespace slipway {

TimeMs SystemClock::now() const { return now_ms(); }

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
  std::tm tm{};
  int ms = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return -1;
  }
  const char* rest = text.c_str() + consumed;
  if (*rest == '.') {
    int n = 0;
    if (std::sscanf(rest, ".%3d%n", &ms, &n) != 1) return -1;
    rest += n;
  }
  if (*rest != 'Z' || rest[1] != '\0') return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const std::time_t secs = timegm(&tm);
  if (secs < 0) return -1;
  return static_cast<TimeMs>(secs) * 1000 + ms;
}

}  // namespace slipway
