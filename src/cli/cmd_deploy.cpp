// slipway deploy, rollback, watch, abort — and the progress display they share.
#include <iostream>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/strategy.h"

namespace slipway::cli {

namespace {

int64_t num(const json::value& v, const char* key) {
  if (!v.is_object()) return 0;
  const auto* x = v.as_object().if_contains(key);
  return x && x->is_int64() ? x->get_int64() : 0;
}

// Prints events as lines; on a terminal keeps a progress bar on the last line.
class Progress {
 public:
  static constexpr int64_t kMaxNodesWithSteps = 20;

  Progress(std::ostream& out, bool live) : out_(out), live_(live && stdout_is_tty()) {}

  void event(const engine::DeployEvent& e, const json::value& d) {
    clear_bar();
    if (num(d, "node_count") > 0) last_ = d;
    const std::string time = format_time(e.at).substr(11, 8);
    auto line = [&](const std::string& s) { out_ << paint(time, Color::dim) << "  " << s << "\n"; };
    if (e.kind == "deploy.started") {
      line(paint(fmt::format("deploy #{}", e.deploy), Color::bold) + ": " + e.message);
    } else if (e.kind == "batch.started") {
      line(paint(e.message, Color::cyan));
    } else if (e.kind == "node.step") {
      // Every finished step of every node on small deploys; on large ones only failures, so a
      // thousand-node rollout stays readable (the history keeps every step).
      const bool show = e.status == "failed" || num(last_, "node_count") <= kMaxNodesWithSteps;
      if (e.status != "started" && show) {
        const Color c = e.status == "ok"       ? Color::none
                        : e.status == "failed" ? Color::red
                                               : Color::dim;
        std::string s = fmt::format("  {:<12} {:<20} {}", e.node, e.step,
                                    paint(e.status, c == Color::none ? Color::green : c));
        if (e.duration_ms > 0) s += paint(" " + format_duration(Millis(e.duration_ms)), Color::dim);
        if (e.status == "skipped" && !e.message.empty())
          s += paint("  " + first_line(e.message), Color::dim);
        line(s);
        if (e.status == "failed" && !e.message.empty()) out_ << indent_lines(e.message, 16, 8);
      }
    } else if (e.kind == "node.finished") {
      const bool good = e.status == "healthy" || e.status == "reverted";
      std::string s = fmt::format(
          "{} {} {}", good ? paint("✓", Color::green) : paint("✗", Color::red), e.node, e.status);
      if (e.duration_ms > 0)
        s += paint(" (" + format_duration(Millis(e.duration_ms)) + ")", Color::dim);
      if (!e.message.empty()) s += ": " + e.message;
      line(s);
    } else if (e.kind == "revert.started" || e.kind == "deploy.aborting") {
      line(paint(e.message, Color::yellow));
    } else if (e.kind == "deploy.paused" || e.kind == "deploy.waiting") {
      line(paint("⏸ " + e.message, Color::yellow));
    } else if (e.kind == "deploy.resumed" || e.kind == "deploy.promoted") {
      line(paint("▶ " + e.message, Color::cyan));
    }
    draw_bar();
  }

  void done() { clear_bar(); }

 private:
  static std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

  void clear_bar() {
    if (live_ && bar_shown_) {
      out_ << "\r\033[K";
      bar_shown_ = false;
    }
  }

  void draw_bar() {
    if (!live_) return;
    const int64_t total = num(last_, "node_count");
    const int64_t healthy = num(last_, "healthy_count");
    const int64_t failed = num(last_, "failed_count");
    if (total <= 0) return;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(healthy * kWidth / total);
    const int bad = std::min<int>(kWidth - filled,
                                  static_cast<int>(failed * kWidth / total + (failed ? 1 : 0)));
    std::string bar;
    for (int i = 0; i < filled; ++i)
      bar += "█";
    std::string badbar;
    for (int i = 0; i < bad; ++i)
      badbar += "█";
    std::string rest;
    for (int i = filled + bad; i < kWidth; ++i)
      rest += "░";
    out_ << fmt::format("[{}{}{}] {}/{} healthy", paint(bar, Color::green),
                        paint(badbar, Color::red), rest, healthy, total);
    if (failed) out_ << paint(fmt::format(", {} failed", failed), Color::red);
    out_ << fmt::format("  batch {}/{}  {}", num(last_, "current_batch") + 1, num(last_, "batches"),
                        format_duration(Millis(num(last_, "duration_ms"))));
    out_.flush();
    bar_shown_ = true;
  }

