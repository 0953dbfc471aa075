// slipway run --env E [--role R] [--zone Z] [--selector S] [--batch N] [--timeout D] -- CMD ARGS...
// and the display of one run (also for `slipway history show rN`).
#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/run.h"
#include "protocol/agent_protocol.h"

namespace slipway::cli {

namespace {

constexpr Millis kPollEvery{250};
constexpr Millis kGiveUpAfter{30'000};  // of the server not answering while we follow

// "exit 0, 0.2s", "timed out, 2.0s", "not connected".
std::string outcome_with_time(const engine::RunNode& n) {
  const bool answered = n.exit_code >= 0 || n.signal != 0 || n.timed_out;
  std::string s = engine::run_node_outcome(n);
  if (answered) s += ", " + format_duration(Millis(n.duration_ms));
  return s;
}

// "==> node-1 (exit 0, 0.2s)" and the node's output.
void print_node(const engine::RunNode& n, std::ostream& out) {
  const bool ok = n.status == engine::RunNodeStatus::ok;
  out << paint("==> " + n.node, Color::bold) << " "
      << paint("(" + outcome_with_time(n) + ")", ok ? Color::green : Color::red) << "\n";
  if (!n.output.empty()) {
    out << n.output;
    if (n.output.back() != '\n') out << "\n";
  }
  out.flush();
}

std::string run_label(int64_t id) {
  return fmt::format("r{}", id);
}

// The summary after the last node; the exit code of the command.
int summarize(const engine::Run& r, std::ostream& out) {
  const int total = static_cast<int>(r.nodes.size());
  const int ok = r.count(engine::RunNodeStatus::ok);
  const std::string took = format_duration(r.duration(r.finished_at));
  if (r.state == engine::RunState::succeeded) {
    out << paint("✓", Color::green) << " "
        << fmt::format("run {}: {}/{} node(s) ok in {}\n", run_label(r.id), ok, total, took);
    return kExitOk;
  }
  std::vector<std::string> failed;
  for (const auto& n : r.nodes) {
    if (n.status == engine::RunNodeStatus::failed)
      failed.push_back(fmt::format("{} ({})", n.node, engine::run_node_outcome(n)));
  }
  out << paint("✗", Color::red) << " "
      << fmt::format("run {}: {} of {} node(s) failed in {}: {}\n", run_label(r.id), failed.size(),
                     total, took, join(failed, ", "));
  out << fmt::format("  details: slipway history show {}\n", run_label(r.id));
  return kExitFailed;
}

// Follows a run the server just created until it ends, printing each node as it finishes (when
// `out` is given). Returns the run as it ended: with every node's output when `full`, else with
// the nodes' outcomes only (what the summary needs; the output was printed and let go, so that a
// large run is not held in memory or fetched twice).
Result<engine::Run> follow_run(client::ApiClient& c, const json::value& created, std::ostream* out,
                               bool full) {
  auto first = engine::run_from_json(created);
  if (!first) return first.error();
  const int64_t id = first->id;
  engine::Run run = first->header();
  std::vector<engine::RunNode> nodes = first->nodes;  // every target, in the server's order
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < nodes.size(); ++i)
    index[nodes[i].node] = i;
  int64_t seen = 0;
  auto show = [&](const engine::Run& r) {
    std::vector<const engine::RunNode*> done;
    for (const auto& n : r.nodes) {
      if (n.seq > seen) done.push_back(&n);
    }
    std::sort(done.begin(), done.end(),
              [](const auto* a, const auto* b) { return a->seq < b->seq; });
    for (const auto* n : done) {
      if (out) print_node(*n, *out);
      seen = std::max(seen, n->seq);
      if (auto it = index.find(n->node); it != index.end()) {
        nodes[it->second] = *n;
        nodes[it->second].output.clear();
      }
    }
  };
  show(*first);
  auto last_ok = std::chrono::steady_clock::now();
  while (run.state == engine::RunState::running) {
    std::this_thread::sleep_for(kPollEvery);
    auto r = c.get(fmt::format("/api/v1/runs/{}?since={}", id, seen));
    if (!r) {
      if (r.error().code != Errc::unavailable ||
          std::chrono::steady_clock::now() - last_ok > kGiveUpAfter) {
        return r.error();
      }
      continue;
    }
    last_ok = std::chrono::steady_clock::now();
    auto polled = engine::run_from_json(*r);
    if (!polled) return polled.error();
    show(*polled);
    run = polled->header();
  }
  if (!full) {
    run.nodes = std::move(nodes);
    return run;
  }
  auto r = c.get(fmt::format("/api/v1/runs/{}", id));
  if (!r) return r.error();
  return engine::run_from_json(*r);
}

}  // namespace

int cmd_run(const ClientFlags& f, const RunArgs& a) {
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  if (auto st = protocol::validate_exec_argv(a.argv); !st) return fail(st.error());
  json::array argv;
  for (const auto& s : a.argv)
    argv.emplace_back(s);
  json::object body{{"env", a.env}, {"argv", std::move(argv)}};
  if (auto st = add_targeting(body, a.role, a.zone, a.selector, a.batch); !st)
    return fail(st.error());
  if (!a.timeout.empty()) {
    if (auto d = parse_duration(a.timeout); !d)
      return fail(err(Errc::invalid_argument, "--timeout: " + d.error().message));
    body["timeout"] = a.timeout;
  }
  auto c = make_client(f);
  auto r = c.post("/api/v1/runs", body);
  if (!r) return fail(r.error());
  warn_left_out(*r, "run");
  if (!f.json()) {
    const auto* nodes = r->as_object().if_contains("nodes");
    std::cout << paint(fmt::format("run {}", run_label(r->as_object().at("id").as_int64())),
                       Color::bold)
              << fmt::format(": {} on {} node(s) of {}\n", engine::command_line(a.argv),
                             nodes && nodes->is_array() ? nodes->as_array().size() : 0, a.env);
  }
  auto run = follow_run(c, *r, f.json() ? nullptr : &std::cout, f.json());
  if (!run) return fail(run.error());
  if (f.json()) {
    print_json(engine::to_json(*run, true));
    return run->state == engine::RunState::succeeded ? kExitOk : kExitFailed;
  }
  return summarize(*run, std::cout);
}

int cmd_run_show(const ClientFlags& f, int64_t id) {
  auto c = make_client(f);
  auto r = c.get(fmt::format("/api/v1/runs/{}", id));
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  auto run = engine::run_from_json(*r);
  if (!run) return fail(run.error());
  std::cout << paint("run " + run_label(run->id), Color::bold) << ": "
            << engine::command_line(run->argv) << " on " << run->env
            << (run->selector.empty() ? "" : " (" + run->selector + ")") << "\n";
  std::cout << fmt::format("  state     {}\n", engine::run_state_name(run->state));
  std::cout << fmt::format("  by        {}\n", actor_cell(run->actor, run->claimed_user));
  std::cout << fmt::format("  batches   of {}, timeout {}\n", run->batch.to_string(),
                           format_duration(run->timeout));
  std::cout << fmt::format("  started   {}\n", format_time_short(run->created_at));
  if (run->finished_at) {
    std::cout << fmt::format("  finished  {} (took {})\n", format_time_short(run->finished_at),
                             format_duration(run->duration(run->finished_at)));
  }
  std::cout << "\n";
  for (const auto& n : run->nodes) {
    if (n.status == engine::RunNodeStatus::pending || n.status == engine::RunNodeStatus::running) {
      std::cout << paint("==> " + n.node, Color::bold) << " ("
                << engine::run_node_status_name(n.status) << ")\n";
      continue;
    }
    print_node(n, std::cout);
  }
  return kExitOk;
}

}  // namespace slipway::cli
