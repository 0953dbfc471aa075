// slipway history [APP] [--env E], slipway history show ID
#include <algorithm>
#include <charconv>
#include <iostream>
#include <map>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/plan.h"
#include "engine/run.h"

namespace slipway::cli {

namespace {

// A deploy's or a run's state, coloured: both name success "succeeded" and progress "running".
std::string state_cell(std::string_view name) {
  const Color c = name == "succeeded" ? Color::green
                  : name == "running" ? Color::cyan
                  : name == "paused"  ? Color::yellow
                                      : Color::red;
  return paint(std::string(name), c);
}

// A row of the history table, with when it started for the interleaving.
struct HistoryRow {
  TimeMs at = 0;
  std::vector<std::string> cells;
};

std::string shorten(const std::string& s, size_t max) {
  return s.size() <= max ? s : s.substr(0, max - 3) + "...";
}

HistoryRow run_row(const engine::Run& r, const json::object& o) {
  return HistoryRow{
      r.created_at,
      {fmt::format("r{}", r.id), "run", shorten(engine::command_line(r.argv), 40), "-",
       r.env + (r.selector.empty() ? "" : " (" + r.selector + ")"),
       state_cell(engine::run_state_name(r.state)), actor_cell(r.actor, r.claimed_user),
       format_time_short(r.created_at),
       r.finished_at ? format_duration(r.duration(r.finished_at)) : "-",
       fmt::format("{}/{} ok", o.at("ok_count").as_int64(), o.at("node_count").as_int64())}};
}

// A plan's row: its apps (those of its stages), and how many stages succeeded.
HistoryRow plan_row(const engine::DeployPlan& p) {
  std::vector<std::string> apps;
  std::vector<std::string> versions;
  int done = 0;
  for (const auto& s : p.stages) {
    if (std::find(apps.begin(), apps.end(), s.app) == apps.end()) apps.push_back(s.app);
    if (std::find(versions.begin(), versions.end(), s.version) == versions.end())
      versions.push_back(s.version);
    done += s.state == engine::StageState::succeeded ? 1 : 0;
  }
  auto joined = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& x : v)
      out += (out.empty() ? "" : ",") + x;
    return out;
  };
  return HistoryRow{
      p.created_at,
      {engine::plan_ref(p.id), "plan", shorten(joined(apps), 40), shorten(joined(versions), 24),
       p.env, state_cell(engine::plan_state_name(p.state)), p.actor,
       format_time_short(p.created_at),
       p.finished_at ? format_duration(p.duration(p.finished_at)) : "-",
       fmt::format("{}/{} stages", done, p.stages.size())}};
}

// "  config    version 3 (since deploy #7, version 1: added A, changed B (secret))": names only.
void print_config_line(const engine::Deploy& d, const json::value& body) {
  std::string line = fmt::format("version {}", d.config_version);
  const auto* diff = body.as_object().if_contains("config_changes");
  if (diff && diff->is_object()) {
    const auto& o = diff->as_object();
    std::vector<std::string> parts;
    if (const auto* ch = o.if_contains("changes"); ch && ch->is_array()) {
      for (const auto& c : ch->as_array()) {
        if (!c.is_object()) continue;
        const auto* key = c.as_object().if_contains("key");
        const auto* kind = c.as_object().if_contains("change");
        const auto* secret = c.as_object().if_contains("secret");
        if (!key || !key->is_string() || !kind || !kind->is_string()) continue;
        parts.push_back(
            fmt::format("{} {}{}", std::string(kind->as_string()), std::string(key->as_string()),
                        secret && secret->is_bool() && secret->as_bool() ? " (secret)" : ""));
      }
    }
    const auto* prev = o.if_contains("previous_deploy");
    const auto* from = o.if_contains("from_version");
    if (prev && prev->is_int64() && from && from->is_int64()) {
      line += fmt::format(" (since deploy #{}, version {}: {})", prev->as_int64(), from->as_int64(),
                          parts.empty() ? "no change" : join(parts, ", "));
    }
  }
  std::cout << fmt::format("  config    {}\n", line);
}

}  // namespace