  std::ostream& out_;
  bool live_;
  bool bar_shown_ = false;
  json::value last_;
};

int summarize(const engine::Deploy& d, std::ostream& out) {
  const std::string what = d.kind == engine::DeployKind::rollback ? "rollback" : "deploy";
  const int total = static_cast<int>(d.nodes.size());
  const int healthy = d.count(engine::NodeStatus::healthy);
  const std::string took = format_duration(d.duration(d.finished_at));
  switch (d.state) {
    case engine::DeployState::succeeded:
      out << paint("✓", Color::green) << " "
          << fmt::format("{} #{} succeeded: {}/{} node(s) healthy on {} {} in {}\n", what, d.id,
                         healthy, total, d.app, d.version, took);
      return kExitOk;
    case engine::DeployState::rolled_back:
      out << paint("✗", Color::red) << " "
          << fmt::format("{} #{} of {} {} FAILED and was rolled back ({}): {}\n", what, d.id, d.app,
                         d.version, took, d.reason);
      break;
    case engine::DeployState::failed:
      out << paint("✗", Color::red) << " "
          << fmt::format("{} #{} of {} {} FAILED{} ({}): {}\n", what, d.id, d.app, d.version,
                         d.phase == engine::Phase::revert ? "" : " and was NOT rolled back", took,
                         d.reason);
      break;
    case engine::DeployState::running:
    case engine::DeployState::paused:
      out << fmt::format("{} #{} is still {}\n", what, d.id, engine::deploy_state_name(d.state));
      break;
  }
  for (const auto& n : d.nodes) {
    if (n.status == engine::NodeStatus::failed || n.status == engine::NodeStatus::revert_failed) {
      out << fmt::format(
          "  {} {}: {}{}\n", n.node, engine::node_status_name(n.status), n.reason,
          n.reverted_to.empty() ? "" : " (went back to " + n.reverted_to + " by itself)");
    }
  }
  out << fmt::format("  details: slipway history show {}\n", d.id);
  return kExitFailed;
}

}  // namespace

int follow_deploy(client::ApiClient& c, const json::value& created, std::ostream& out, bool live) {
  const int64_t id = num(created, "id");
  Progress p(out, live);
  std::mutex mu;
  auto final = c.watch(id, [&](const engine::DeployEvent& e, const json::value& d) {
    std::lock_guard lock(mu);
    p.event(e, d);
  });
  p.done();
  if (!final) {
    out.flush();
    return fail(final.error());
  }
  return summarize(*final, out);
}

namespace {

int start_and_follow(const ClientFlags& f, const std::string& path, const json::object& body,
                     bool detach) {
  auto c = make_client(f);
  auto r = c.post(path, body);
  if (!r) return fail(r.error());
  warn_left_out(*r, "deploy");
  if (const auto* forced = r->as_object().if_contains("forced_freeze");
      forced && forced->is_string() && !forced->get_string().empty()) {
    std::cerr << paint("warning:", Color::yellow) << " forced through "
              << std::string_view(forced->get_string()) << " (recorded with the deploy)\n";
  }
  if (detach) {
    if (f.json()) {
      print_json(*r);
    } else {
      std::cout << fmt::format("deploy #{} started; follow it with: slipway watch {}\n",
                               num(*r, "id"), num(*r, "id"));
    }
    return kExitOk;
  }
  if (f.json()) {
    auto final = c.watch(num(*r, "id"), nullptr);
    if (!final) return fail(final.error());
    print_json(engine::to_json(*final, true));
    return final->state == engine::DeployState::succeeded ? kExitOk : kExitFailed;
  }
  return follow_deploy(c, *r, std::cout, true);
}

// --dry-run: what the server says the deploy or rollback would do (POST PATH/preview).
int preview(const ClientFlags& f, const std::string& path, const json::object& body) {
  auto c = make_client(f);
  auto r = c.post(path + "/preview", body);
  if (!r) return fail(r.error());
  const auto& o = r->as_object();
  const auto* blocked = o.if_contains("blocked");
  const bool refused = blocked && blocked->is_string();
  if (f.json()) {
    print_json(*r);
    return refused ? exit_code(Errc::failed_precondition) : kExitOk;
  }
  const auto text = [&o](std::string_view key) -> std::string {
    const auto* v = o.if_contains(key);
    return v && v->is_string() ? std::string(v->get_string()) : "";
  };
  const bool rollback = text("kind") == "rollback";
  std::cout << fmt::format(
      "{} {} {} in {}: {} node(s){}\n", rollback ? "would roll back" : "would deploy", text("app"),
      text("version").empty() ? "" : (rollback ? "to " : "") + text("version"), text("env"),
      num(*r, "count"), text("how").empty() ? "" : ", " + text("how"));
  std::map<int64_t, std::vector<std::string>> batches;
  if (const auto* nodes = o.if_contains("nodes"); nodes && nodes->is_array()) {
    for (const auto& n : nodes->get_array()) {
      const auto& no = n.as_object();
      const std::string from(no.at("from_version").as_string());
      batches[no.at("batch").to_number<int64_t>()].push_back(fmt::format(
          "{}{} ({})", std::string_view(no.at("name").as_string()),
          no.at("canary").as_bool() ? " [canary]" : "", from.empty() ? "new" : "from " + from));
    }
  }
  for (const auto& [batch, names] : batches)
    std::cout << fmt::format("  batch {}: {}\n", batch + 1, join(names, ", "));
  warn_left_out(*r, "deploy");
  if (refused) {
    return fail(
        err(Errc::failed_precondition,
            fmt::format("it would be refused: {}", std::string_view(blocked->get_string()))));
  }
  std::cout << "nothing was started (--dry-run)\n";
  return kExitOk;
}

}  // namespace

// Adds the strategy fields to a request body, checking what can be checked here.
Status add_strategy(const StrategyArgs& h, json::object& body) {
  std::string strategy = h.strategy;
  const bool canary_flags = !h.canary.empty() || h.pause || !h.canary_wait.empty();
  if (strategy.empty() && canary_flags) strategy = "canary";
  if (strategy.empty() && !h.zones.empty()) strategy = "zones";
  if (!strategy.empty()) body["strategy"] = strategy;
  if (!h.canary.empty()) {
    if (auto c = engine::CanarySpec::parse(h.canary); !c) return c.error();
    body["canary"] = h.canary;
  }
  if (h.pause) body["pause"] = true;
  if (h.pause && !h.canary_wait.empty())
    return err(Errc::invalid_argument, "give either --pause or --canary-wait, not both");
  json::array zones;
  for (const auto& z : h.zones) {
    if (auto st = validate_name(NameKind::zone, z); !st) return st;
    zones.emplace_back(z);
  }
  if (!zones.empty()) body["zones"] = std::move(zones);
  if (!h.max_unavailable.empty()) {
    if (auto b = engine::BatchSize::parse(h.max_unavailable); !b) {
      return err(Errc::invalid_argument, fmt::format("--max-unavailable '{}' is not valid: give N "
                                                     "nodes or N%",
                                                     h.max_unavailable.substr(0, 32)));
    }
    body["max_unavailable"] = h.max_unavailable;
  }
  for (auto [flag, key, value] :
       {std::tuple{"--canary-wait", "canary_wait", &h.canary_wait},
        {"--healthy-deadline", "healthy_deadline", &h.healthy_deadline},
        {"--progress-deadline", "progress_deadline", &h.progress_deadline}}) {
    if (value->empty()) continue;
    if (auto d = parse_duration(*value); !d) {
      return err(Errc::invalid_argument, fmt::format("{}: {}", flag, d.error().message));
    }
    body[key] = *value;
  }
  return {};
}

int cmd_deploy(const ClientFlags& f, const DeployArgs& a) {
  json::object body{{"app", a.app}, {"env", a.env}, {"max_failures", a.max_failures}};
  if (auto st = add_strategy(a.how, body); !st) return fail(st.error());
  if (!a.version.empty()) body["version"] = a.version;
  if (auto st = add_targeting(body, a.role, a.zone, a.selector, a.batch); !st)
    return fail(st.error());
  if (a.force) body["force"] = true;
  if (a.max_failures < 0)
    return fail(err(Errc::invalid_argument, "--max-failures must be 0 or more"));
  if (auto st = validate_name(NameKind::app, a.app); !st) return fail(st.error());
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  if (a.dry_run) return preview(f, "/api/v1/deploys", body);
  return start_and_follow(f, "/api/v1/deploys", body, a.detach);
}

int cmd_rollback(const ClientFlags& f, const RollbackArgs& a) {
  json::object body{{"app", a.app}, {"env", a.env}, {"max_failures", a.max_failures}};
  if (auto st = add_strategy(a.how, body); !st) return fail(st.error());
  if (!a.to.empty()) body["to"] = a.to;
  if (auto st = add_targeting(body, a.role, a.zone, "", a.batch); !st) return fail(st.error());
  if (auto st = validate_name(NameKind::app, a.app); !st) return fail(st.error());
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  if (a.dry_run) return preview(f, "/api/v1/rollbacks", body);
  return start_and_follow(f, "/api/v1/rollbacks", body, a.detach);
}

int cmd_watch(const ClientFlags& f, const std::string& text) {
  auto ref = parse_deploy_or_plan(text);
  if (!ref) return fail(ref.error());
  if (ref->plan) return cmd_plan_watch(f, ref->id);
  auto c = make_client(f);
  auto r = c.get(fmt::format("/api/v1/deploys/{}", ref->id));
  if (!r) return fail(r.error());
  return follow_deploy(c, *r, std::cout, true);
}

int cmd_control(const ClientFlags& f, const std::string& verb, const std::string& text) {
  auto ref = parse_deploy_or_plan(text);
  if (!ref) return fail(ref.error());
  if (ref->plan) return cmd_plan_control(f, verb, ref->id);
  const int64_t id = ref->id;
  auto c = make_client(f);
  auto r = c.post(fmt::format("/api/v1/deploys/{}/{}", id, verb), json::object{});
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  const auto* w = r->as_object().if_contains("waiting");
  const std::string waiting = w && w->is_string() ? std::string(w->get_string()) : "";
  if (verb == "pause") {
    std::cout << fmt::format(
        "deploy #{} is paused: the nodes in flight finish, no new node "
        "starts; go on with: slipway resume {}\n",
        id, id);
  } else {
    std::cout << fmt::format("deploy #{} {}{}\n", id, verb == "resume" ? "resumed" : "promoted",
                             waiting.empty() ? "" : " (" + waiting + ")");
  }
  return kExitOk;
}

int cmd_abort(const ClientFlags& f, const std::string& text, bool rollback) {
  auto ref = parse_deploy_or_plan(text);
  if (!ref) return fail(ref.error());
  if (ref->plan) {
    if (!rollback) {
      return fail(err(Errc::invalid_argument,
                      "--no-rollback does not apply to a plan: aborting a plan rolls back its "
                      "running stage and the stages done"));
    }
    return cmd_plan_control(f, "abort", ref->id);
  }
  const int64_t id = ref->id;
  auto c = make_client(f);
  auto r =
      c.post(fmt::format("/api/v1/deploys/{}/abort", id), json::object{{"rollback", rollback}});
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
  } else {
    std::cout << fmt::format("deploy #{} is stopping{}\n", id,
                             rollback ? "; what it changed will be rolled back" : " (no rollback)");
  }
  return kExitOk;
}

}  // namespace slipway::cli
