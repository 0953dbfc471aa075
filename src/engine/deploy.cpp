#include "engine/deploy.h"

#include <algorithm>
#include <array>
#include <charconv>

#include <fmt/format.h>

#include "engine/record_util.h"

namespace slipway::engine {

using detail::from_name;
using detail::time_field;

namespace {
constexpr std::array<std::string_view, 5> kStates{"running", "succeeded", "failed", "rolled_back",
                                                  "paused"};
constexpr std::array<std::string_view, 3> kKinds{"deploy", "rollback", "converge"};
constexpr std::array<std::string_view, 8> kNodeStatuses{
    "pending", "running", "healthy", "failed", "skipped", "reverting", "reverted", "revert_failed"};
}  // namespace

std::string_view deploy_state_name(DeployState s) {
  return kStates.at(static_cast<size_t>(s));
}
std::optional<DeployState> deploy_state_from_name(std::string_view s) {
  return from_name<DeployState>(kStates, s);
}
std::string_view deploy_kind_name(DeployKind k) {
  return kKinds.at(static_cast<size_t>(k));
}
std::optional<DeployKind> deploy_kind_from_name(std::string_view s) {
  return from_name<DeployKind>(kKinds, s);
}
std::string_view node_status_name(NodeStatus s) {
  return kNodeStatuses.at(static_cast<size_t>(s));
}
std::optional<NodeStatus> node_status_from_name(std::string_view s) {
  return from_name<NodeStatus>(kNodeStatuses, s);
}
bool is_terminal(DeployState s) {
  return s != DeployState::running && s != DeployState::paused;
}

Result<BatchSize> BatchSize::parse(std::string_view text) {
  auto bad = [&] {
    return err(Errc::invalid_argument,
               fmt::format("batch size '{}' is not valid: give a number of nodes (2) or a "
                           "percentage of them (25%)",
                           text.substr(0, 32)));
  };
  BatchSize b;
  b.percent = !text.empty() && text.back() == '%';
  if (b.percent) text.remove_suffix(1);
  if (text.empty() || text.size() > 9) return bad();
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < 1) return bad();
  if (b.percent && v > 100) return bad();
  b.value = v;
  return b;
}

int BatchSize::resolve(int total) const {
  if (total <= 0) return 0;
  int n = percent ? static_cast<int>(static_cast<int64_t>(total) * value / 100) : value;
  return std::clamp(n, 1, total);
}

std::string BatchSize::to_string() const {
  return percent ? fmt::format("{}%", value) : fmt::format("{}", value);
}

void Deploy::set_status(NodeProgress& n, NodeStatus s) {
  --tally[static_cast<size_t>(n.status)];
  ++tally[static_cast<size_t>(s)];
  n.status = s;
}

void Deploy::recount() {
  tally.fill(0);
  for (const auto& n : nodes)
    ++tally[static_cast<size_t>(n.status)];
}

int Deploy::failures() const {
  return count(NodeStatus::failed) + count(NodeStatus::revert_failed);
}

Millis Deploy::duration(TimeMs now) const {
  return Millis((finished_at > 0 ? finished_at : now) - created_at);
}

json::object strategy_options_json(const Deploy& d) {
  return json::object{{"canary", d.canary},
                      {"canary_gate", d.canary_gate},
                      {"canary_wait_ms", d.canary_wait_ms},
                      {"zones", d.zones},
                      {"max_unavailable", d.max_unavailable},
                      {"healthy_deadline_ms", d.healthy_deadline_ms},
                      {"progress_deadline_ms", d.progress_deadline_ms},
                      {"waiting", d.waiting}};
}

void read_strategy_options(JsonReader& r, Deploy& d) {
  d.canary = r.str_or("canary", "");
  d.canary_gate = r.str_or("canary_gate", "");
  d.canary_wait_ms = r.i64_or("canary_wait_ms", 0);
  d.zones = r.str_or("zones", "");
  d.max_unavailable = r.str_or("max_unavailable", "");
  d.healthy_deadline_ms = r.i64_or("healthy_deadline_ms", 0);
  d.progress_deadline_ms = r.i64_or("progress_deadline_ms", 0);
  d.waiting = r.str_or("waiting", "");
}

