// The end-to-end harness: the real `slipway` binary as server, agents and CLI, as processes on
// loopback addresses of this machine.
//
// Each test gets a fresh directory under /tmp (removed afterwards; kept when SLIPWAY_E2E_KEEP is
// set), its own loopback addresses inside 127.64.0.0/10 (derived from the pid and a counter, so
// that parallel ctest runs never share one) and, when it asks for one, a Lab: a server on an
// ephemeral port and N agents. TearDown stops every process the test started, also when it
// failed: the lab, a detached lab started through the CLI, and any app left behind (a process of
// this user whose working directory or executable lies in the test's directory).
//
// Helpers that set things up throw std::runtime_error when they cannot: GoogleTest reports the
// exception as a failure of the test, and TearDown still runs.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/duration.h"
#include "common/json.h"
#include "lab/lab.h"
#include "net/http_client.h"

namespace slipway::e2e {

namespace fs = std::filesystem;

// What a process printed and how it ended.
struct ProcResult {
  int exit_code = -1;  // -1 when it was killed by a signal or timed out
  bool timed_out = false;
  std::string out;
  std::string err;
  std::string all() const { return out + err; }
  // For assertion messages.
  std::string describe() const;
};

// Runs argv[0] (a path) with `env` added to (or, for an empty value, removed from) this process's
// environment, stdin from /dev/null, capturing standard output and error. Kills it (SIGKILL) after
// `timeout`.
ProcResult run_process(const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& env, Millis timeout);

// `count` consecutive loopback addresses in 127.64.0.0/10 no other test process uses; returns the
// first. count is 1..15.
std::string unique_first_address(int count);

// Whether the process has exited (no /proc entry, or a zombie).
bool process_gone(pid_t pid);

// Polls `pred` every `every` until it holds or `timeout` passes; returns whether it held.
bool wait_until(const std::function<bool()>& pred, Millis timeout, Millis every = Millis(100));

// Sends raw bytes to HOST:PORT and reads the answer until the peer closes or `timeout` passes.
std::string raw_exchange(const std::string& host, const std::string& port, const std::string& bytes,
                         Millis timeout = Millis(10'000));

// A JSON value parsed from text; throws when it is not JSON.
json::value parse(const std::string& text, const std::string& what);
// o[key] as a string ("" when absent or not a string), etc.
std::string str(const json::value& v, std::string_view key);
int64_t i64(const json::value& v, std::string_view key);
bool boolean(const json::value& v, std::string_view key);
const json::object& obj(const json::value& v);
const json::array& arr(const json::value& v, std::string_view key);

// GET http://ADDRESS:PORT/version of APP on that node (a node object of the status): the version
// the app itself says it is, or "error: ..." / "status N".
std::string app_version_over_http(const json::value& node, const std::string& app);

struct ReleaseOptions {
  std::string app = "web";
  bool healthy = true;
  Millis health_timeout{10'000};  // only a failing release waits it out
  Millis healthy_for{300};
  Millis interval{100};
  std::string message{};
  std::string out_subdir = "releases";               // under the test's directory
  std::string extra_manifest{};                      // more slipway.yaml keys
  std::string after_install{};                       // "" = the sample's own hook
  std::map<std::string, std::string> extra_files{};  // more files in the archive: path -> content
};

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Brings up a server and `nodes` agents (env "staging", role "api", zones a, b round-robin;
  // names node-1...). Throws when the lab does not come up.
  void start_lab(int nodes, const std::string& env = "staging");
  const lab::LabInfo& info() const { return lab_.info(); }
  // Starts one more agent like those of start_lab (role "api", zone "a", the next loopback
  // address after the last node's) and waits until it is alive. Throws when it does not come up.
  void add_agent(const std::string& name, const std::string& env = "staging");
  // The agent root directory of a node of the lab.
  fs::path node_root(const std::string& name) const;

  // Builds a release of the sample service; returns the archive's path.
  fs::path release(const std::string& version, const ReleaseOptions& o = {});

  // The CLI against the lab's server (SLIPWAY_SERVER, SLIPWAY_TOKEN set; NO_COLOR).
  ProcResult cli(const std::vector<std::string>& args, Millis timeout = Millis(90'000));
  // The CLI with exactly this environment added (for wrong tokens, other servers).
  ProcResult cli_env(const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env,
                     Millis timeout = Millis(90'000));
  // cli(args) with `input` on its standard input (a file, not a terminal): `secret set`.
  ProcResult cli_stdin(const std::vector<std::string>& args, const std::string& input);
  // cli(args + {-o, json}); throws unless it exits 0 with JSON on standard output.
  json::value cli_json(std::vector<std::string> args);
  // slipway push FILE --app APP --version V.
  ProcResult push(const fs::path& file, const std::string& app, const std::string& version);

  // Raw HTTP to the lab's server. `token`: nullopt = the admin token, "" = none.
  net::HttpResult http(const std::string& method, const std::string& target,
                       const std::string& body = "", net::Headers headers = {},
                       std::optional<std::string> token = std::nullopt);
  // GET with the admin token; throws unless 200 with JSON.
  json::value get_json(const std::string& target);

  // GET /api/v1/status?env=ENV: name -> node object.
  std::map<std::string, json::value> status_by_node(const std::string& env = "staging");
  int64_t artifact_downloads();
  // The newest deploy in the history (GET /api/v1/deploys?limit=1); throws when there is none.
  json::value latest_deploy();
  // GET /api/v1/deploys/ID.
  json::value deploy(int64_t id);
  // Waits until the deploy is no longer running; returns it.
  json::value wait_deploy_finished(int64_t id, Millis timeout = Millis(60'000));

  // The test's own directory (removed afterwards).
  const fs::path& dir() const { return dir_; }

  lab::Lab lab_;
  bool lab_started_ = false;
  // More `slipway server` flags for start_lab (--tls: the lab over HTTPS; cli() and http() then
  // trust its CA).
  std::vector<std::string> server_args_;
  // The executable start_lab runs the server and the agents with (empty: SLIPWAY_BIN); a wrapper
  // script that sets a process up (a mount namespace) and execs SLIPWAY_BIN.
  fs::path lab_bin_;
  // What the lab reported ("stopped agent node-1 (exited with code 0)", ...).
  std::vector<std::string> lab_events_;
  fs::path dir_;
  int stdin_files_ = 0;
  // Directories of labs started by `slipway lab up` (detached): stopped in TearDown.
  std::vector<fs::path> detached_labs_;
};

}  // namespace slipway::e2e
