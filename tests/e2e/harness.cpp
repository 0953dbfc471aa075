#include "e2e/harness.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <set>
#include <stdexcept>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "lab/sample_release.h"
#include "support/child_process.h"

extern char** environ;

namespace slipway::e2e {

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what);
}

void set_nonblocking(int fd) {
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

// Reads what is there; false at end of file (or on an error other than EAGAIN).
bool drain(int fd, std::string& into) {
  char buf[8192];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      into.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    return false;
  }
}

std::string read_link(const std::string& path) {
  std::error_code ec;
  auto p = fs::read_symlink(path, ec);
  return ec ? std::string() : p.string();
}

std::string read_small(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Whether the process of /proc/PID `proc` runs with our real user id. From its status, not from
// the owner of /proc/PID: that is root for a process that made itself non-dumpable (the agent).
bool real_uid_is_ours(const fs::path& proc) {
  const std::string status = read_small(proc / "status");
  const size_t at = status.find("\nUid:\t");
  return at != std::string::npos &&
         std::strtoul(status.c_str() + at + 6, nullptr, 10) == ::getuid();
}

std::string tail_lines(const fs::path& p, size_t lines) {
  const std::string text = read_small(p);
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    const auto nl = text.rfind('\n', pos - 1);
    if (nl == std::string::npos) {
      pos = 0;
      break;
    }
    pos = nl;
    if (n == lines) ++pos;
  }
  return text.substr(pos);
}

// Processes of this user, other than this one, whose working directory, executable or command
// line lies under `dir`: whatever a test started there (servers, agents, the apps they run).
std::vector<pid_t> processes_under(const fs::path& dir) {
  std::vector<pid_t> out;
  const std::string prefix = dir.string() + "/";
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    if (pid == ::getpid()) continue;
    if (!real_uid_is_ours(e.path())) continue;
    if (process_gone(pid)) continue;
    const std::string base = e.path().string();
    std::string cmdline = read_small(base + "/cmdline");
    for (auto& c : cmdline) {
      if (c == '\0') c = ' ';
    }
    if (read_link(base + "/cwd").rfind(prefix, 0) == 0 ||
        read_link(base + "/exe").rfind(prefix, 0) == 0 ||
        cmdline.find(prefix) != std::string::npos) {
      out.push_back(pid);
    }
  }
  return out;
}

