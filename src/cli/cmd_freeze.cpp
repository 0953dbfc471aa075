// slipway freeze, slipway freezes, slipway unfreeze
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/names.h"
#include "engine/freeze.h"

namespace slipway::cli {

namespace {

Status check_scope(const std::string& env, const std::string& app) {
  if (!env.empty()) {
    if (auto st = validate_name(NameKind::env, env); !st) return st;
  }
  if (!app.empty()) return validate_name(NameKind::app, app);
  return {};
}

std::string scope_cell(const engine::Freeze& f) {
  return f.app.empty() ? f.env + " (all apps)" : f.app + " in " + f.env;
}

// The freezes of a {"KEY": [FREEZE]} answer.
std::vector<engine::Freeze> freezes_of(const json::value& v, const char* key) {
  std::vector<engine::Freeze> out;
  const auto* list = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (!list || !list->is_array()) return out;
  for (const auto& fv : list->as_array()) {
    if (auto f = engine::freeze_from_json(fv)) out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace

int cmd_freeze(const ClientFlags& f, const FreezeArgs& a) {
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  if (auto st = check_scope(a.env, a.app); !st) return fail(st.error());
  auto until = engine::parse_until(a.until, now_ms());
  if (!until) return fail(until.error());
  if (auto st = engine::validate_freeze_reason(a.reason); !st) return fail(st.error());
  json::object body{{"env", a.env}, {"until", format_time(*until)}, {"reason", a.reason}};
  if (!a.app.empty()) body["app"] = a.app;
  auto c = make_client(f);
  auto r = c.post("/api/v1/freezes", body);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  auto fz = engine::freeze_from_json(*r);
  if (!fz) return fail(fz.error());
  std::cout << paint("✓", Color::green) << " "
            << fmt::format("froze {} until {} UTC (freeze #{}): {}\n", scope_cell(*fz),
                           format_time_short(fz->until), fz->id, fz->reason)
            << fmt::format(
                   "  deploys there are refused until then; `slipway deploy --force` overrides, "
                   "`slipway unfreeze {}` lifts it; rollbacks stay allowed\n",
                   fz->id);
  return kExitOk;
}

int cmd_freezes(const ClientFlags& f, const std::string& env, const std::string& app, bool all) {
  if (auto st = check_scope(env, app); !st) return fail(st.error());
  std::string q = all ? "?all=1" : "";
  if (!env.empty()) q += (q.empty() ? "?env=" : "&env=") + env;
  if (!app.empty()) q += (q.empty() ? "?app=" : "&app=") + app;
  auto c = make_client(f);
  auto r = c.get("/api/v1/freezes" + q);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  std::vector<std::string> headers = {"ID", "SCOPE", "UNTIL (UTC)", "SET BY", "SET AT", "REASON"};
  if (all) headers.emplace_back("STATE");
  Table t(headers);
  const TimeMs now = now_ms();
  for (const auto& fz : freezes_of(*r, "freezes")) {
    std::vector<std::string> row = {fmt::format("#{}", fz.id),        scope_cell(fz),
                                    format_time_short(fz.until),      fz.created_by,
                                    format_time_short(fz.created_at), fz.reason};
    if (all) {
      row.push_back(fz.lifted_at     ? "lifted by " + fz.lifted_by
                    : fz.active(now) ? paint("active", Color::yellow)
                                     : "over");
    }
    t.row(std::move(row));
  }
  if (t.empty()) {
    std::cout << (all ? "no freezes" : "no active freezes") << (env.empty() ? "" : " in " + env)
              << "\n";
  } else {
    t.print(std::cout);
  }
  return kExitOk;
}

int cmd_unfreeze(const ClientFlags& f, int64_t id, const std::string& env, const std::string& app) {
  json::object body;
  if (id > 0) {
    if (!env.empty() || !app.empty()) {
      return fail(err(Errc::invalid_argument, "give a freeze id or --env (and --app), not both"));
    }
    body["id"] = id;
  } else {
    if (env.empty()) {
      return fail(err(Errc::invalid_argument,
                      "give a freeze id (see slipway freezes) or --env (and --app)"));
    }
    if (auto st = check_scope(env, app); !st) return fail(st.error());
    body["env"] = env;
    if (!app.empty()) body["app"] = app;
  }
  auto c = make_client(f);
  auto r = c.post("/api/v1/freezes/lift", body);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  for (const auto& fz : freezes_of(*r, "lifted")) {
    std::cout << paint("✓", Color::green) << " lifted " << fz.describe() << "\n";
  }
  return kExitOk;
}

}  // namespace slipway::cli
