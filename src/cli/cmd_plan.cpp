// slipway deploy -f deploy.yaml (a plan of stages), and following and showing plans.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/plan_file.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/plan.h"

namespace slipway::cli {

namespace {

constexpr auto kPollEvery = std::chrono::milliseconds(500);
constexpr auto kGiveUpAfter = std::chrono::seconds(60);  // server unreachable this long

std::string stage_target(const engine::PlanStage& s) {
  return fmt::format("{} {}{}", s.app, s.version,
                     s.selector.empty() ? "" : " (" + s.selector + ")");
}

Color state_color(std::string_view state) {
  return state == "succeeded" || state == "rolled_back"                   ? Color::green
         : state == "running" || state == "rolling_back"                  ? Color::cyan
         : state == "pending" || state == "skipped" || state == "waiting" ? Color::dim
                                                                          : Color::red;
}

const engine::PlanStage* stage_of_rollback(const engine::DeployPlan& p, engine::DeployId id) {
  for (const auto& s : p.stages) {
    if (std::find(s.rollbacks.begin(), s.rollbacks.end(), id) != s.rollbacks.end()) return &s;
  }
  return nullptr;
}

// What the plan waits for, as the person following it should read it.
std::string waiting_line(const engine::DeployPlan& p) {
  const auto next = static_cast<size_t>(p.current) + 1;
  const std::string next_name = next < p.stages.size() ? p.stages[next].name : "";
  const std::string ref = engine::plan_ref(p.id);
  if (p.gate == "approve") {
    return fmt::format("waiting for approval: slipway promote {} (stage {} is next)", ref,
                       next_name);
  }
  const auto& s = p.stages[static_cast<size_t>(p.current)];
  return fmt::format("waiting {} before stage {} (until {} UTC; slipway promote {} goes on now)",
                     format_duration(Millis(s.wait_ms)), next_name,
                     format_time_short(p.resume_at).substr(11), ref);
}

Result<engine::DeployPlan> get_plan(client::ApiClient& c, engine::PlanId id) {
  auto r = c.get(fmt::format("/api/v1/plans/{}", id));
  if (!r) return r.error();
  return engine::plan_from_json(*r);
}

// The plan a server's answer holds. With -o json the answer is printed as it is instead, and so is
// an error: then nullopt, and `exit` says how the command ends.
std::optional<engine::DeployPlan> plan_answer(const ClientFlags& f, const Result<json::value>& r,
                                              int& exit) {
  exit = kExitOk;
  if (!r) {
    exit = fail(r.error());
    return std::nullopt;
  }
  if (f.json()) {
    print_json(*r);
    return std::nullopt;
  }
  auto p = engine::plan_from_json(*r);
  if (!p) {
    exit = fail(p.error());
    return std::nullopt;
  }
  return std::move(*p);
}

int summarize(const engine::DeployPlan& p, std::ostream& out) {
  const std::string ref = engine::plan_ref(p.id);
  const std::string took = format_duration(p.duration(p.finished_at));
  if (p.state == engine::PlanState::succeeded) {
    out << paint("✓", Color::green) << " "
        << fmt::format("plan {} succeeded: {} stage(s) in {}\n", ref, p.stages.size(), took);
    return kExitOk;
  }
  out << paint("✗", Color::red) << " "
      << fmt::format("plan {} FAILED{} ({}): {}\n", ref,
                     p.state == engine::PlanState::rolled_back ? " and was rolled back" : "", took,
                     p.reason);
  for (const auto& s : p.stages) {
    std::string line = fmt::format("  stage {:<12} {}", s.name,
                                   paint(std::string(engine::stage_state_name(s.state)),
                                         state_color(engine::stage_state_name(s.state))));
    if (!s.reason.empty()) line += ": " + s.reason;
    out << line << "\n";
  }
  out << fmt::format("  details: slipway history show {}\n", ref);
  return kExitFailed;
}

// Follows a plan until it ends: each stage's deploy and each rollback as `slipway deploy` shows a
// deploy (when `out`), and what it waits for. Returns the plan as it ended.
Result<engine::DeployPlan> follow_plan(client::ApiClient& c, engine::PlanId id, std::ostream* out) {
  std::set<engine::DeployId> followed;
  std::string said_waiting;
  size_t said_log = 0;  // entries of the plan's log gone through
  auto last_ok = std::chrono::steady_clock::now();
  for (;;) {
    auto p = get_plan(c, id);
    if (!p) {
      if (p.error().code != Errc::unavailable ||
          std::chrono::steady_clock::now() - last_ok > kGiveUpAfter) {
        return p.error();
      }
      std::this_thread::sleep_for(kPollEvery);
      continue;
    }
    last_ok = std::chrono::steady_clock::now();
    if (out) {
      // Who let it go on, or stopped it.
      for (; said_log < p->log.size(); ++said_log) {
        const auto& t = p->log[said_log];
        if (t.action == "approved" || t.action == "promoted" || t.action == "aborted") {
          *out << paint(fmt::format("{} {} by {}: {}", t.action == "aborted" ? "■" : "▶", t.action,
                                    t.actor, t.detail),
                        t.action == "aborted" ? Color::yellow : Color::cyan)
               << "\n";
        }
      }
      // The next deploy not followed yet: a stage's, or a rollback's.
      engine::DeployId next = 0;
      std::string title;
      for (size_t i = 0; i < p->stages.size() && !next; ++i) {
        const auto& s = p->stages[i];
        if (s.deploy && !followed.contains(s.deploy)) {
          next = s.deploy;
          title = fmt::format("==> stage {}/{} {}: deploy #{} of {}", i + 1, p->stages.size(),
                              s.name, s.deploy, stage_target(s));
        }
      }
      for (const auto rb : p->rollbacks) {
        if (next || followed.contains(rb)) continue;
        next = rb;
        const auto* s = stage_of_rollback(*p, rb);
        title = fmt::format("==> rolling back stage {}: rollback #{}", s ? s->name : "?", rb);
      }
      if (next) {
        followed.insert(next);
        *out << paint(title, Color::bold) << "\n";
        out->flush();
        (void)follow_deploy(c, json::object{{"id", next}}, *out, true);
        continue;  // what happened meanwhile
      }
      if (p->state == engine::PlanState::waiting) {
        const std::string w = waiting_line(*p);
        if (w != said_waiting) {
          *out << paint("⏸ " + w, Color::yellow) << "\n";
          out->flush();
          said_waiting = w;
        }
      } else {
        said_waiting.clear();
      }
    }
    if (engine::is_terminal(p->state)) return p;
    std::this_thread::sleep_for(kPollEvery);
  }
}

}  // namespace

Result<DeployOrPlan> parse_deploy_or_plan(const std::string& text) {
  if (!text.empty() && (text[0] == 'p' || text[0] == 'P')) {
    auto id = engine::parse_plan_ref(text);
    if (!id) return id.error();
    return DeployOrPlan{true, *id};
  }
  const std::string digits = text.substr(!text.empty() && text[0] == '#' ? 1 : 0);
  int64_t id = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), id);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() || id <= 0) {
    return err(
        Errc::invalid_argument,
        fmt::format("'{}' is neither a deploy id (12) nor a plan id (p3)", excerpt(text, 32)));
  }
  return DeployOrPlan{false, id};
}