int cmd_history(const ClientFlags& f, const std::string& app, const std::string& env, int limit) {
  std::string q = fmt::format("?limit={}", limit);
  if (!app.empty()) {
    if (auto st = validate_name(NameKind::app, app); !st) return fail(st.error());
    q += "&app=" + app;
  }
  if (!env.empty()) {
    if (auto st = validate_name(NameKind::env, env); !st) return fail(st.error());
    q += "&env=" + env;
  }
  if (limit < 1 || limit > 1000)
    return fail(err(Errc::invalid_argument, "--limit must be 1..1000"));
  auto c = make_client(f);
  auto r = c.get("/api/v1/deploys" + q);
  if (!r) return fail(r.error());
  // Runs have no app: they are part of the history when no app is asked for.
  json::value runs = json::array{};
  if (app.empty()) {
    auto rr =
        c.get(fmt::format("/api/v1/runs?limit={}{}", limit, env.empty() ? "" : "&env=" + env));
    if (!rr) return fail(rr.error());
    runs = rr->as_object().at("runs");
  }
  // Plans: those with a stage of the app, when one is asked for.
  auto pr = c.get(fmt::format("/api/v1/plans?limit={}{}", limit, env.empty() ? "" : "&env=" + env));
  if (!pr) return fail(pr.error());
  std::vector<engine::DeployPlan> plans;
  json::array plans_json;
  for (const auto& v : pr->as_object().at("plans").as_array()) {
    auto p = engine::plan_from_json(v);
    if (!p) continue;
    const bool has_app = app.empty() || std::any_of(p->stages.begin(), p->stages.end(),
                                                    [&](const auto& s) { return s.app == app; });
    if (!has_app) continue;
    plans.push_back(std::move(*p));
    plans_json.push_back(v);
  }
  if (f.json()) {
    if (app.empty()) r->as_object()["runs"] = runs;
    r->as_object()["plans"] = std::move(plans_json);
    print_json(*r);
    return kExitOk;
  }
  std::vector<HistoryRow> rows;
  for (const auto& v : r->as_object().at("deploys").as_array()) {
    auto d = engine::deploy_from_json(v);
    if (!d) continue;
    const auto& o = v.as_object();
    rows.push_back(HistoryRow{
        d->created_at,
        {fmt::format("#{}", d->id),
         std::string(engine::deploy_kind_name(d->kind)) +
             (d->forced_freeze.empty() ? "" : paint(" (forced)", Color::yellow)),
         d->app, d->version, d->env + (d->selector.empty() ? "" : " (" + d->selector + ")"),
         state_cell(engine::deploy_state_name(d->state)), actor_cell(d->actor, d->claimed_user),
         format_time_short(d->created_at),
         d->finished_at ? format_duration(d->duration(d->finished_at)) : "-",
         fmt::format("{}/{} healthy", o.at("healthy_count").as_int64(),
                     o.at("node_count").as_int64())}});
  }
  for (const auto& v : runs.as_array()) {
    if (auto run = engine::run_from_json(v)) rows.push_back(run_row(*run, v.as_object()));
  }
  for (const auto& p : plans)
    rows.push_back(plan_row(p));
  // Newest first, deploys, plans and runs interleaved; at most `limit` rows in all.
  std::stable_sort(rows.begin(), rows.end(),
                   [](const HistoryRow& a, const HistoryRow& b) { return a.at > b.at; });
  if (rows.size() > static_cast<size_t>(limit)) rows.resize(static_cast<size_t>(limit));
  Table t({"ID", "KIND", "APP", "VERSION", "ENV", "STATE", "BY", "STARTED", "DURATION", "NODES"});
  for (auto& row : rows)
    t.row(std::move(row.cells));
  if (t.empty()) {
    std::cout << (app.empty() ? "no deploys or runs yet\n" : "no deploys yet\n");
  } else {
    t.print(std::cout);
  }
  return kExitOk;
}