json::value to_json(const Deploy& d, bool with_nodes) {
  json::object o{{"id", d.id},
                 {"kind", deploy_kind_name(d.kind)},
                 {"app", d.app},
                 {"version", d.version},
                 {"env", d.env},
                 {"selector", d.selector},
                 {"strategy", d.strategy},
                 {"batch", d.batch.to_string()},
                 {"max_failures", d.max_failures},
                 {"state", deploy_state_name(d.state)},
                 {"phase", d.phase == Phase::forward ? "forward" : "revert"},
                 {"reason", d.reason},
                 {"actor", d.actor},
                 {"claimed_user", d.claimed_user},
                 {"aborted_by", d.aborted_by},
                 {"forced_freeze", d.forced_freeze},
                 {"config_version", d.config_version},
                 {"started_at", format_time(d.created_at)},
                 {"finished_at",
                  d.finished_at ? json::value(format_time(d.finished_at)) : json::value(nullptr)},
                 {"duration_ms", d.duration(d.finished_at ? d.finished_at : now_ms()).count()},
                 {"batches", d.batches},
                 {"current_batch", d.current_batch},
                 {"node_count", static_cast<int64_t>(d.nodes.size())},
                 {"healthy_count", d.count(NodeStatus::healthy)},
                 {"failed_count", d.failures()}};
  for (auto& [k, v] : strategy_options_json(d))
    o[k] = std::move(v);
  o["promote_at"] = d.promote_at ? json::value(format_time(d.promote_at)) : json::value(nullptr);
  if (with_nodes) {
    json::array nodes;
    for (const auto& n : d.nodes) {
      nodes.push_back(json::object{{"node", n.node},
                                   {"zone", n.zone},
                                   {"batch", n.batch},
                                   {"from_version", n.from_version},
                                   {"status", node_status_name(n.status)},
                                   {"step", n.step},
                                   {"started_at", format_time(n.started_at)},
                                   {"finished_at", format_time(n.finished_at)},
                                   {"reason", n.reason},
                                   {"reverted_to", n.reverted_to},
                                   {"version_now", n.version_now},
                                   {"downloaded", n.downloaded},
                                   {"canary", n.canary}});
    }
    o["nodes"] = std::move(nodes);
    json::array log;
    for (const auto& t : d.log)
      log.push_back(to_json(t));
    o["log"] = std::move(log);
  }
  return o;
}