int cmd_deploy_plan(const ClientFlags& f, const PlanArgs& a) {
  auto body = load_plan_file(a.file);
  if (!body) return fail(body.error());
  if (!a.env.empty()) {
    if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
    if (const auto* env = body->if_contains("env"); env && env->as_string() != a.env) {
      return fail(err(Errc::invalid_argument,
                      fmt::format("{} names env {}, and --env says {}: give one", a.file.string(),
                                  std::string_view(env->as_string()), a.env)));
    }
    (*body)["env"] = a.env;
  }
  if (!body->contains("env")) {
    return fail(err(Errc::invalid_argument,
                    fmt::format("{} names no env: add env: to it or give --env", a.file.string())));
  }
  if (a.force) (*body)["force"] = true;
  auto c = make_client(f);
  auto r = c.post("/api/v1/plans", *body);
  if (!r) return fail(r.error());
  auto p = engine::plan_from_json(*r);
  if (!p) return fail(p.error());
  const std::string ref = engine::plan_ref(p->id);
  if (a.detach) {
    if (f.json()) {
      print_json(*r);
    } else {
      std::cout << fmt::format("plan {} started; follow it with: slipway watch {}\n", ref, ref);
    }
    return kExitOk;
  }
  if (!f.json()) {
    std::cout << paint(fmt::format("plan {}", ref), Color::bold)
              << fmt::format(": {} stage(s) to {}\n", p->stages.size(), p->env);
    for (size_t i = 0; i < p->stages.size(); ++i) {
      const auto& s = p->stages[i];
      std::string after;
      if (s.approve) after = ", then wait for approval";
      if (s.wait_ms > 0) after = ", then wait " + format_duration(Millis(s.wait_ms));
      std::cout << fmt::format("  {}. {:<12} {}{}\n", i + 1, s.name, stage_target(s), after);
    }
  }
  auto final = follow_plan(c, p->id, f.json() ? nullptr : &std::cout);
  if (!final) return fail(final.error());
  if (f.json()) {
    print_json(engine::to_json(*final));
    return final->state == engine::PlanState::succeeded ? kExitOk : kExitFailed;
  }
  return summarize(*final, std::cout);
}