void stop_processes_under(const fs::path& dir) {
  auto pids = processes_under(dir);
  if (pids.empty()) return;
  for (pid_t p : pids) {
    std::cerr << "[e2e] stopping left-over process " << p << "\n";
    ::kill(p, SIGTERM);
  }
  auto all_gone = [&] {
    for (pid_t p : pids) {
      int status = 0;
      ::waitpid(p, &status, WNOHANG);  // our own children must be reaped
      if (!process_gone(p)) return false;
    }
    return true;
  };
  if (wait_until(all_gone, Millis(5'000), Millis(50))) return;
  for (pid_t p : pids) {
    if (!process_gone(p)) ::kill(p, SIGKILL);
  }
  wait_until(all_gone, Millis(5'000), Millis(50));
}

}  // namespace

// ---- processes ------------------------------------------------------------------------------

std::string ProcResult::describe() const {
  return fmt::format("exit code {}{}\n--- stdout ---\n{}\n--- stderr ---\n{}", exit_code,
                     timed_out ? " (timed out)" : "", out, err);
}

ProcResult run_process(const std::vector<std::string>& argv,
                       const std::map<std::string, std::string>& env, Millis timeout) {
  if (argv.empty()) fail("run_process: no program");
  std::vector<std::string> env_strings = slipway::testing::environment_with(env);
  std::vector<char*> envp;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args_copy = argv;
  std::vector<char*> args;
  for (auto& s : args_copy)
    args.push_back(s.data());
  args.push_back(nullptr);

  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) fail("pipe2 failed");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) fail("pipe2 failed");
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) fail(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    ::execve(args[0], args.data(), envp.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  set_nonblocking(out_pipe[0]);
  set_nonblocking(err_pipe[0]);

  ProcResult r;
  bool out_open = true;
  bool err_open = true;
  bool exited = false;
  int status = 0;
  const auto deadline = Clock::now() + timeout;
  Clock::time_point exited_at;
  for (;;) {
    pollfd fds[2];
    nfds_t n = 0;
    if (out_open) fds[n++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    if (n > 0) {
      ::poll(fds, n, 50);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (out_open) out_open = drain(out_pipe[0], r.out);
    if (err_open) err_open = drain(err_pipe[0], r.err);
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) {
      exited = true;
      exited_at = Clock::now();
    }
    if (exited) {
      // A grandchild may hold the pipes open: do not wait for it long.
      if ((!out_open && !err_open) || Clock::now() - exited_at > std::chrono::seconds(1)) break;
      continue;
    }
    if (Clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      exited = true;
      if (out_open) drain(out_pipe[0], r.out);
      if (err_open) drain(err_pipe[0], r.err);
      break;
    }
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  r.exit_code = !r.timed_out && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string unique_first_address(int count) {
  if (count < 1 || count > 15) fail("unique_first_address: 1..15 addresses");
  static std::atomic<uint32_t> counter{0};
  const uint32_t slot = counter++ % 16;
  // 127.64.0.0/10: 14 bits of the pid, 4 bits of the counter, 4 bits for the nodes.
  const uint32_t v =
      0x7f400000u | ((static_cast<uint32_t>(::getpid()) & 0x3fffu) << 8) | (slot << 4) | 1u;
  return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

bool process_gone(pid_t pid) {
  const std::string stat = read_small(fmt::format("/proc/{}/stat", pid));
  if (stat.empty()) return true;
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return true;
  const char state = stat[paren + 2];
  return state == 'Z' || state == 'X';
}

bool wait_until(const std::function<bool()>& pred, Millis timeout, Millis every) {
  return slipway::testing::poll_until(pred, timeout, every);
}

std::string raw_exchange(const std::string& host, const std::string& port, const std::string& bytes,
                         Millis timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket failed");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(port)));
  ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    fail(fmt::format("cannot connect to {}:{}: {}", host, port, std::strerror(errno)));
  }
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

// ---- JSON -----------------------------------------------------------------------------------

json::value parse(const std::string& text, const std::string& what) {
  auto v = parse_json(text, what);
  if (!v) fail(fmt::format("{} is not JSON: {}\n{}", what, v.error().message, text));
  return *v;
}

const json::object& obj(const json::value& v) {
  if (!v.is_object()) fail("not a JSON object: " + to_json(v));
  return v.as_object();
}

std::string str(const json::value& v, std::string_view key) {
  if (!v.is_object()) return {};
  const auto* x = v.as_object().if_contains(key);
  return x && x->is_string() ? std::string(x->as_string()) : std::string();
}

int64_t i64(const json::value& v, std::string_view key) {
  if (!v.is_object()) return 0;
  const auto* x = v.as_object().if_contains(key);
  if (!x) return 0;
  if (x->is_int64()) return x->as_int64();
  if (x->is_uint64()) return static_cast<int64_t>(x->as_uint64());
  return 0;
}

bool boolean(const json::value& v, std::string_view key) {
  if (!v.is_object()) return false;
  const auto* x = v.as_object().if_contains(key);
  return x && x->is_bool() && x->as_bool();
}

const json::array& arr(const json::value& v, std::string_view key) {
  const auto* x = obj(v).if_contains(key);
  if (!x || !x->is_array()) fail(fmt::format("no array \"{}\" in {}", key, to_json(v)));
  return x->as_array();
}

// GET http://ADDRESS:PORT/version of the app on that node.
std::string app_version_over_http(const json::value& node, const std::string& app) {
  const auto& a = obj(node).at("apps").as_object().at(app);
  const std::string url = fmt::format("http://{}:{}/version", str(node, "address"), i64(a, "port"));
  auto r = net::http_request("GET", url, {}, "", {.timeout = Millis(5'000)});
  if (!r) return "error: " + r.error().message;
  if (r->status != 200) return fmt::format("status {}", r->status);
  std::string body = r->body;
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r'))
    body.pop_back();
  return body;
}

// ---- the fixture ----------------------------------------------------------------------------

void E2eTest::SetUp() {
  const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string tmpl = fmt::format("/tmp/slipway-e2e-{}-XXXXXX", t ? t->name() : "test");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    FAIL() << "cannot create a temporary directory: " << std::strerror(errno);
  }
  dir_ = tmpl;
}

void E2eTest::TearDown() {
  if (lab_started_ && HasFailure()) {
    // The last lines of every log, to see what went wrong.
    std::vector<fs::path> logs = {dir_ / "lab" / "server" / "server.log"};
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir_ / "lab" / "nodes", ec)) {
      logs.push_back(e.path() / "agent.log");
    }
    for (const auto& l : logs) {
      std::cerr << "---- " << l.string() << " (last lines) ----\n" << tail_lines(l, 40) << "\n";
    }
  }
  if (auto st = lab_.down(); !st) ADD_FAILURE() << "lab down: " << st.error().message;
  for (const auto& d : detached_labs_) {
    if (fs::exists(d / "lab.json")) (void)lab::down_from_state(d);
  }
  if (!dir_.empty()) {
    stop_processes_under(dir_);
    if (std::getenv("SLIPWAY_E2E_KEEP") != nullptr) {
      std::cerr << "[e2e] kept " << dir_.string() << "\n";
    } else {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
}

void E2eTest::start_lab(int nodes, const std::string& env) {
  lab::NodePlan plan;
  plan.count = nodes;
  plan.env = env;
  plan.roles = {"api"};
  plan.zones = {"a", "b"};
  plan.first_address = unique_first_address(std::max(nodes, 1));
  auto specs = lab::make_nodes(plan);
  if (!specs) fail("make_nodes: " + specs.error().message);
  lab::LabOptions o;
  o.dir = dir_ / "lab";
  o.slipway_bin = lab_bin_.empty() ? fs::path(SLIPWAY_BIN) : lab_bin_;
  o.nodes = std::move(*specs);
  o.server_args = server_args_;
  o.progress = [this](const std::string& line) { lab_events_.push_back(line); };
  lab_started_ = true;
  auto info = lab_.up(o);
  if (!info) fail("the lab did not come up: " + info.error().message);
}

void E2eTest::add_agent(const std::string& name, const std::string& env) {
  if (info().nodes.empty()) fail("add_agent: start the lab first");
  // The next address of the block unique_first_address handed out (16 addresses per block).
  in_addr a{};
  ::inet_pton(AF_INET, info().nodes.back().spec.address.c_str(), &a);
  a.s_addr = htonl(ntohl(a.s_addr) + 1);
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &a, text, sizeof text);
  lab::NodeSpec spec;
  spec.name = name;
  spec.env = env;
  spec.roles = {"api"};
  spec.zone = "a";
  spec.address = text;
  if (auto st = lab_.add_node(spec); !st) fail("add_node " + name + ": " + st.error().message);
}

fs::path E2eTest::node_root(const std::string& name) const {
  for (const auto& n : info().nodes) {
    if (n.spec.name == name) return n.root;
  }
  fail("no node " + name + " in the lab");
}

fs::path E2eTest::release(const std::string& version, const ReleaseOptions& o) {
  lab::SampleRelease r;
  r.out_dir = dir_ / o.out_subdir;
  r.app = o.app;
  r.version = version;
  r.sample_binary = SLIPWAY_SAMPLE_SERVICE;
  r.healthy = o.healthy;
  r.health_timeout = o.health_timeout;
  r.healthy_for = o.healthy_for;
  r.interval = o.interval;
  r.message = o.message.empty() ? fmt::format("{} {}", o.app, version) : o.message;
  r.extra_manifest = o.extra_manifest;
  if (!o.after_install.empty()) r.after_install = o.after_install;
  r.extra_files = o.extra_files;
  auto p = lab::build_sample_release(r);
  if (!p) fail("build_sample_release: " + p.error().message);
  return *p;
}

ProcResult E2eTest::cli_env(const std::vector<std::string>& args,
                            const std::map<std::string, std::string>& env, Millis timeout) {
  std::vector<std::string> argv = {SLIPWAY_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::map<std::string, std::string> e = env;
  e.emplace("NO_COLOR", "1");
  e.emplace("SLIPWAY_SAMPLE_SERVICE", SLIPWAY_SAMPLE_SERVICE);
  return run_process(argv, e, timeout);
}

ProcResult E2eTest::cli(const std::vector<std::string>& args, Millis timeout) {
  std::map<std::string, std::string> env = {{"SLIPWAY_SERVER", info().server_url},
                                            {"SLIPWAY_TOKEN", info().admin_token}};
  if (!info().ca_cert.empty()) env["SLIPWAY_CA_CERT"] = info().ca_cert;
  return cli_env(args, env, timeout);
}

ProcResult E2eTest::cli_stdin(const std::vector<std::string>& args, const std::string& input) {
  const fs::path file = dir_ / fmt::format("stdin-{}", ++stdin_files_);
  {
    std::ofstream out(file, std::ios::binary);
    out << input;
  }
  std::vector<std::string> argv = {"/bin/sh", "-c", R"(exec "$0" "$@" < "$SLIPWAY_TEST_STDIN")",
                                   SLIPWAY_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::map<std::string, std::string> env = {{"NO_COLOR", "1"},
                                            {"SLIPWAY_SERVER", info().server_url},
                                            {"SLIPWAY_TOKEN", info().admin_token},
                                            {"SLIPWAY_TEST_STDIN", file.string()}};
  if (!info().ca_cert.empty()) env["SLIPWAY_CA_CERT"] = info().ca_cert;
  auto r = run_process(argv, env, Millis(90'000));
  fs::remove(file);
  return r;
}

json::value E2eTest::cli_json(std::vector<std::string> args) {
  std::string what = "slipway";
  for (const auto& a : args)
    what += " " + a;
  args.insert(args.end(), {"-o", "json"});
  auto r = cli(args);
  if (r.exit_code != 0) fail(fmt::format("{} failed: {}", what, r.describe()));
  return parse(r.out, "the output of " + what);
}

ProcResult E2eTest::push(const fs::path& file, const std::string& app, const std::string& version) {
  return cli({"push", file.string(), "--app", app, "--version", version});
}

net::HttpResult E2eTest::http(const std::string& method, const std::string& target,
                              const std::string& body, net::Headers headers,
                              std::optional<std::string> token) {
  const std::string t = token ? *token : info().admin_token;
  if (!t.empty()) headers["Authorization"] = "Bearer " + t;
  if (!body.empty() && !headers.contains("Content-Type"))
    headers["Content-Type"] = "application/json";
  auto r = net::http_request(
      method, info().server_url + target, headers, body,
      {.timeout = Millis(30'000), .tls = {.ca_file = info().ca_cert, .ca_pin = ""}});
  if (!r) fail(fmt::format("{} {}: {}", method, target, r.error().message));
  return *r;
}

json::value E2eTest::get_json(const std::string& target) {
  auto r = http("GET", target);
  if (r.status != 200) fail(fmt::format("GET {} answered {}: {}", target, r.status, r.body));
  return parse(r.body, "GET " + target);
}

std::map<std::string, json::value> E2eTest::status_by_node(const std::string& env) {
  std::map<std::string, json::value> out;
  const auto status = get_json("/api/v1/status?env=" + env);
  for (const auto& n : arr(status, "nodes"))
    out[str(n, "name")] = n;
  return out;
}

int64_t E2eTest::artifact_downloads() {
  return i64(get_json("/api/v1/stats"), "artifact_downloads");
}

json::value E2eTest::latest_deploy() {
  const auto deploys = get_json("/api/v1/deploys?limit=1");
  const auto& list = arr(deploys, "deploys");
  if (list.empty()) fail("there is no deploy in the history");
  return list.front();
}

json::value E2eTest::deploy(int64_t id) {
  return get_json(fmt::format("/api/v1/deploys/{}", id));
}

json::value E2eTest::wait_deploy_finished(int64_t id, Millis timeout) {
  json::value d;
  const bool done = wait_until(
      [&] {
        d = deploy(id);
        return str(d, "state") != "running";
      },
      timeout, Millis(200));
  if (!done)
    fail(fmt::format("deploy #{} still runs after {} ms: {}", id, timeout.count(), to_json(d)));
  return d;
}

}  // namespace slipway::e2e