int cmd_history_show(const ClientFlags& f, const std::string& text) {
  // "12" or "#12" is a deploy, "r3" a run, "p2" a plan.
  if (!text.empty() && (text[0] == 'p' || text[0] == 'P')) {
    auto id = engine::parse_plan_ref(text);
    if (!id) return fail(id.error());
    return cmd_plan_show(f, *id);
  }
  const bool is_run = !text.empty() && (text[0] == 'r' || text[0] == 'R');
  const std::string digits = text.substr(!text.empty() && (is_run || text[0] == '#') ? 1 : 0);
  int64_t id = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (ec != std::errc() || end != digits.data() + digits.size() || id <= 0) {
    return fail(
        err(Errc::invalid_argument,
            fmt::format("'{}' is neither a deploy id (12), a run id (r3) nor a plan id (p2)",
                        text.substr(0, 32))));
  }
  if (is_run) return cmd_run_show(f, id);
  auto c = make_client(f);
  auto r = c.get(fmt::format("/api/v1/deploys/{}?steps=1", id));
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  auto d = engine::deploy_from_json(*r);
  if (!d) return fail(d.error());
  std::cout << paint(fmt::format("{} #{}", engine::deploy_kind_name(d->kind), d->id), Color::bold)
            << ": " << d->app << " " << d->version << " to " << d->env
            << (d->selector.empty() ? "" : " (" + d->selector + ")") << "\n";
  std::cout << fmt::format("  state     {}\n", state_cell(engine::deploy_state_name(d->state)));
  if (!d->reason.empty()) std::cout << fmt::format("  reason    {}\n", d->reason);
  std::cout << fmt::format("  by        {}\n", actor_cell(d->actor, d->claimed_user));
  if (!d->forced_freeze.empty()) {
    std::cout << fmt::format("  forced    {}\n",
                             paint("through " + d->forced_freeze + " (--force)", Color::yellow));
  }
  std::string how = d->strategy;
  if (d->strategy == "canary") {
    how += " " + d->canary;
    if (d->canary_gate == "promote") how += ", then wait for promote";
    if (d->canary_gate == "wait")
      how += ", then wait " + format_duration(Millis(d->canary_wait_ms));
  }
  if (d->strategy == "zones") how += " (" + d->zones + ")";
  if (d->strategy != "all") how += " in batches of " + d->batch.to_string();
  if (!d->max_unavailable.empty()) how += ", max unavailable " + d->max_unavailable;
  std::cout << fmt::format("  strategy  {}, max failures {}\n", how, d->max_failures);
  if (d->healthy_deadline_ms > 0 || d->progress_deadline_ms > 0) {
    std::cout << fmt::format("  deadlines healthy {}{}\n",
                             format_duration(Millis(d->healthy_deadline_ms)),
                             d->progress_deadline_ms > 0
                                 ? ", progress " + format_duration(Millis(d->progress_deadline_ms))
                                 : std::string());
  }
  if (!d->waiting.empty()) std::cout << fmt::format("  waiting   {}\n", d->waiting);
  print_config_line(*d, *r);
  std::cout << fmt::format("  started   {}\n", format_time_short(d->created_at));
  if (d->finished_at) {
    std::cout << fmt::format("  finished  {} (took {})\n", format_time_short(d->finished_at),
                             format_duration(d->duration(d->finished_at)));
  }
  if (!d->log.empty()) {
    std::cout << "\n";
    for (const auto& tr : d->log) {
      std::cout << fmt::format("  {}  {:<9} {:<10} {}\n", format_time_short(tr.at), tr.action,
                               tr.actor, tr.detail);
    }
  }
  std::cout << "\n";
  Table t({"NODE", "BATCH", "FROM", "STATUS", "DOWNLOADED", "TOOK", "REASON"});
  for (const auto& n : d->nodes) {
    const bool good =
        n.status == engine::NodeStatus::healthy || n.status == engine::NodeStatus::reverted;
    std::string reason = n.reason;
    if (!n.reverted_to.empty())
      reason += (reason.empty() ? "" : "; ") + std::string("went back to ") + n.reverted_to;
    t.row({n.node + (n.canary ? " (canary)" : ""), std::to_string(n.batch + 1),
           n.from_version.empty() ? "-" : n.from_version,
           paint(std::string(engine::node_status_name(n.status)), good ? Color::green : Color::red),
           n.downloaded ? "yes" : "no",
           n.finished_at && n.started_at ? format_duration(Millis(n.finished_at - n.started_at))
                                         : "-",
           reason.empty() ? "-" : reason});
  }
  t.print(std::cout);

  // Steps, per node, in order.
  std::map<std::string, std::vector<engine::StepRecord>> steps;
  std::vector<std::string> order;
  if (const auto* arr = r->as_object().if_contains("steps")) {
    for (const auto& v : arr->as_array()) {
      auto s = engine::step_from_json(v);
      if (!s) continue;
      if (!steps.contains(s->node)) order.push_back(s->node);
      steps[s->node].push_back(std::move(*s));
    }
  }
  for (const auto& node : order) {
    std::cout << "\n" << paint(node, Color::bold) << "\n";
    for (const auto& s : steps[node]) {
      if (s.status == "started") continue;
      const Color c = s.status == "ok"       ? Color::green
                      : s.status == "failed" ? Color::red
                                             : Color::dim;
      std::cout << fmt::format("  {}  {:<20} {:<8} {:>8}\n",
                               format_time(s.started_at).substr(11, 12), s.step, paint(s.status, c),
                               format_duration(Millis(s.duration_ms)));
      if (!s.output.empty()) std::cout << paint(indent_lines(s.output, 6, 20), Color::dim);
    }
  }
  return kExitOk;
}

}  // namespace slipway::cli
