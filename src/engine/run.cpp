#include "engine/run.h"

#include <array>

#include <fmt/format.h>

#include "engine/record_util.h"

namespace slipway::engine {

using detail::from_name;
using detail::time_field;

namespace {
constexpr std::array<std::string_view, 3> kRunStates{"running", "succeeded", "failed"};
constexpr std::array<std::string_view, 4> kRunNodeStatuses{"pending", "running", "ok", "failed"};

bool needs_quotes(std::string_view a) {
  if (a.empty()) return true;
  for (const char c : a) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("_./:=@%+,-").find(c) != std::string_view::npos;
    if (!plain) return true;
  }
  return false;
}
}  // namespace

std::string_view run_state_name(RunState s) {
  return kRunStates.at(static_cast<size_t>(s));
}
std::optional<RunState> run_state_from_name(std::string_view s) {
  return from_name<RunState>(kRunStates, s);
}
std::string_view run_node_status_name(RunNodeStatus s) {
  return kRunNodeStatuses.at(static_cast<size_t>(s));
}
std::optional<RunNodeStatus> run_node_status_from_name(std::string_view s) {
  return from_name<RunNodeStatus>(kRunNodeStatuses, s);
}

int Run::count(RunNodeStatus s) const {
  int n = 0;
  for (const auto& node : nodes)
    n += node.status == s ? 1 : 0;
  return n;
}

Millis Run::duration(TimeMs now) const {
  return Millis((finished_at > 0 ? finished_at : now) - created_at);
}

Run Run::header() const {
  Run h;
  h.id = id;
  h.env = env;
  h.selector = selector;
  h.argv = argv;
  h.batch = batch;
  h.timeout = timeout;
  h.actor = actor;
  h.claimed_user = claimed_user;
  h.state = state;
  h.created_at = created_at;
  h.finished_at = finished_at;
  h.batches = batches;
  h.current_batch = current_batch;
  h.finished_nodes = finished_nodes;
  return h;
}

std::string command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out += ' ';
    if (!needs_quotes(a)) {
      out += a;
      continue;
    }
    out += '\'';
    for (const char c : a) {
      if (c == '\'') {
        out += "'\\''";
      } else {
        out += c;
      }
    }
    out += '\'';
  }
  return out;
}

std::string run_node_outcome(const RunNode& n) {
  if (n.timed_out) return "timed out";
  if (n.signal != 0) return fmt::format("killed by signal {}", n.signal);
  if (n.exit_code >= 0) return fmt::format("exit {}", n.exit_code);
  if (!n.reason.empty()) return n.reason;
  return std::string(run_node_status_name(n.status));
}

json::value to_json(const Run& r, bool with_nodes, int64_t min_seq) {
  json::array argv;
  for (const auto& a : r.argv)
    argv.emplace_back(a);
  json::object o{{"id", r.id},
                 {"kind", "run"},
                 {"env", r.env},
                 {"selector", r.selector},
                 {"argv", std::move(argv)},
                 {"command", command_line(r.argv)},
                 {"batch", r.batch.to_string()},
                 {"timeout_ms", r.timeout.count()},
                 {"state", run_state_name(r.state)},
                 {"actor", r.actor},
                 {"claimed_user", r.claimed_user},
                 {"started_at", format_time(r.created_at)},
                 {"finished_at",
                  r.finished_at ? json::value(format_time(r.finished_at)) : json::value(nullptr)},
                 {"duration_ms", r.duration(r.finished_at ? r.finished_at : now_ms()).count()},
                 {"batches", r.batches},
                 {"current_batch", r.current_batch},
                 {"node_count", static_cast<int64_t>(r.nodes.size())},
                 {"ok_count", r.count(RunNodeStatus::ok)},
                 {"failed_count", r.count(RunNodeStatus::failed)},
                 {"finished_count", r.finished_nodes}};
  if (with_nodes) {
    json::array nodes;
    for (const auto& n : r.nodes) {
      if (min_seq > 0 && n.seq <= min_seq) continue;
      nodes.push_back(json::object{
          {"node", n.node},
          {"zone", n.zone},
          {"batch", n.batch},
          {"status", run_node_status_name(n.status)},
          {"exit_code", n.exit_code >= 0 ? json::value(n.exit_code) : json::value(nullptr)},
          {"signal", n.signal},
          {"timed_out", n.timed_out},
          {"output", n.output},
          {"reason", n.reason},
          {"started_at", format_time(n.started_at)},
          {"duration_ms", n.duration_ms},
          {"seq", n.seq}});
    }
    o["nodes"] = std::move(nodes);
  }
  return o;
}

Result<Run> run_from_json(const json::value& v) {
  JsonReader r(v, "run");
  Run run;
  run.id = r.i64("id");
  run.env = r.str("env");
  run.selector = r.str_or("selector", "");
  run.argv = r.str_list("argv");
  auto batch = BatchSize::parse(r.str_or("batch", "100%"));
  run.timeout = Millis(r.i64_or("timeout_ms", 60'000));
  auto state = run_state_from_name(r.str("state"));
  run.actor = r.str_or("actor", "");
  run.claimed_user = r.str_or("claimed_user", "");
  run.created_at = time_field(r, "started_at");
  run.finished_at = time_field(r, "finished_at");
  run.batches = static_cast<int>(r.i64_or("batches", 0));
  run.current_batch = static_cast<int>(r.i64_or("current_batch", 0));
  run.finished_nodes = r.i64_or("finished_count", 0);
  for (auto k : {"kind", "command", "duration_ms", "node_count", "ok_count", "failed_count"})
    r.allow(k);
  if (const auto* nodes = r.opt_array("nodes")) {
    for (const auto& nv : *nodes) {
      JsonReader nr(nv, "run node");
      RunNode n;
      n.node = nr.str("node");
      n.zone = nr.str_or("zone", "");
      n.batch = static_cast<int>(nr.i64_or("batch", 0));
      auto st = run_node_status_from_name(nr.str("status"));
      const auto* code = nr.opt_value("exit_code");
      n.signal = static_cast<int>(nr.i64_or("signal", 0));
      n.timed_out = nr.boolean_or("timed_out", false);
      n.output = nr.str_or("output", "");
      n.reason = nr.str_or("reason", "");
      n.started_at = time_field(nr, "started_at");
      n.duration_ms = nr.i64_or("duration_ms", 0);
      n.seq = nr.i64_or("seq", 0);
      if (auto s = nr.finish(true); !s) return s.error();
      if (!st) return err(Errc::invalid_argument, "run node: unknown status");
      n.status = *st;
      n.exit_code = code && code->is_int64() ? static_cast<int>(code->get_int64()) : -1;
      run.nodes.push_back(std::move(n));
    }
  }
  if (auto s = r.finish(true); !s) return s.error();
  if (!state || !batch) return err(Errc::invalid_argument, "run: bad state or batch");
  run.state = *state;
  run.batch = *batch;
  return run;
}

}  // namespace slipway::engine
