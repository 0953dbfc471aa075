// "Send exec to node X, call me back with the result": the reusable part of ad-hoc commands
// (RunManager), and what the deploy engine can use for other commands on nodes (load-balancer
// drain and undrain).
//
// One ExecCalls owns one action prefix: it names every command it sends PREFIX TAG "." N and is
// registered under PREFIX with whoever routes exec results (AgentGateway::add_exec_handler), so
// several users never see each other's results. Every call that was sent ends exactly once, in
// its callback: with the agent's result, or with a failure when the node's connection is lost
// or the node does not answer within the command's timeout plus a grace period (the agent kills
// the command at its timeout, so an answer is late only when something is wrong). A result is
// accepted only from the node the command was sent to; anything else is refused (the router
// counts it as ignored).
//
// Callbacks may call call() again. Thread-safety: none (the server's I/O thread).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/duration.h"
#include "engine/interfaces.h"
#include "protocol/agent_protocol.h"

namespace slipway::engine {

class ExecCalls final : public ExecResultHandler {
 public:
  struct Outcome {
    protocol::ExecResult result;  // what the agent reported (when failure is empty)
    std::string failure;          // why there is no result: "the connection to the node was lost"
  };
  using Callback = std::function<void(const Outcome&)>;

  ExecCalls(const Clock& clock, ExecTransport& transport, std::string prefix,
            Millis grace = Millis(10'000));

  const std::string& prefix() const { return prefix_; }

  // Sends `cmd` (its action is set here) to `node`; `tag` goes into the action for the logs
  // (a run id, a deploy id). Returns the action, or "" when the node is not connected: then the
  // callback is never called.
  std::string call(const std::string& node, protocol::ExecCommand cmd, const std::string& tag,
                   Callback cb);

  bool on_exec_result(const std::string& node, const protocol::ExecResult& r) override;
  void on_node_lost(const std::string& node) override;
  // Fails the calls whose answer is overdue; call it about once a second.
  void tick();

  size_t in_flight() const { return pending_.size(); }

 private:
  struct Pending {
    std::string node;
    TimeMs deadline = 0;
    Callback cb;
  };
  void fail(const std::string& action, const std::string& why);

  const Clock& clock_;
  ExecTransport& transport_;
  std::string prefix_;
  Millis grace_;
  uint64_t next_ = 1;
  std::map<std::string, Pending> pending_;  // by action
  std::unordered_map<std::string, std::set<std::string>> by_node_;
};

}  // namespace slipway::engine
