#include "engine/freeze.h"

#include <fmt/format.h>

#include "common/duration.h"
#include "common/strings.h"

namespace slipway::engine {

namespace {

// User text quoted in an error message: bounded, control characters shown as '?'.
std::string quoted(std::string_view text) {
  std::string out(text.substr(0, 64));
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return "'" + valid_utf8(out) + (text.size() > 64 ? "...'" : "'");
}

std::string utc(TimeMs t) {
  return format_time_short(t) + " UTC";
}

}  // namespace

bool Freeze::applies_to(std::string_view app_name, std::string_view env_name, TimeMs now) const {
  return active(now) && env == env_name && (app.empty() || app == app_name);
}

std::string Freeze::scope() const {
  return app.empty() ? env : fmt::format("{} in {}", app, env);
}

std::string Freeze::describe() const {
  return fmt::format("freeze #{} of {} (set by {}, until {}): {}", id, scope(),
                     created_by.empty() ? "unknown" : created_by, utc(until), reason);
}

std::vector<Freeze> freezes_blocking(const std::vector<Freeze>& all, std::string_view app,
                                     std::string_view env, TimeMs now) {
  std::vector<Freeze> out;
  for (const auto& f : all) {
    if (f.applies_to(app, env, now)) out.push_back(f);
  }
  return out;
}

Error frozen_error(std::string_view app, std::string_view env,
                   const std::vector<Freeze>& blocking) {
  std::string msg = fmt::format("{} cannot be deployed to {}: it is frozen by ", app, env);
  for (size_t i = 0; i < blocking.size(); ++i) {
    msg += (i ? "; and by " : "") + blocking[i].describe();
  }
  msg +=
      ". Deploys are refused until then; `slipway deploy --force` overrides (the deploy is "
      "recorded as forced), `slipway unfreeze` lifts it, rollbacks are always allowed";
  return err(Errc::failed_precondition, std::move(msg));
}

std::string forced_record(const std::vector<Freeze>& blocking) {
  std::vector<std::string> parts;
  parts.reserve(blocking.size());
  for (const auto& f : blocking)
    parts.push_back(f.describe());
  return join(parts, "; ");
}

Result<TimeMs> parse_until(std::string_view text, TimeMs now) {
  TimeMs t = parse_rfc3339(text);
  if (t < 0) {
    auto d = parse_duration(text);
    if (!d) {
      return err(Errc::invalid_argument,
                 fmt::format("until {} is neither a time (RFC 3339: 2026-12-24T18:00:00Z, "
                             "2026-12-24T19:00:00+01:00) nor a duration from now (2h, 3d, 1h30m)",
                             quoted(text)));
    }
    t = now + d->count();
  }
  if (t <= now) {
    return err(Errc::invalid_argument,
               fmt::format("until {} is not in the future (it is {} now): a freeze must end later",
                           quoted(text), utc(now)));
  }
  return t;
}

Status validate_freeze_reason(std::string_view reason) {
  if (trim(reason).empty()) {
    return err(Errc::invalid_argument, "a reason is required: say why deploys are frozen");
  }
  if (reason.size() > kMaxFreezeReason) {
    return err(Errc::invalid_argument, fmt::format("the reason is too long ({} bytes, at most {})",
                                                   reason.size(), kMaxFreezeReason));
  }
  for (size_t i = 0; i < reason.size(); ++i) {
    const auto u = static_cast<unsigned char>(reason[i]);
    if (u < 0x20 || u == 0x7f) {
      return err(Errc::invalid_argument,
                 fmt::format("the reason has a control character (0x{:02x}) at byte {}", u, i + 1));
    }
  }
  if (valid_utf8(reason) != reason) {
    return err(Errc::invalid_argument, "the reason is not valid UTF-8");
  }
  return {};
}

json::value to_json(const Freeze& f, TimeMs now) {
  return json::object{
      {"id", f.id},
      {"env", f.env},
      {"app", f.app},
      {"until", format_time(f.until)},
      {"reason", f.reason},
      {"created_by", f.created_by},
      {"created_at", format_time(f.created_at)},
      {"lifted_by", f.lifted_by},
      {"lifted_at", f.lifted_at ? json::value(format_time(f.lifted_at)) : json::value(nullptr)},
      {"active", f.active(now)}};
}

Result<Freeze> freeze_from_json(const json::value& v) {
  JsonReader r(v, "freeze");
  Freeze f;
  f.id = r.i64("id");
  f.env = r.str("env");
  f.app = r.str_or("app", "");
  const std::string until = r.str("until");
  f.reason = r.str_or("reason", "");
  f.created_by = r.str_or("created_by", "");
  const std::string created_at = r.str_or("created_at", "");
  f.lifted_by = r.str_or("lifted_by", "");
  const auto lifted_at = r.opt_value("lifted_at");
  r.allow("active");
  if (auto st = r.finish(true); !st) return st.error();
  f.until = parse_time(until);
  f.created_at = created_at.empty() ? 0 : parse_time(created_at);
  if (lifted_at && lifted_at->is_string())
    f.lifted_at = parse_time(std::string(lifted_at->get_string()));
  if (f.until < 0 || f.created_at < 0 || f.lifted_at < 0) {
    return err(Errc::invalid_argument, "freeze: a time is not in RFC 3339 UTC");
  }
  return f;
}

}  // namespace slipway::engine
