// The local lab: a Slipway server and a fleet of agents as processes on loopback addresses of
// this machine. Used by `slipway lab up|down`, by `slipway demo` and by the end-to-end tests.
//
// Layout of a lab directory DIR:
//   DIR/server/            the server's data directory (admin.token, join.token, server.url, ...)
//   DIR/server/server.log  the server's standard output and error
//   DIR/nodes/NAME/root/   an agent's root directory
//   DIR/nodes/NAME/agent.log
//   DIR/lab.json           what was started (LabInfo), for `slipway lab down --dir DIR`
//
// Two modes:
//   attached (demo, tests): the children stay in the caller's process group (a terminal's Ctrl-C
//     reaches them too), get PR_SET_PDEATHSIG(SIGTERM) so that a crashed caller leaves nothing
//     behind, and the Lab's destructor stops them. PR_SET_PDEATHSIG fires when the *thread* that
//     started a child exits: call up/start_node/start_server from a thread that outlives the lab.
//   detached (`slipway lab up`): each child runs in its own session (setsid), outlives the CLI,
//     and is stopped later by down_from_state(DIR).
//
// A Lab is not thread-safe: use one from one thread at a time.
#pragma once

#include <csignal>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <sys/types.h>

#include "common/duration.h"
#include "common/error.h"

