// Freeze windows: an environment (or one app in it) where deploys are refused until a given time,
// unless forced. What a freeze is, when it applies, how users give its end, and its JSON.
//
// A freeze without an app covers every app of its environment; with one, only that app. It stops
// applying by itself at `until`, or when it is lifted. Rollbacks are never refused by a freeze
// (taking a bad change back is what a freeze must not prevent): only the server's deploy route
// asks.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/error.h"
#include "common/json.h"

namespace slipway::engine {

using FreezeId = int64_t;

// The longest reason, in bytes.
inline constexpr size_t kMaxFreezeReason = 500;

struct Freeze {
  FreezeId id = 0;
  std::string env;
  std::string app;  // "" = every app of the environment
  TimeMs until = 0;
  std::string reason;
  std::string created_by;
  TimeMs created_at = 0;
  std::string lifted_by;  // "" while not lifted
  TimeMs lifted_at = 0;   // 0 while not lifted

  // Neither lifted nor over.
  bool active(TimeMs now) const { return lifted_at == 0 && now < until; }
  // Active, and covers a deploy of `app` to `env`.
  bool applies_to(std::string_view app_name, std::string_view env_name, TimeMs now) const;
  // "staging" or "web in staging".
  std::string scope() const;
  // "freeze #3 of staging (set by alice@host, until 2026-12-24 18:00:00 UTC): the reason".
  std::string describe() const;
};

// The freezes of `all` that stop a deploy of `app` to `env` at `now`, in the order given.
std::vector<Freeze> freezes_blocking(const std::vector<Freeze>& all, std::string_view app,
                                     std::string_view env, TimeMs now);

// The refusal of a deploy stopped by `blocking` (not empty): failed_precondition naming each
// freeze (who, until when, why) and saying that --force overrides.
Error frozen_error(std::string_view app, std::string_view env, const std::vector<Freeze>& blocking);

// What a deploy forced through `blocking` records (Deploy::forced_freeze).
std::string forced_record(const std::vector<Freeze>& blocking);

// The end of a freeze as a user gives it: an RFC 3339 time ("2026-12-24T18:00:00Z",
// "2026-12-24T19:00:00+01:00") or a duration from `now` ("2h", "3d", "1h30m"). invalid_argument
// for anything else and for a time that is not after `now`.
Result<TimeMs> parse_until(std::string_view text, TimeMs now);

// A reason is required, at most kMaxFreezeReason bytes of UTF-8, without control characters.
Status validate_freeze_reason(std::string_view reason);

// {"id", "env", "app", "until", "reason", "created_by", "created_at", "lifted_by", "lifted_at",
// "active"}; times in RFC 3339 (lifted_at null while not lifted).
json::value to_json(const Freeze& f, TimeMs now);
Result<Freeze> freeze_from_json(const json::value& v);

}  // namespace slipway::engine