int cmd_plan_watch(const ClientFlags& f, engine::PlanId id) {
  auto c = make_client(f);
  auto final = follow_plan(c, id, &std::cout);
  if (!final) return fail(final.error());
  return summarize(*final, std::cout);
}

int cmd_plan_control(const ClientFlags& f, const std::string& verb, engine::PlanId id) {
  auto c = make_client(f);
  const std::string ref = engine::plan_ref(id);
  if (verb == "pause" || verb == "resume") {
    // A plan is paused through its running stage's deploy.
    auto p = get_plan(c, id);
    if (!p) return fail(p.error());
    const auto& s = p->stages[static_cast<size_t>(p->current)];
    if (p->state != engine::PlanState::running || !s.deploy) {
      return fail(err(Errc::failed_precondition,
                      fmt::format("plan {} has no stage deploy running to {} (it is {}{})", ref,
                                  verb, engine::plan_state_name(p->state),
                                  p->waiting.empty() ? "" : ": " + p->waiting)));
    }
    return cmd_control(f, verb, std::to_string(s.deploy));
  }
  auto r = c.post(fmt::format("/api/v1/plans/{}/{}", id, verb), json::object{});
  int exit = kExitOk;
  auto p = plan_answer(f, r, exit);
  if (!p) return exit;
  if (verb == "abort") {
    std::cout << fmt::format(
        "plan {} is stopping: its running stage is aborted, then the stages done are rolled "
        "back, the last one first\n",
        ref);
  } else {
    std::cout << fmt::format("plan {} goes on: stage {} ({})\n", ref,
                             p->stages[static_cast<size_t>(p->current)].name,
                             engine::plan_state_name(p->state));
  }
  return kExitOk;
}

int cmd_plan_show(const ClientFlags& f, engine::PlanId id) {
  auto c = make_client(f);
  auto r = c.get(fmt::format("/api/v1/plans/{}", id));
  int exit = kExitOk;
  auto p = plan_answer(f, r, exit);
  if (!p) return exit;
  const std::string state(engine::plan_state_name(p->state));
  std::cout << paint("plan " + engine::plan_ref(p->id), Color::bold)
            << fmt::format(": {} stage(s) to {}\n", p->stages.size(), p->env);
  std::cout << fmt::format("  state     {}\n", paint(state, state_color(state)));
  if (!p->reason.empty()) std::cout << fmt::format("  reason    {}\n", p->reason);
  if (!p->waiting.empty()) std::cout << fmt::format("  waiting   {}\n", waiting_line(*p));
  std::cout << fmt::format("  by        {}\n", p->actor);
  if (!p->aborted_by.empty()) std::cout << fmt::format("  aborted   by {}\n", p->aborted_by);
  std::cout << fmt::format("  started   {}\n", format_time_short(p->created_at));
  if (p->finished_at) {
    std::cout << fmt::format("  finished  {} (took {})\n", format_time_short(p->finished_at),
                             format_duration(p->duration(p->finished_at)));
  }
  std::cout << "\n";
  Table t(
      {"#", "STAGE", "APP", "VERSION", "NODES", "THEN", "STATE", "DEPLOY", "ROLLBACKS", "REASON"});
  for (size_t i = 0; i < p->stages.size(); ++i) {
    const auto& s = p->stages[i];
    const std::string st(engine::stage_state_name(s.state));
    std::string rollbacks;
    for (const auto rb : s.rollbacks)
      rollbacks += (rollbacks.empty() ? "#" : ", #") + std::to_string(rb);
    t.row({std::to_string(i + 1), s.name, s.app, s.version,
           s.selector.empty() ? "(all)" : s.selector,
           s.approve       ? "approve"
           : s.wait_ms > 0 ? "wait " + format_duration(Millis(s.wait_ms))
                           : "-",
           paint(st, state_color(st)), s.deploy ? "#" + std::to_string(s.deploy) : "-",
           rollbacks.empty() ? "-" : rollbacks, s.reason.empty() ? "-" : s.reason});
  }
  t.print(std::cout);
  if (!p->log.empty()) {
    std::cout << "\n";
    for (const auto& tr : p->log) {
      std::cout << fmt::format("  {}  {:<11} {:<10} {}\n", format_time_short(tr.at), tr.action,
                               tr.actor, tr.detail);
    }
  }
  std::cout << "\n  each stage's deploy in detail: slipway history show ID\n";
  return kExitOk;
}

}  // namespace slipway::cli