Result<Deploy> deploy_from_json(const json::value& v) {
  JsonReader r(v, "deploy");
  Deploy d;
  d.id = r.i64("id");
  auto kind = deploy_kind_from_name(r.str_or("kind", "deploy"));
  d.app = r.str("app");
  d.version = r.str("version");
  d.env = r.str("env");
  d.selector = r.str_or("selector", "");
  d.strategy = r.str_or("strategy", "rolling");
  auto batch = BatchSize::parse(r.str_or("batch", "25%"));
  d.max_failures = static_cast<int>(r.i64_or("max_failures", 0));
  read_strategy_options(r, d);
  d.promote_at = time_field(r, "promote_at");
  auto state = deploy_state_from_name(r.str("state"));
  d.phase = r.str_or("phase", "forward") == "revert" ? Phase::revert : Phase::forward;
  d.reason = r.str_or("reason", "");
  d.actor = r.str_or("actor", "");
  d.claimed_user = r.str_or("claimed_user", "");
  d.aborted_by = r.str_or("aborted_by", "");
  d.forced_freeze = r.str_or("forced_freeze", "");
  d.config_version = r.i64_or("config_version", 0);
  d.created_at = time_field(r, "started_at");
  d.finished_at = time_field(r, "finished_at");
  d.batches = static_cast<int>(r.i64_or("batches", 0));
  d.current_batch = static_cast<int>(r.i64_or("current_batch", 0));
  for (auto k : {"duration_ms", "node_count", "healthy_count", "failed_count"})
    r.allow(k);
  if (const auto* nodes = r.opt_array("nodes")) {
    for (const auto& nv : *nodes) {
      JsonReader nr(nv, "deploy node");
      NodeProgress n;
      n.node = nr.str("node");
      n.zone = nr.str_or("zone", "");
      n.batch = static_cast<int>(nr.i64_or("batch", 0));
      n.from_version = nr.str_or("from_version", "");
      auto st = node_status_from_name(nr.str("status"));
      n.step = nr.str_or("step", "");
      n.started_at = time_field(nr, "started_at");
      n.finished_at = time_field(nr, "finished_at");
      n.reason = nr.str_or("reason", "");
      n.reverted_to = nr.str_or("reverted_to", "");
      n.version_now = nr.str_or("version_now", "");
      n.downloaded = nr.boolean_or("downloaded", false);
      n.canary = nr.boolean_or("canary", false);
      if (auto s = nr.finish(true); !s) return s.error();
      if (!st) return err(Errc::invalid_argument, "deploy node: unknown status");
      n.status = *st;
      d.nodes.push_back(std::move(n));
    }
  }
  if (const auto* log = r.opt_array("log")) {
    for (const auto& tv : *log) {
      auto t = transition_from_json(tv);
      if (!t) return t.error();
      d.log.push_back(std::move(*t));
    }
  }
  if (auto s = r.finish(true); !s) return s.error();
  if (!kind || !state || !batch)
    return err(Errc::invalid_argument, "deploy: bad kind, state or batch");
  d.recount();
  d.kind = *kind;
  d.state = *state;
  d.batch = *batch;
  return d;
}

json::value to_json(const Transition& t) {
  return json::object{
      {"at", format_time(t.at)}, {"actor", t.actor}, {"action", t.action}, {"detail", t.detail}};
}

Result<Transition> transition_from_json(const json::value& v) {
  JsonReader r(v, "transition");
  Transition t;
  t.at = time_field(r, "at");
  t.actor = r.str_or("actor", "");
  t.action = r.str("action");
  t.detail = r.str_or("detail", "");
  if (auto st = r.finish(true); !st) return st.error();
  return t;
}

json::value to_json(const StepRecord& s) {
  return json::object{{"deploy", s.deploy},
                      {"node", s.node},
                      {"step", s.step},
                      {"status", s.status},
                      {"output", s.output},
                      {"started_at", format_time(s.started_at)},
                      {"duration_ms", s.duration_ms}};
}

Result<StepRecord> step_from_json(const json::value& v) {
  JsonReader r(v, "step");
  StepRecord s;
  s.deploy = r.i64_or("deploy", 0);
  s.node = r.str("node");
  s.step = r.str("step");
  s.status = r.str("status");
  s.output = r.str_or("output", "");
  s.started_at = time_field(r, "started_at");
  s.duration_ms = r.i64_or("duration_ms", 0);
  if (auto st = r.finish(true); !st) return st.error();
  return s;
}

json::value to_json(const DeployEvent& e) {
  return json::object{{"deploy", e.deploy}, {"seq", e.seq},         {"at", format_time(e.at)},
                      {"kind", e.kind},     {"node", e.node},       {"step", e.step},
                      {"status", e.status}, {"message", e.message}, {"duration_ms", e.duration_ms}};
}

Result<DeployEvent> event_from_json(const json::value& v) {
  JsonReader r(v, "event");
  DeployEvent e;
  e.deploy = r.i64("deploy");
  e.seq = r.i64_or("seq", 0);
  e.at = time_field(r, "at");
  e.kind = r.str("kind");
  e.node = r.str_or("node", "");
  e.step = r.str_or("step", "");
  e.status = r.str_or("status", "");
  e.message = r.str_or("message", "");
  e.duration_ms = r.i64_or("duration_ms", 0);
  if (auto st = r.finish(true); !st) return st.error();
  return e;
}

}  // namespace slipway::engine
