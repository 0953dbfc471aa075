// slipway token create|list|revoke, slipway audit
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/strings.h"

namespace slipway::cli {

namespace {

json::array names_json(const std::vector<std::string>& names) {
  json::array a;
  for (const auto& n : names)
    a.emplace_back(n);
  return a;
}

std::string list_cell(const json::value& v, std::string_view key) {
  std::vector<std::string> out;
  if (const auto* a = v.as_object().if_contains(key); a && a->is_array()) {
    for (const auto& e : a->as_array()) {
      if (e.is_string()) out.emplace_back(e.as_string());
    }
  }
  return out.empty() ? "all" : join(out, ",");
}

std::string str_of(const json::value& v, std::string_view key) {
  const auto* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  return f && f->is_string() ? std::string(f->as_string()) : std::string();
}

int64_t int_of(const json::value& v, std::string_view key) {
  const auto* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  return f && f->is_int64() ? f->as_int64() : 0;
}

// "2026-12-02T04:00:00.000Z" as "2026-12-02 04:00:00"; "-" for none.
std::string time_cell(const json::value& v, std::string_view key, const char* none = "-") {
  const std::string t = str_of(v, key);
  if (t.empty()) return none;
  const TimeMs ms = parse_time(t);
  return ms < 0 ? t : format_time_short(ms);
}

}  // namespace

int cmd_token_create(const ClientFlags& f, const TokenCreateArgs& a) {
  for (const auto& e : a.envs) {
    if (auto st = validate_name(NameKind::env, e); !st) return fail(st.error());
  }
  for (const auto& app : a.apps) {
    if (auto st = validate_name(NameKind::app, app); !st) return fail(st.error());
  }
  if (!a.name.empty()) {
    if (auto st = validate_name(NameKind::token, a.name); !st) return fail(st.error());
  }
  if (!a.ttl.empty()) {
    if (auto d = parse_duration(a.ttl); !d) return fail(d.error());
  }
  json::object body{{"role", a.role}};
  if (!a.name.empty()) body["name"] = a.name;
  if (!a.envs.empty()) body["envs"] = names_json(a.envs);
  if (!a.apps.empty()) body["apps"] = names_json(a.apps);
  if (!a.ttl.empty()) body["ttl"] = a.ttl;
  auto c = make_client(f);
  auto r = c.post("/api/v1/tokens", body);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  const std::string expires = time_cell(*r, "expires_at", "never");
  std::cout << paint("✓", Color::green) << " "
            << fmt::format(
                   "created token '{}' (#{}): role {}, environments {}, apps {}, expires {}\n",
                   str_of(*r, "name"), int_of(*r, "id"), str_of(*r, "role"), list_cell(*r, "envs"),
                   list_cell(*r, "apps"), expires)
            << str_of(*r, "token") << "\n"
            << "  it is shown only this once (the server keeps only its hash): use it as "
               "SLIPWAY_TOKEN or --token; `slipway token revoke "
            << str_of(*r, "name") << "` cuts it off\n";
  return kExitOk;
}

int cmd_token_list(const ClientFlags& f) {
  auto c = make_client(f);
  auto r = c.get("/api/v1/tokens");
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  Table t({"ID", "NAME", "ROLE", "ENVS", "APPS", "CREATED (UTC)", "BY", "EXPIRES (UTC)",
           "LAST USED (UTC)", "STATE"});
  const auto* list = r->is_object() ? r->as_object().if_contains("tokens") : nullptr;
  const TimeMs now = now_ms();
  if (list && list->is_array()) {
    for (const auto& tv : list->as_array()) {
      if (!tv.is_object()) continue;
      std::string state = paint("active", Color::green);
      const auto* revoked = tv.as_object().if_contains("revoked");
      if (revoked && revoked->is_bool() && revoked->as_bool()) {
        state = "revoked by " + str_of(tv, "revoked_by");
      } else if (const TimeMs exp = parse_time(str_of(tv, "expires_at")); exp > 0 && exp <= now) {
        state = "expired";
      }
      t.row({fmt::format("#{}", int_of(tv, "id")), str_of(tv, "name"), str_of(tv, "role"),
             list_cell(tv, "envs"), list_cell(tv, "apps"), time_cell(tv, "created_at"),
             str_of(tv, "created_by"), time_cell(tv, "expires_at", "never"),
             time_cell(tv, "last_used", "never"), state});
    }
  }
  if (t.empty()) {
    std::cout << "no API tokens (the bootstrap admin token is in DATA_DIR/admin.token)\n";
  } else {
    t.print(std::cout);
  }
  return kExitOk;
}

int cmd_token_revoke(const ClientFlags& f, const std::string& name_or_id) {
  std::string ref = name_or_id;
  if (!ref.empty() && ref.front() == '#') ref = ref.substr(1);
  if (auto st = validate_name(NameKind::token, ref); !st) return fail(st.error());
  auto c = make_client(f);
  auto r = c.send("DELETE", "/api/v1/tokens/" + ref, nullptr);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  std::cout << paint("✓", Color::green) << " "
            << fmt::format("revoked token '{}' (#{}): it is refused from now on\n",
                           str_of(*r, "name"), int_of(*r, "id"));
  return kExitOk;
}

int cmd_audit(const ClientFlags& f, const std::string& since, int limit) {
  std::string q = fmt::format("?limit={}", limit);
  if (!since.empty()) {
    TimeMs t = parse_rfc3339(since);
    if (t < 0) {
      auto d = parse_duration(since);
      if (!d) {
        return fail(err(Errc::invalid_argument,
                        fmt::format("--since '{}' is neither a duration (1h, 2d) nor an RFC 3339 "
                                    "time (2026-12-24T18:00:00Z)",
                                    since)));
      }
      t = now_ms() - d->count();
    }
    q += "&since=" + format_time(t);
  }
  if (limit < 1 || limit > 10'000) {
    return fail(err(Errc::invalid_argument, "--limit must be from 1 to 10000"));
  }
  auto c = make_client(f);
  auto r = c.get("/api/v1/audit" + q);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  Table t({"TIME (UTC)", "ACTOR", "TOKEN", "FROM", "ACTION", "TARGET", "OUTCOME"});
  const auto* list = r->is_object() ? r->as_object().if_contains("entries") : nullptr;
  if (list && list->is_array()) {
    for (const auto& e : list->as_array()) {
      if (!e.is_object()) continue;
      const int64_t status = int_of(e, "status");
      std::string outcome = std::to_string(status);
      if (status == 0) {
        outcome = paint("unknown (not recorded)", Color::yellow);
      } else if (status >= 400) {
        outcome = paint(fmt::format("{} {}", status, str_of(e, "error_code")), Color::red);
      }
      t.row({time_cell(e, "at"), actor_cell(str_of(e, "actor"), str_of(e, "claimed_user")),
             str_of(e, "token"), str_of(e, "remote"), str_of(e, "action"), str_of(e, "target"),
             outcome});
    }
  }
  if (t.empty()) {
    std::cout << "no audit entries" << (since.empty() ? "" : " since " + since) << "\n";
  } else {
    t.print(std::cout);
  }
  return kExitOk;
}

int cmd_audit_verify(const ClientFlags& f) {
  auto c = make_client(f);
  auto r = c.get("/api/v1/audit/verify");
  if (!r) return fail(r.error());
  const auto* intact = r->is_object() ? r->as_object().if_contains("intact") : nullptr;
  const bool ok = intact && intact->is_bool() && intact->as_bool();
  if (f.json()) {
    print_json(*r);
    return ok ? kExitOk : kExitFailed;
  }
  const int64_t rows = int_of(*r, "rows");
  const int64_t legacy = int_of(*r, "legacy_rows");
  if (ok) {
    std::cout << paint("✓", Color::green) << " "
              << fmt::format("the audit log is intact: {} row(s) checked{}\n", rows,
                             legacy > 0 ? fmt::format(" ({} from before audit.key, as a plain "
                                                      "SHA-256 chain anchored under it)",
                                                      legacy)
                                        : std::string());
    return kExitOk;
  }
  const auto* bad = r->as_object().if_contains("first_bad");
  const json::value none;
  const json::value& b = bad ? *bad : none;
  std::cerr << paint("✗", Color::red) << " "
            << fmt::format("the audit log is NOT intact: row {} is bad: {}\n", int_of(b, "id"),
                           str_of(b, "reason"));
  return kExitFailed;
}

}  // namespace slipway::cli
