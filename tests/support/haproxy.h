// HaproxyFixture: Debian's HAProxy (/usr/sbin/haproxy) as a child process in front of a set of
// HTTP servers, for tests of load-balancer drain and undrain.
//
// Hermetic: the configuration and the admin socket live in a directory the test owns; the
// frontend listens on a loopback address on a port the kernel picked (the fixture binds and
// listens itself, and HAProxy takes the socket as `bind fd@3`, so no other process can take the
// port between choosing and binding it); HAProxy runs in the foreground (-db) with no pidfile,
// chroot, user or daemon setting, and logs to its standard error (DIR/haproxy.log). Starting it
// needs no root and starts no system service.
//
// The backend is `web` (kBackend); its servers carry the names given (node names, so that a
// command on a node can say `set server web/$SLIPWAY_NODE state drain`). Each server is checked
// with `GET /health` every 200 ms (DOWN after 2 failed checks, UP after 1 good one); a request
// that fails on one server (connection refused or reset, empty response, 5xx) is retried up to 3
// times, each time on another server (retries 3, option redispatch 1, retry-on
// all-retryable-errors).
//
// Helpers throw std::runtime_error when they cannot do what they say. Not thread-safe: use one
// fixture from one thread (runtime() may be called from any thread: it only opens a socket).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "support/child_process.h"

namespace slipway::testing {

inline constexpr const char* kHaproxyBin = "/usr/sbin/haproxy";
inline constexpr const char* kBackend = "web";

struct HaproxyServer {
  std::string name;     // e.g. "node-1"
  std::string address;  // an IPv4 literal, e.g. "127.64.3.17"
  int port = 0;
};

struct HaproxyOptions {
  fs::path dir;  // created when missing: haproxy.cfg, admin.sock, haproxy.log
  std::string listen_address = "127.0.0.1";  // the frontend's address (loopback)
  std::vector<HaproxyServer> servers;
  // Production settings by default. Negative controls turn them off, to show what a failure
  // looks like: retries 0 (a failed attempt is the client's failure: no retry, no redispatch),
  // health_checks false (a dead server stays in the rotation).
  int retries = 3;
  bool health_checks = true;
  fs::path binary = kHaproxyBin;
  std::chrono::milliseconds start_timeout{10'000};
};

// One server's row of `show stat`.
struct HaproxyServerState {
  // "UP", "DOWN", "DRAIN", "MAINT", "UP 1/2" (going down), "DOWN 1/1" (going up), "no check",
  // ... as HAProxy says it.
  std::string status;
  int64_t current_sessions = 0;  // scur: requests being served now
  int64_t total_sessions = 0;    // stot
  std::string check_status;      // "L7OK", "L4CON", ... ("" before the first check)
  std::string address;           // "127.0.0.1:8080"
  bool up() const { return status == "UP"; }
  bool draining() const { return status == "DRAIN"; }
};

class HaproxyFixture {
 public:
  HaproxyFixture() = default;
  ~HaproxyFixture();  // stop()
  HaproxyFixture(const HaproxyFixture&) = delete;
  HaproxyFixture& operator=(const HaproxyFixture&) = delete;

  // The configuration HAProxy runs with, for these options and a frontend on `bind_spec`
  // ("fd@3", or "127.0.0.1:8080"). Pure: exposed for tests and for reading.
  static std::string config_text(const HaproxyOptions& o, const std::string& bind_spec);

  // Binds the frontend's socket, writes DIR/haproxy.cfg, starts HAProxy and waits (bounded by
  // start_timeout) until its admin socket answers. Every server needs a port (1..65535;
  // HAProxy checks it there): a node whose port is not known yet can be given one where nothing
  // listens (it is DOWN) and moved with set_address later. Throws when the binary is missing. Does
  // not wait for the servers to be UP (wait_status does). Throws, with the tail of haproxy.log,
  // when HAProxy exits or does not answer; it is stopped again then. Start once per fixture.
  void start(const HaproxyOptions& o);
  // SIGTERM (a hard stop: open connections are closed), SIGKILL after 5 s; waits for it.
  // Idempotent; also called by the destructor.
  void stop();
  bool running() { return process_.running(); }

  // "http://127.0.0.1:PORT" (no trailing slash).
  std::string frontend_url() const;
  const std::string& frontend_address() const { return opts_.listen_address; }
  int frontend_port() const { return port_; }
  fs::path socket_path() const { return opts_.dir / "admin.sock"; }
  fs::path config_path() const { return opts_.dir / "haproxy.cfg"; }
  fs::path log_path() const { return opts_.dir / "haproxy.log"; }
  pid_t pid() const { return process_.pid(); }

  // Sends one command to the admin socket (the runtime API) and returns HAProxy's whole answer.
  // Throws when the socket cannot be reached. A command HAProxy refuses is not an exception: its
  // answer says why (e.g. "No such server.").
  std::string runtime(const std::string& command) const;

  // The server's row of `show stat` in backend web; throws when there is no such server.
  HaproxyServerState server_state(const std::string& name) const;
  // Every server of backend web, by name.
  std::map<std::string, HaproxyServerState> server_states() const;

  // `set server web/NAME state drain|ready|maint`; throws unless HAProxy accepts it.
  void set_state(const std::string& name, const std::string& state) const;
  // `set server web/NAME addr A port P`; throws unless HAProxy accepts it.
  void set_address(const std::string& name, const std::string& address, int port) const;

  // Polls (every 50 ms) until the server's status is `status`; returns whether it came within
  // `timeout`.
  bool wait_status(const std::string& name, const std::string& status,
                   std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;
  // Polls until the server has no session in flight; returns whether that came within `timeout`.
  bool wait_no_sessions(const std::string& name,
                        std::chrono::milliseconds timeout = std::chrono::seconds(15)) const;

 private:
  HaproxyOptions opts_;
  int port_ = 0;
  ChildProcess process_;
};

// Splits the CSV of `show stat` into rows of name -> value, by its header line ("# pxname,...").
std::vector<std::map<std::string, std::string>> parse_show_stat(const std::string& csv);

}  // namespace slipway::testing
