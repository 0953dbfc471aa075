// Time as the rest of the code sees it: milliseconds since the Unix epoch, from an injectable
// clock, so that the deploy engine and the inventory can be tested with a hand-driven one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace slipway {

using TimeMs = int64_t;  // milliseconds since 1970-01-01T00:00:00Z

class Clock {
 public:
  virtual ~Clock() = default;
  virtual TimeMs now() const = 0;
};

class SystemClock final : public Clock {
 public:
  TimeMs now() const override;
  static const SystemClock& instance();
};

// A clock a test moves by hand.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(TimeMs start = 1'700'000'000'000) : now_(start) {}
  TimeMs now() const override { return now_; }
  void advance(TimeMs ms) { now_ += ms; }
  void set(TimeMs t) { now_ = t; }

 private:
  TimeMs now_;
};

TimeMs now_ms();  // the system clock

// "2026-11-22T04:34:15.123Z"; 0 formats as "".
std::string format_time(TimeMs t);
// "2026-11-22 04:34:15" (UTC), for tables.
std::string format_time_short(TimeMs t);
// Parses what format_time writes (and the same without milliseconds or with 1-2 fraction
// digits); -1 for anything else, a date that does not exist, or a time before 1970.
TimeMs parse_time(const std::string& text);
// Parses an RFC 3339 date-time as users write them: "2026-12-24T18:00:00Z",
// "2026-12-24T19:00:00+01:00", "2026-12-24t18:00:00.5z" (any fraction, cut to milliseconds). No
// leap seconds. -1 for anything else, a date that does not exist, or a time before 1970.
TimeMs parse_rfc3339(std::string_view text);

}  // namespace slipway
