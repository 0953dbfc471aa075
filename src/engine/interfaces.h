// What the deploy engine needs from the rest of the server. The engine is plain logic: it never
// touches a socket, a file or the database itself, so a strategy can be tested with a hand-driven
// clock and a fake fleet, and a fleet of thousands can be simulated without processes.
#pragma once

#include <string>

#include "engine/deploy.h"
#include "protocol/agent_protocol.h"

namespace slipway::engine {

// Sends commands to the agents. A false return means the node is not connected now; the engine
// then counts the node as failed for the deploy. Like the journal and the sink, it must not call
// back into the Engine from inside these calls (queue the command and return): the engine is in
// the middle of dispatching a wave.
class NodeTransport {
 public:
  virtual ~NodeTransport() = default;
  virtual bool send_install(const std::string& node, const protocol::InstallCommand& cmd) = 0;
  virtual bool send_deactivate(const std::string& node, const protocol::DeactivateCommand& cmd) = 0;
};

// Sends ad-hoc commands (exec) to agents. A false return means the node is not connected now.
// Must not call back into its caller from inside the call (queue the command and return).
class ExecTransport {
 public:
  virtual ~ExecTransport() = default;
  virtual bool send_exec(const std::string& node, const protocol::ExecCommand& cmd) = 0;
};

// Receives the exec results whose action starts with the prefix it was registered under (see
// AgentGateway::add_exec_handler), and hears of every node whose connection is gone.
class ExecResultHandler {
 public:
  virtual ~ExecResultHandler() = default;
  // False when the result answers no command of this handler sent to that node (an unknown
  // action, or a node that was not asked): the caller counts and logs it as ignored.
  virtual bool on_exec_result(const std::string& node, const protocol::ExecResult& r) = 0;
  virtual void on_node_lost(const std::string& node) = 0;
};

// Persists the deploy records. Calls must not block (the server queues them to its database
// thread) and are made in the order things happened.
class DeployJournal {
 public:
  virtual ~DeployJournal() = default;
  virtual void save_deploy(const Deploy& d) = 0;  // header and every node (insert or update)
  virtual void save_node(DeployId id, const NodeProgress& n) = 0;
  virtual void save_step(const StepRecord& s) = 0;
  virtual void save_transition(DeployId id, const Transition& t) = 0;
  // An implementation may buffer writes; flush hands them over to the store now (in order).
  virtual void flush() {}
};

// Receives progress events (for watchers) and learns when a deploy is over.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void on_event(const DeployEvent& e, const Deploy& d) = 0;
};

}  // namespace slipway::engine
