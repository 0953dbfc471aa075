#include "engine/exec_calls.h"

#include <vector>

#include <fmt/format.h>

namespace slipway::engine {

ExecCalls::ExecCalls(const Clock& clock, ExecTransport& transport, std::string prefix, Millis grace)
    : clock_(clock), transport_(transport), prefix_(std::move(prefix)), grace_(grace) {}

std::string ExecCalls::call(const std::string& node, protocol::ExecCommand cmd,
                            const std::string& tag, Callback cb) {
  cmd.action = fmt::format("{}{}.{}", prefix_, tag, next_++);
  if (!transport_.send_exec(node, cmd)) return "";
  const TimeMs deadline = clock_.now() + cmd.timeout_ms + grace_.count();
  by_node_[node].insert(cmd.action);
  pending_[cmd.action] = Pending{node, deadline, std::move(cb)};
  return cmd.action;
}

bool ExecCalls::on_exec_result(const std::string& node, const protocol::ExecResult& r) {
  auto it = pending_.find(r.action);
  if (it == pending_.end() || it->second.node != node) return false;
  Callback cb = std::move(it->second.cb);
  if (auto n = by_node_.find(node); n != by_node_.end()) {
    n->second.erase(r.action);
    if (n->second.empty()) by_node_.erase(n);
  }
  pending_.erase(it);
  cb(Outcome{r, ""});
  return true;
}

void ExecCalls::fail(const std::string& action, const std::string& why) {
  auto it = pending_.find(action);
  if (it == pending_.end()) return;
  Callback cb = std::move(it->second.cb);
  if (auto n = by_node_.find(it->second.node); n != by_node_.end()) {
    n->second.erase(action);
    if (n->second.empty()) by_node_.erase(n);
  }
  pending_.erase(it);
  Outcome o;
  o.result.action = action;
  o.failure = why;
  cb(o);
}

void ExecCalls::on_node_lost(const std::string& node) {
  auto n = by_node_.find(node);
  if (n == by_node_.end()) return;
  // Copied: the callbacks may send new commands (to other nodes) while we go.
  const std::set<std::string> actions = n->second;
  for (const auto& action : actions)
    fail(action, "the connection to the node was lost");
}

void ExecCalls::tick() {
  const TimeMs now = clock_.now();
  std::vector<std::string> overdue;
  for (const auto& [action, p] : pending_) {
    if (now >= p.deadline) overdue.push_back(action);
  }
  for (const auto& action : overdue) {
    fail(action, fmt::format("no answer from the node {} after the command's timeout",
                             format_duration(grace_)));
  }
}

}  // namespace slipway::engine
