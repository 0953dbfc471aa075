#include "common/duration.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include <fmt/format.h>

namespace slipway {

Result<Millis> parse_duration(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return err(Errc::invalid_argument,
               fmt::format("duration '{}' is not valid: {} (examples: 500ms, 30s, 2m, 1h30m)",
                           text.substr(0, 64), why));
  };
  if (text.empty()) return bad("it is empty");
  if (text.size() > 32) return bad("it is too long");
  // A plain number means seconds.
  bool all_digits = true;
  for (char c : text)
    all_digits = all_digits && c >= '0' && c <= '9';
  constexpr int64_t kMaxMs = 100LL * 365 * 86'400'000;  // 100 years
  if (all_digits) {
    int64_t v = 0;
    for (char c : text) {
      v = v * 10 + (c - '0');
      if (v > kMaxMs / 1000) return bad("it is too large");  // checked before it can overflow
    }
    return Millis(v * 1000);
  }
  int64_t total_ms = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (text[i] < '0' || text[i] > '9') return bad("expected a number");
    double num = 0;
    while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
      num = num * 10 + (text[i] - '0');
      ++i;
      if (num > 1e12) return bad("it is too large");
    }
    if (i < text.size() && text[i] == '.') {
      ++i;
      double scale = 0.1;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
        num += (text[i] - '0') * scale;
        scale /= 10;
        ++i;
      }
    }
    size_t u = i;
    while (i < text.size() &&
           ((text[i] >= 'a' && text[i] <= 'z') || (text[i] >= 'A' && text[i] <= 'Z')))
      ++i;
    auto unit = text.substr(u, i - u);
    double factor = 0;
    if (unit == "ms") {
      factor = 1;
    } else if (unit == "s") {
      factor = 1000;
    } else if (unit == "m") {
      factor = 60'000;
    } else if (unit == "h") {
      factor = 3'600'000;
    } else if (unit == "d") {
      factor = 86'400'000;
    } else if (unit.empty()) {
      return bad("a unit is missing after a number (ms, s, m, h or d)");
    } else {
      return bad(fmt::format("unknown unit '{}'", unit));
    }
    // Compared as a double first: converting an out-of-range double to int64 is undefined.
    const double part = num * factor;
    if (part > static_cast<double>(kMaxMs)) return bad("it is too large");
    total_ms += std::llround(part);
    if (total_ms > kMaxMs) return bad("it is too large");
  }
  return Millis(total_ms);
}

std::string format_duration(Millis d) {
  const int64_t ms = d.count();
  if (ms < 0) return "-" + format_duration(Millis(-ms));
  if (ms < 1000) return fmt::format("{}ms", ms);
  // Tenths are cut, not rounded: 59999ms is "59.9s", never "60.0s".
  if (ms < 60'000) return fmt::format("{}.{}s", ms / 1000, (ms % 1000) / 100);
  if (ms < 3'600'000) return fmt::format("{}m{:02}s", ms / 60'000, (ms / 1000) % 60);
  return fmt::format("{}h{:02}m", ms / 3'600'000, (ms / 60'000) % 60);
}

}  // namespace slipway