namespace slipway::lab {

namespace fs = std::filesystem;

// One agent of the lab.
struct NodeSpec {
  std::string name;
  std::string env;
  std::vector<std::string> roles;
  std::string zone;  // empty: none
  std::map<std::string, std::string> tags;
  std::string address;  // a loopback address, e.g. "127.0.0.11"
};

// How make_nodes lays a fleet out.
struct NodePlan {
  int count = 3;
  std::string env = "staging";
  std::vector<std::string> roles = {"api"};
  // Either plain names, assigned round-robin ({"a", "b"}: a, b, a, b, ...), or every entry with a
  // count, "NAME:COUNT", assigned in order ({"a:2", "b:3"}: a, a, b, b, b); the counts must then
  // add up to `count`. Empty: the nodes have no zone.
  std::vector<std::string> zones;
  std::map<std::string, std::string> tags;  // given to every node
  std::string first_address = "127.0.0.11";
  std::string name_prefix = "node";  // names are PREFIX-1, PREFIX-2, ...
};

inline constexpr int kMaxLabNodes = 1000;

// Names, roles, zones and tags are checked with validate_name; addresses count up from
// first_address and must all stay inside 127.0.0.0/8 (never 127.0.0.0 or 127.255.255.255).
// count is 0..kMaxLabNodes. Errors are invalid_argument.
Result<std::vector<NodeSpec>> make_nodes(const NodePlan& plan);

struct LabOptions {
  fs::path dir;          // created when missing; an existing server data dir in it is reused
  fs::path slipway_bin;  // empty: this executable (/proc/self/exe)
  std::string listen = "127.0.0.1:0";
  std::string log_level = "info";
  // More `slipway server` flags (e.g. --tls: the lab then speaks HTTPS, its agents enroll with
  // the join token's CA fingerprint, and LabInfo::ca_cert is the server's CA).
  std::vector<std::string> server_args;
  std::vector<NodeSpec> nodes;
  bool detach = false;
  Millis start_timeout{30'000};  // for the server to listen, and again for all agents to be alive
  Millis stop_timeout{10'000};   // SIGTERM, then SIGKILL after this long
  // Called with one line per step ("server listening on http://...", "node-1 is alive"), for a
  // CLI that shows progress; may be empty.
  std::function<void(const std::string&)> progress;
};

struct NodeInfo {
  NodeSpec spec;
  pid_t pid = 0;  // 0 when not running (stopped by stop_node)
  fs::path root;
  fs::path log;
};

struct LabInfo {
  std::string server_url;  // "http://127.0.0.1:34567"
  std::string ca_cert;     // an https:// server's CA certificate (DIR/server/tls/ca.crt)
  std::string admin_token;
  std::string join_token;
  fs::path dir;
  fs::path slipway_bin;
  pid_t server_pid = 0;
  bool detached = false;
  std::vector<NodeInfo> nodes;
};

class Lab {
 public:
  Lab() = default;
  ~Lab();  // down(), unless the lab was started detached
  Lab(const Lab&) = delete;
  Lab& operator=(const Lab&) = delete;

  // Starts the server, waits (bounded) until it writes server.url, reads the tokens, starts
  // every agent, and waits (bounded) until the server lists each of them as alive. On any error
  // everything started so far is stopped again; the error says what failed and carries the tail
  // of the log of the process at fault. A lab that is running already (in this object, or per
  // DIR/lab.json, in another process) is a conflict. Writes DIR/lab.json on success.
  Result<LabInfo> up(const LabOptions& opts);

  // The current state (pids change with stop_node/start_node/stop_server/start_server).
  const LabInfo& info() const { return info_; }

  // Starts one more agent and waits until it is alive. The name must be new.
  Status add_node(const NodeSpec& spec);
  // Sends `signal` to the agent and waits (bounded) for it to exit. SIGKILL plays a crash. The
  // node stays part of the lab; start_node brings it back. After SIGTERM or SIGINT, an agent
  // that does not exit with code 0 (a crash at shutdown, a sanitizer's report) is an error that
  // says how it ended, with the tail of its log.
  Status stop_node(const std::string& name, int signal = SIGTERM);
  // Starts the agent again with the same root directory; does not wait for it to be alive
  // (wait_for_nodes does, if the caller needs it).
  Status start_node(const std::string& name);
  // Sends `signal` to the server and waits (bounded) for it to exit; after SIGTERM or SIGINT,
  // an exit other than code 0 is an error, as for stop_node.
  Status stop_server(int signal = SIGTERM);
  // Starts the server again on the same data directory and waits for a fresh server.url (the old
  // one is deleted first). It listens where the first server did, port included, even when
  // opts.listen asked for port 0: the agents were told that address and must find it again.
  Status start_server();
  // Waits (bounded by start_timeout) until the server lists every running node as alive.
  Status wait_for_nodes();

  // How down() stops the server and the agents: agents first (so that they do not spend their
  // last seconds reconnecting), or all at the same moment (as an init system stops a machine).
  enum class StopOrder { agents_first, together };

  // Stops every process this lab started: SIGTERM, then SIGKILL after stop_timeout. Then it
  // stops the apps that agents left running (processes of this user whose working directory or
  // executable lies under DIR/nodes/), so that nothing the lab brought up outlives it. Removes
  // DIR/lab.json. Idempotent. An error when a process could not be stopped, or when the server
  // or an agent did not exit with code 0 after SIGTERM (each named, with how it ended and the
  // tail of its log): a clean stop is part of what the lab checks.
  Status down(StopOrder order = StopOrder::agents_first);

 private:
  Status start_server_process();
  Status start_node_process(NodeInfo& node);
  Status wait_for_server_url();
  Status wait_alive(const std::vector<std::string>& names);
  Status save_state() const;
  NodeInfo* find_node(const std::string& name);
  void report(const std::string& line) const;

  LabOptions opts_;
  LabInfo info_;
  std::string listen_;  // the server's --listen: opts_.listen, then where it really listens
  bool running_ = false;
};

// For `slipway lab down --dir DIR`: reads DIR/lab.json and stops what it lists. A pid is only
// signalled while /proc/PID/cmdline still shows the slipway process that the lab started (so a
// recycled pid is never killed); processes already gone are not an error. Apps left under
// DIR/nodes/ are stopped as by Lab::down. A missing lab.json is not_found. lab.json is removed
// afterwards.
Status down_from_state(const fs::path& dir);

// Reads DIR/lab.json.
Result<LabInfo> load_state(const fs::path& dir);

// This executable, resolved from /proc/self/exe.
Result<fs::path> self_executable();

}  // namespace slipway::lab
