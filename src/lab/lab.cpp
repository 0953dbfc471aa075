#include "lab/lab.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/json.h"
#include "common/names.h"
#include "common/strings.h"
#include "net/http_client.h"

extern char** environ;

namespace slipway::lab {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr Millis kPollInterval{50};
constexpr Millis kNodesPollInterval{200};
constexpr Millis kKillGrace{5'000};  // after SIGKILL, how long a process may take to disappear
constexpr Millis kHttpTimeout{5'000};

fs::path server_dir(const fs::path& dir) {
  return dir / "server";
}
fs::path state_file(const fs::path& dir) {
  return dir / "lab.json";
}

// ---- addresses ------------------------------------------------------------------------------

Result<uint32_t> parse_loopback(std::string_view text) {
  in_addr a{};
  const std::string s(text);
  if (::inet_pton(AF_INET, s.c_str(), &a) != 1) {
    return err(Errc::invalid_argument, fmt::format("'{}' is not an IPv4 address", text));
  }
  const uint32_t v = ntohl(a.s_addr);
  if ((v >> 24) != 127) {
    return err(Errc::invalid_argument,
               fmt::format("{} is not a loopback address (127.0.0.0/8)", text));
  }
  if (v == 0x7f000000u || v == 0x7fffffffu) {
    return err(Errc::invalid_argument,
               fmt::format("{} is the network or broadcast address of 127.0.0.0/8", text));
  }
  return v;
}

std::string format_ipv4(uint32_t v) {
  return fmt::format("{}.{}.{}.{}", v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff);
}

Status validate_spec(const NodeSpec& n) {
  if (auto s = validate_name(NameKind::node, n.name); !s) return s;
  if (auto s = validate_name(NameKind::env, n.env); !s) return s;
  for (const auto& r : n.roles) {
    if (auto s = validate_name(NameKind::role, r); !s) return s;
  }
  if (!n.zone.empty()) {
    if (auto s = validate_name(NameKind::zone, n.zone); !s) return s;
  }
  for (const auto& [k, v] : n.tags) {
    if (auto s = validate_name(NameKind::tag_key, k); !s) return s;
    if (auto s = validate_name(NameKind::tag_value, v); !s) return s;
  }
  if (auto a = parse_loopback(n.address); !a) {
    return err(Errc::invalid_argument, fmt::format("node {}: {}", n.name, a.error().message));
  }
  return {};
}

// ---- processes ------------------------------------------------------------------------------

void sleep_for(Millis d) {
  std::this_thread::sleep_for(d);
}

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exited with code {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return fmt::format("was killed by signal {}", WTERMSIG(status));
  return "stopped";
}

// Starts `args` (args[0] is the executable) with stdin from /dev/null and stdout and stderr
// appended to `log`, and our environment less the tokens. Detached: a new session. Attached:
// SIGTERM when the starting thread dies.
Result<pid_t> spawn(const std::vector<std::string>& args, const fs::path& log, bool detach) {
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return err(Errc::io, fmt::format("cannot open {}: {}", log.string(), std::strerror(errno)));
  }
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2];
  if (null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    ::close(log_fd);
    if (null_fd >= 0) ::close(null_fd);
    return err(Errc::io, fmt::format("cannot prepare to start a process: {}", std::strerror(e)));
  }
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // Our environment without tokens: an agent given its join token by --token-file refuses a
  // second one in $SLIPWAY_JOIN_TOKEN, and no process of the lab needs the user's API token.
  std::vector<char*> envp;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view kv(*e);
    if (!kv.starts_with("SLIPWAY_JOIN_TOKEN=") && !kv.starts_with("SLIPWAY_TOKEN=")) {
      envp.push_back(*e);
    }
  }
  envp.push_back(nullptr);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid == 0) {
    // The child: only async-signal-safe calls until exec.
    if (detach) {
      ::setsid();
    } else {
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) ::_exit(127);  // the parent died before prctl took effect
    }
    // The caller may block or ignore signals (a CLI waiting for Ctrl-C with sigwait); both
    // survive exec, and a child that cannot be stopped with SIGTERM is of no use here.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD})
      ::sigaction(s, &dfl, nullptr);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Descriptors the caller opened without O_CLOEXEC are not the child's business.
    ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    ::execve(argv[0], argv.data(), envp.data());
    const int e = errno;
    [[maybe_unused]] ssize_t n = ::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(log_fd);
  ::close(null_fd);
  ::close(exec_pipe[1]);
  if (pid < 0) {
    ::close(exec_pipe[0]);
    return err(Errc::io, fmt::format("cannot fork: {}", std::strerror(fork_errno)));
  }
  // The pipe closes on a successful exec; otherwise it carries exec's errno.
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return err(Errc::io, fmt::format("cannot run {}: {}", args.front(), std::strerror(exec_errno)));
  }
  return pid;
}

std::vector<std::string> read_cmdline(pid_t pid) {
  auto text = read_file(fmt::format("/proc/{}/cmdline", pid), 1 << 20);
  if (!text) return {};
  return split(*text, '\0');
}

// Whether the process exists and is not a zombie (for processes that are not our children).
bool proc_alive(pid_t pid) {
  auto stat = read_file(fmt::format("/proc/{}/stat", pid), 4096);
  if (!stat) return false;
  // "PID (COMM) STATE ...": COMM may hold spaces and parentheses; STATE follows the last ')'.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return false;
  const char state = (*stat)[close + 2];
  return state != 'Z' && state != 'X';
}

// What identifies a process the lab started, for processes that are not our children: its
// subcommand and one flag with its value ("agent" "--root" ROOT, "server" "--data" DIR).
struct Identity {
  std::string subcommand;
  std::string flag;
  std::string value;
};

bool matches(pid_t pid, const Identity& id) {
  const auto args = read_cmdline(pid);
  if (args.size() < 2 || args[1] != id.subcommand) return false;
  for (size_t i = 2; i + 1 < args.size(); ++i) {
    if (args[i] == id.flag && args[i + 1] == id.value) return true;
  }
  return false;
}

std::optional<fs::path> read_link(const std::string& path) {
  char buf[4096];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return std::nullopt;
  std::string s(buf, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)";
  if (s.size() > kDeleted.size() && s.ends_with(kDeleted)) s.resize(s.size() - kDeleted.size());
  return fs::path(s);
}

bool is_under(const fs::path& p, const fs::path& dir) {
  const std::string a = p.lexically_normal().string();
  std::string d = dir.lexically_normal().string();
  if (!d.ends_with('/')) d += '/';
  return a.starts_with(d);
}

// A process whose working directory or executable lies under `dir`: an app an agent started.
bool runs_under(pid_t pid, const fs::path& dir) {
  for (const char* what : {"cwd", "exe"}) {
    if (auto p = read_link(fmt::format("/proc/{}/{}", pid, what)); p && is_under(*p, dir)) {
      return true;
    }
  }
  return false;
}

// Our own processes (readlink on another user's /proc entries fails) that run under `dir`.
std::vector<pid_t> processes_under(const fs::path& dir) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  const pid_t self = ::getpid();
  const pid_t parent = ::getppid();
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == self || pid == parent) continue;
    if (runs_under(static_cast<pid_t>(pid), dir) && proc_alive(static_cast<pid_t>(pid))) {
      out.push_back(static_cast<pid_t>(pid));
    }
  }
  ::closedir(d);
  return out;
}

// A process to stop. Our children are reaped with waitpid; other processes are watched through
// /proc and only signalled while `still_ours` holds (a pid may be recycled while we wait).
struct Target {
  pid_t pid = 0;
  std::string label;  // "server", "agent node-1", ...
  bool child = false;
  std::function<bool(pid_t)> still_ours;
  bool gone = false;
  bool signalled = false;  // a signal was sent while it ran
  bool exited_0 = false;   // a child that exited with code 0
  std::string how;         // how it ended, for children
  fs::path log;            // its output, quoted when it ends badly
};

bool check_gone(Target& t) {
  if (t.gone) return true;
  if (t.child) {
    int status = 0;
    const pid_t r = ::waitpid(t.pid, &status, WNOHANG);
    if (r == t.pid) {
      t.how = describe_wait_status(status);
      t.exited_0 = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      t.gone = true;
    } else if (r < 0 && errno == ECHILD) {
      t.gone = true;
    }
  } else {
    t.gone = !proc_alive(t.pid) || !t.still_ours(t.pid);
  }
  return t.gone;
}

void signal_target(Target& t, int sig) {
  if (check_gone(t)) return;
  ::kill(t.pid, sig);
  t.signalled = true;
}

bool wait_all(std::vector<Target>& ts, Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  for (;;) {
    bool all = true;
    for (auto& t : ts)
      all = check_gone(t) && all;
    if (all) return true;
    if (SteadyClock::now() >= deadline) return false;
    sleep_for(Millis(20));
  }
}

// `sig` to every target; those still there after `timeout` get SIGKILL. Errors name the
// processes that did not go away even then.
Status stop_targets(std::vector<Target>& ts, int sig, Millis timeout) {
  for (auto& t : ts)
    signal_target(t, sig);
  if (!wait_all(ts, timeout) && sig != SIGKILL) {
    for (auto& t : ts) {
      if (!check_gone(t)) {
        spdlog::warn("lab: {} (pid {}) did not stop within {} ms of signal {}; killing it", t.label,
                     t.pid, timeout.count(), sig);
        signal_target(t, SIGKILL);
      }
    }
    wait_all(ts, kKillGrace);
  }
  std::vector<std::string> left;
  for (auto& t : ts) {
    if (!check_gone(t)) left.push_back(fmt::format("{} (pid {})", t.label, t.pid));
  }
  if (!left.empty()) {
    return err(Errc::io, fmt::format("could not stop {}", join(left, ", ")));
  }
  return {};
}

// Stops the apps that agents started and left behind (their cwd or executable is under
// `nodes_dir`): the lab promises that nothing it brought up outlives it.
void sweep_apps(const fs::path& nodes_dir, Millis timeout) {
  std::vector<Target> ts;
  for (pid_t pid : processes_under(nodes_dir)) {
    Target t;
    t.pid = pid;
    t.label = fmt::format("app process {}", pid);
    t.still_ours = [nodes_dir](pid_t p) { return runs_under(p, nodes_dir); };
    ts.push_back(std::move(t));
  }
  if (ts.empty()) return;
  if (auto s = stop_targets(ts, SIGTERM, timeout); !s) spdlog::warn("lab: {}", s.error().message);
}

// The last lines of a log file, for error messages.
std::string log_tail(const fs::path& log, size_t max_lines = 25, size_t max_bytes = 6000) {
  const int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fmt::format("({} cannot be read)", log.string());
  struct stat st {};
  ::fstat(fd, &st);
  const off_t size = st.st_size;
  const off_t from = size > static_cast<off_t>(max_bytes) ? size - max_bytes : 0;
  std::string buf(static_cast<size_t>(size - from), '\0');
  const ssize_t n = ::pread(fd, buf.data(), buf.size(), from);
  ::close(fd);
  buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
  auto lines = split(buf, '\n');
  if (from > 0 && !lines.empty()) lines.erase(lines.begin());  // a partial first line
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - max_lines);
  if (lines.empty()) return fmt::format("({} is empty)", log.string());
  std::string out = fmt::format("last lines of {}:", log.string());
  for (const auto& l : lines)
    out += "\n  " + l;
  return out;
}

// After SIGTERM or SIGINT, the children that did not exit with code 0 (a crash while stopping,
// a sanitizer's report), each with how it ended and the tail of its log.
Status judge_exits(const std::vector<Target>& ts, int sig) {
  if (sig != SIGTERM && sig != SIGINT) return {};
  std::vector<std::string> bad;
  for (const auto& t : ts) {
    if (!t.child || !t.signalled || !t.gone || t.exited_0) continue;
    std::string line = fmt::format("{} (pid {}) {} after signal {}", t.label, t.pid,
                                   t.how.empty() ? "ended" : t.how, sig);
    if (!t.log.empty())
      line += fmt::format("; the end of {}:\n{}", t.log.string(), log_tail(t.log));
    bad.push_back(std::move(line));
  }
  if (bad.empty()) return {};
  return err(Errc::io, fmt::format("not a clean stop: {}", join(bad, "\n")));
}

Result<std::string> read_token(const fs::path& p) {
  auto text = read_file(p, 4096);
  if (!text) return text.error();
  std::string t(trim(*text));
  if (t.empty()) return err(Errc::io, fmt::format("{} is empty", p.string()));
  return t;
}

// ---- lab.json -------------------------------------------------------------------------------

json::value state_to_json(const LabInfo& info) {
  json::array nodes;
  for (const auto& n : info.nodes) {
    json::array roles;
    for (const auto& r : n.spec.roles)
      roles.emplace_back(r);
    json::object tags;
    for (const auto& [k, v] : n.spec.tags)
      tags[k] = v;
    json::object o;
    o["name"] = n.spec.name;
    o["env"] = n.spec.env;
    o["roles"] = std::move(roles);
    o["zone"] = n.spec.zone;
    o["tags"] = std::move(tags);
    o["address"] = n.spec.address;
    o["pid"] = n.pid;
    o["root"] = n.root.string();
    o["log"] = n.log.string();
    nodes.emplace_back(std::move(o));
  }
  json::object o;
  o["dir"] = info.dir.string();
  o["slipway_bin"] = info.slipway_bin.string();
  o["server_url"] = info.server_url;
  o["admin_token"] = info.admin_token;
  o["join_token"] = info.join_token;
  o["server_pid"] = info.server_pid;
  o["detached"] = info.detached;
  o["nodes"] = std::move(nodes);
  return o;
}

Result<LabInfo> state_from_json(const json::value& v) {
  LabInfo info;
  JsonReader r(v, "lab.json");
  info.dir = r.str("dir");
  info.slipway_bin = r.str("slipway_bin");
  info.server_url = r.str_or("server_url", "");
  info.admin_token = r.str_or("admin_token", "");
  info.join_token = r.str_or("join_token", "");
  info.server_pid = static_cast<pid_t>(r.i64_or("server_pid", 0));
  info.detached = r.boolean_or("detached", false);
  if (const auto* nodes = r.opt_array("nodes")) {
    for (size_t i = 0; i < nodes->size(); ++i) {
      NodeInfo n;
      JsonReader nr((*nodes)[i], fmt::format("lab.json nodes[{}]", i));
      n.spec.name = nr.str("name");
      n.spec.env = nr.str_or("env", "");
      n.spec.roles = nr.str_list("roles");
      n.spec.zone = nr.str_or("zone", "");
      n.spec.tags = nr.str_map("tags");
      n.spec.address = nr.str_or("address", "");
      n.pid = static_cast<pid_t>(nr.i64_or("pid", 0));
      n.root = nr.str("root");
      n.log = nr.str_or("log", "");
      if (auto s = nr.finish(true); !s) return s.error();
      info.nodes.push_back(std::move(n));
    }
  }
  if (auto s = r.finish(true); !s) return s.error();
  return info;
}

Identity server_identity(const LabInfo& info) {
  return {"server", "--data", server_dir(info.dir).string()};
}
Identity agent_identity(const NodeInfo& n) {
  return {"agent", "--root", n.root.string()};
}

// Whether lab.json in `dir` lists a process that still runs.
std::optional<std::string> running_process_in_state(const fs::path& dir) {
  auto st = load_state(dir);
  if (!st) return std::nullopt;
  if (st->server_pid > 0 && proc_alive(st->server_pid) &&
      matches(st->server_pid, server_identity(*st))) {
    return fmt::format("server (pid {})", st->server_pid);
  }
  for (const auto& n : st->nodes) {
    if (n.pid > 0 && proc_alive(n.pid) && matches(n.pid, agent_identity(n))) {
      return fmt::format("agent {} (pid {})", n.spec.name, n.pid);
    }
  }
  return std::nullopt;
}

}  // namespace

// ---- make_nodes -----------------------------------------------------------------------------

Result<std::vector<NodeSpec>> make_nodes(const NodePlan& plan) {
  if (plan.count < 0 || plan.count > kMaxLabNodes) {
    return err(Errc::invalid_argument,
               fmt::format("a lab has 0 to {} nodes, not {}", kMaxLabNodes, plan.count));
  }
  // Zones: all plain (round-robin) or all NAME:COUNT (in order, adding up to count).
  std::vector<std::string> zone_of;
  if (!plan.zones.empty()) {
    size_t with_count = 0;
    for (const auto& z : plan.zones)
      with_count += z.find(':') != std::string::npos;
    if (with_count != 0 && with_count != plan.zones.size()) {
      return err(Errc::invalid_argument,
                 "zones must either all name a count (a:2,b:3) or none (a,b)");
    }
    if (with_count == 0) {
      for (const auto& z : plan.zones) {
        if (auto s = validate_name(NameKind::zone, z); !s) return s.error();
      }
      for (int i = 0; i < plan.count; ++i)
        zone_of.push_back(plan.zones[i % plan.zones.size()]);
    } else {
      for (const auto& z : plan.zones) {
        const size_t colon = z.find(':');
        const std::string name = z.substr(0, colon);
        const std::string num = z.substr(colon + 1);
        if (auto s = validate_name(NameKind::zone, name); !s) return s.error();
        if (num.empty() || num.size() > 4 ||
            !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          return err(Errc::invalid_argument,
                     fmt::format("zone '{}': the count after ':' must be a number", z));
        }
        zone_of.insert(zone_of.end(), std::stoul(num), name);
        if (zone_of.size() > static_cast<size_t>(kMaxLabNodes)) break;
      }
      if (zone_of.size() != static_cast<size_t>(plan.count)) {
        return err(Errc::invalid_argument,
                   fmt::format("the zone counts ({}) add up to {} nodes, not {}",
                               join(plan.zones, ","), zone_of.size(), plan.count));
      }
    }
  }
  auto first = parse_loopback(plan.first_address);
  if (!first) return first.error();
  if (plan.count > 0) {
    const uint64_t last = static_cast<uint64_t>(*first) + static_cast<uint64_t>(plan.count) - 1;
    if (last >= 0x7fffffffu) {
      return err(Errc::invalid_argument, fmt::format("{} nodes from {} would leave 127.0.0.0/8",
                                                     plan.count, plan.first_address));
    }
  }
  std::vector<NodeSpec> out;
  for (int i = 0; i < plan.count; ++i) {
    NodeSpec n;
    n.name = fmt::format("{}-{}", plan.name_prefix, i + 1);
    n.env = plan.env;
    n.roles = plan.roles;
    if (!zone_of.empty()) n.zone = zone_of[i];
    n.tags = plan.tags;
    n.address = format_ipv4(*first + static_cast<uint32_t>(i));
    if (auto s = validate_spec(n); !s) return s.error();
    out.push_back(std::move(n));
  }
  return out;
}

// ---- Lab ------------------------------------------------------------------------------------

Result<fs::path> self_executable() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    return err(Errc::io, fmt::format("cannot resolve /proc/self/exe: {}", ec.message()));
  }
  return p;
}

Lab::~Lab() {
  if (running_ && !info_.detached) {
    if (auto s = down(); !s) spdlog::warn("lab: {}", s.error().message);
  }
}

NodeInfo* Lab::find_node(const std::string& name) {
  for (auto& n : info_.nodes) {
    if (n.spec.name == name) return &n;
  }
  return nullptr;
}

Result<LabInfo> Lab::up(const LabOptions& opts) {
  if (running_) {
    return err(Errc::conflict,
               fmt::format("this lab is running already (in {})", info_.dir.string()));
  }
  if (opts.dir.empty()) return err(Errc::invalid_argument, "the lab directory is empty");
  if (opts.start_timeout.count() <= 0 || opts.stop_timeout.count() <= 0) {
    return err(Errc::invalid_argument, "lab timeouts must be positive");
  }
  std::set<std::string> names, addresses;
  for (const auto& n : opts.nodes) {
    if (auto s = validate_spec(n); !s) return s.error();
    if (!names.insert(n.name).second) {
      return err(Errc::invalid_argument, fmt::format("node name {} appears twice", n.name));
    }
    if (!addresses.insert(n.address).second) {
      return err(Errc::invalid_argument, fmt::format("address {} appears twice", n.address));
    }
  }

  opts_ = opts;
  std::error_code ec;
  const fs::path dir = fs::absolute(opts.dir, ec).lexically_normal();
  if (ec) return err(Errc::io, fmt::format("bad lab directory {}", opts.dir.string()));
  fs::path bin = opts.slipway_bin;
  if (bin.empty()) {
    auto self = self_executable();
    if (!self) return self.error();
    bin = *self;
  }
  bin = fs::absolute(bin, ec);
  if (::access(bin.c_str(), X_OK) != 0) {
    return err(
        Errc::not_found,
        fmt::format("the slipway binary {} does not exist or is not executable", bin.string()));
  }
  if (auto s = ensure_dir(dir); !s) return s.error();
  if (auto running = running_process_in_state(dir)) {
    return err(Errc::conflict,
               fmt::format("a lab is running in {} already ({}); stop it first with "
                           "`slipway lab down --dir {}`",
                           dir.string(), *running, dir.string()));
  }
  if (auto s = ensure_dir(server_dir(dir), 0700); !s) return s.error();

  info_ = LabInfo{};
  info_.dir = dir;
  info_.slipway_bin = bin;
  info_.detached = opts.detach;
  listen_ = opts.listen;
  for (const auto& spec : opts.nodes) {
    NodeInfo n;
    n.spec = spec;
    const fs::path node_dir = dir / "nodes" / spec.name;
    n.root = node_dir / "root";
    n.log = node_dir / "agent.log";
    if (auto s = ensure_dir(n.root, 0700); !s) return s.error();
    info_.nodes.push_back(std::move(n));
  }

  running_ = true;  // from here on, a failure stops what was started
  auto fail = [&](Error e) -> Result<LabInfo> {
    if (auto s = down(); !s) e.message += fmt::format(" (and then: {})", s.error().message);
    return e;
  };
  if (auto s = start_server_process(); !s) return fail(s.error());
  if (auto s = wait_for_server_url(); !s) return fail(s.error());
  for (auto& n : info_.nodes) {
    if (auto s = start_node_process(n); !s) return fail(s.error());
  }
  std::vector<std::string> all;
  for (const auto& n : info_.nodes)
    all.push_back(n.spec.name);
  if (auto s = wait_alive(all); !s) return fail(s.error());
  if (auto s = save_state(); !s) return fail(s.error());
  return info_;
}

void Lab::report(const std::string& line) const {
  if (opts_.progress) opts_.progress(line);
}

Status Lab::start_server_process() {
  const fs::path data = server_dir(info_.dir);
  // A fresh server.url is the signal that this server is listening: remove the old one first.
  std::error_code ec;
  fs::remove(data / "server.url", ec);
  if (ec) {
    return err(Errc::io,
               fmt::format("cannot remove {}: {}", (data / "server.url").string(), ec.message()));
  }
  std::vector<std::string> args = {
      info_.slipway_bin.string(), "server", "--data", data.string(), "--listen", listen_};
  if (!opts_.log_level.empty()) {
    args.insert(args.end(), {"--log-level", opts_.log_level});
  }
  args.insert(args.end(), opts_.server_args.begin(), opts_.server_args.end());
  auto pid = spawn(args, data / "server.log", info_.detached);
  if (!pid) return pid.error();
  info_.server_pid = *pid;
  report(fmt::format("started the server (pid {}), data in {}", *pid, data.string()));
  return {};
}

Status Lab::wait_for_server_url() {
  const fs::path data = server_dir(info_.dir);
  const fs::path log = data / "server.log";
  const auto deadline = SteadyClock::now() + opts_.start_timeout;
  auto died = [&]() -> std::optional<Error> {
    int status = 0;
    if (::waitpid(info_.server_pid, &status, WNOHANG) == info_.server_pid) {
      const pid_t pid = info_.server_pid;
      info_.server_pid = 0;
      return err(Errc::io, fmt::format("the server (pid {}) {} before it was ready; {}", pid,
                                       describe_wait_status(status), log_tail(log)));
    }
    return std::nullopt;
  };
  auto timed_out = [&](std::string_view what) {
    return err(Errc::timeout,
               fmt::format("the server (pid {}) {} within {}; {}", info_.server_pid, what,
                           format_duration(opts_.start_timeout), log_tail(log)));
  };

  std::string url;
  for (;;) {
    if (auto e = died()) return *e;
    if (auto text = read_file(data / "server.url", 4096)) {
      url = std::string(trim(*text));
      if (!url.empty()) break;
    }
    if (SteadyClock::now() >= deadline) return timed_out("did not write server.url");
    sleep_for(kPollInterval);
  }
  auto parsed = net::parse_url(url);
  if (!parsed) {
    return err(Errc::io, fmt::format("server.url holds '{}': {}", url, parsed.error().message));
  }
  // Restarts listen where this server listens, so that agents find it again even when the first
  // start asked for port 0.
  listen_ = parsed->host.find(':') != std::string::npos
                ? fmt::format("[{}]:{}", parsed->host, parsed->port)
                : fmt::format("{}:{}", parsed->host, parsed->port);
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  info_.server_url = url;
  info_.ca_cert = url.starts_with("https://") ? (data / "tls" / "ca.crt").string() : "";

  auto admin = read_token(data / "admin.token");
  if (!admin) return admin.error();
  auto join_token = read_token(data / "join.token");
  if (!join_token) return join_token.error();
  info_.admin_token = *admin;
  info_.join_token = *join_token;

  // server.url is written once listening; the liveness probe confirms that it answers.
  std::string last;
  for (;;) {
    if (auto e = died()) return *e;
    auto r = net::http_request(
        "GET", url + "/healthz", {}, "",
        {.timeout = kHttpTimeout, .tls = {.ca_file = info_.ca_cert, .ca_pin = ""}});
    if (r && r->status == 200) break;
    last = r ? fmt::format("status {}", r->status) : r.error().message;
    if (SteadyClock::now() >= deadline) {
      return timed_out(fmt::format("did not answer GET /healthz with 200 (last: {})", last));
    }
    sleep_for(kPollInterval);
  }
  report(fmt::format("server listening on {}", url));
  return {};
}

Status Lab::start_node_process(NodeInfo& n) {
  std::vector<std::string> args = {
      info_.slipway_bin.string(), "agent", "--server", info_.server_url,
      // The production way: the token stays off the command line (which every user can read).
      "--token-file", (server_dir(info_.dir) / "join.token").string(), "--name", n.spec.name,
      "--env", n.spec.env};
  if (!n.spec.roles.empty()) args.insert(args.end(), {"--roles", join(n.spec.roles, ",")});
  if (!n.spec.zone.empty()) args.insert(args.end(), {"--zone", n.spec.zone});
  for (const auto& [k, v] : n.spec.tags)
    args.insert(args.end(), {"--tag", std::string(k).append("=").append(v)});
  args.insert(args.end(), {"--root", n.root.string(), "--address", n.spec.address});
  if (!opts_.log_level.empty()) args.insert(args.end(), {"--log-level", opts_.log_level});
  auto pid = spawn(args, n.log, info_.detached);
  if (!pid) return pid.error();
  n.pid = *pid;
  report(fmt::format("started agent {} on {} (pid {})", n.spec.name, n.spec.address, *pid));
  return {};
}

Status Lab::wait_alive(const std::vector<std::string>& names) {
  if (names.empty()) return {};
  const auto deadline = SteadyClock::now() + opts_.start_timeout;
  std::set<std::string> reported;
  std::string last_problem;
  std::map<std::string, std::string> states;  // name -> state, as last listed
  for (;;) {
    if (info_.server_pid > 0) {
      int status = 0;
      if (::waitpid(info_.server_pid, &status, WNOHANG) == info_.server_pid) {
        info_.server_pid = 0;
        return err(Errc::io, fmt::format("the server {} while agents were joining; {}",
                                         describe_wait_status(status),
                                         log_tail(server_dir(info_.dir) / "server.log")));
      }
    }
    for (const auto& name : names) {
      NodeInfo* n = find_node(name);
      if (n == nullptr || n->pid <= 0) continue;
      int status = 0;
      if (::waitpid(n->pid, &status, WNOHANG) == n->pid) {
        n->pid = 0;
        return err(Errc::io, fmt::format("agent {} {} before it was alive; {}", name,
                                         describe_wait_status(status), log_tail(n->log)));
      }
    }

    auto r = net::http_request(
        "GET", info_.server_url + "/api/v1/nodes",
        {{"Authorization", "Bearer " + info_.admin_token}}, "",
        {.timeout = kHttpTimeout, .tls = {.ca_file = info_.ca_cert, .ca_pin = ""}});
    if (!r) {
      last_problem = r.error().message;
    } else if (r->status != 200) {
      last_problem =
          fmt::format("GET /api/v1/nodes answered {}: {}", r->status, tail_bytes(r->body, 300));
    } else if (auto v = parse_json(r->body, "the node list"); !v) {
      last_problem = v.error().message;
    } else {
      last_problem.clear();
      const json::value* nodes = v->is_object() ? v->as_object().if_contains("nodes") : nullptr;
      if (nodes != nullptr && nodes->is_array()) {
        for (const auto& e : nodes->as_array()) {
          if (!e.is_object()) continue;
          const auto* name = e.as_object().if_contains("name");
          const auto* state = e.as_object().if_contains("state");
          if (name && name->is_string() && state && state->is_string()) {
            states[std::string(name->as_string())] = std::string(state->as_string());
          }
        }
      } else {
        last_problem = "the node list has no \"nodes\" array";
      }
    }
    std::vector<std::string> missing;
    for (const auto& name : names) {
      auto it = states.find(name);
      if (it != states.end() && it->second == "alive") {
        if (reported.insert(name).second) report(fmt::format("{} is alive", name));
      } else {
        missing.push_back(name);
      }
    }
    if (missing.empty()) return {};
    if (SteadyClock::now() >= deadline) {
      std::vector<std::string> why;
      for (const auto& m : missing) {
        auto it = states.find(m);
        why.push_back(it == states.end() ? m + " (never registered)"
                                         : fmt::format("{} ({})", m, it->second));
      }
      std::string msg = fmt::format("not every agent was alive within {}: {}",
                                    format_duration(opts_.start_timeout), join(why, ", "));
      if (!last_problem.empty()) msg += fmt::format("; last error: {}", last_problem);
      if (NodeInfo* n = find_node(missing.front())) msg += "; " + log_tail(n->log);
      return err(Errc::timeout, msg);
    }
    sleep_for(kNodesPollInterval);
  }
}

Status Lab::wait_for_nodes() {
  if (!running_) return err(Errc::failed_precondition, "the lab is not running");
  std::vector<std::string> names;
  for (const auto& n : info_.nodes) {
    if (n.pid > 0) names.push_back(n.spec.name);
  }
  return wait_alive(names);
}

Status Lab::add_node(const NodeSpec& spec) {
  if (!running_) return err(Errc::failed_precondition, "the lab is not running");
  if (auto s = validate_spec(spec); !s) return s;
  for (const auto& n : info_.nodes) {
    if (n.spec.name == spec.name) {
      return err(Errc::conflict, fmt::format("the lab has a node {} already", spec.name));
    }
    if (n.spec.address == spec.address) {
      return err(Errc::conflict,
                 fmt::format("node {} has address {} already", n.spec.name, spec.address));
    }
  }
  NodeInfo n;
  n.spec = spec;
  const fs::path node_dir = info_.dir / "nodes" / spec.name;
  n.root = node_dir / "root";
  n.log = node_dir / "agent.log";
  if (auto s = ensure_dir(n.root, 0700); !s) return s;
  if (auto s = start_node_process(n); !s) return s;
  info_.nodes.push_back(std::move(n));
  if (auto s = wait_alive({spec.name}); !s) {
    if (auto st = stop_node(spec.name, SIGTERM); !st) spdlog::warn("lab: {}", st.error().message);
    info_.nodes.pop_back();
    (void)save_state();
    return s;
  }
  return save_state();
}

Status Lab::stop_node(const std::string& name, int signal) {
  NodeInfo* n = find_node(name);
  if (n == nullptr) return err(Errc::not_found, fmt::format("the lab has no node {}", name));
  if (n->pid <= 0) return err(Errc::failed_precondition, fmt::format("{} is not running", name));
  std::vector<Target> ts(1);
  ts[0].pid = n->pid;
  ts[0].label = "agent " + name;
  ts[0].child = true;
  ts[0].log = n->log;
  auto s = stop_targets(ts, signal, opts_.stop_timeout);
  if (!s) return s;
  n->pid = 0;
  report(fmt::format("stopped agent {} ({})", name, ts[0].how));
  if (auto st = save_state(); !st) return st;
  return judge_exits(ts, signal);
}

Status Lab::start_node(const std::string& name) {
  if (!running_) return err(Errc::failed_precondition, "the lab is not running");
  NodeInfo* n = find_node(name);
  if (n == nullptr) return err(Errc::not_found, fmt::format("the lab has no node {}", name));
  if (n->pid > 0) return err(Errc::conflict, fmt::format("{} is running already", name));
  if (auto s = start_node_process(*n); !s) return s;
  return save_state();
}

Status Lab::stop_server(int signal) {
  if (info_.server_pid <= 0) return err(Errc::failed_precondition, "the server is not running");
  std::vector<Target> ts(1);
  ts[0].pid = info_.server_pid;
  ts[0].label = "server";
  ts[0].child = true;
  ts[0].log = server_dir(info_.dir) / "server.log";
  auto s = stop_targets(ts, signal, opts_.stop_timeout);
  if (!s) return s;
  info_.server_pid = 0;
  report(fmt::format("stopped the server ({})", ts[0].how));
  if (auto st = save_state(); !st) return st;
  return judge_exits(ts, signal);
}

Status Lab::start_server() {
  if (!running_) return err(Errc::failed_precondition, "the lab is not running");
  if (info_.server_pid > 0) return err(Errc::conflict, "the server is running already");
  if (auto s = start_server_process(); !s) return s;
  if (auto s = wait_for_server_url(); !s) {
    if (info_.server_pid > 0) {
      std::vector<Target> ts(1);
      ts[0].pid = info_.server_pid;
      ts[0].label = "server";
      ts[0].child = true;
      (void)stop_targets(ts, SIGTERM, opts_.stop_timeout);
      info_.server_pid = 0;
    }
    return s;
  }
  return save_state();
}

Status Lab::down(StopOrder order) {
  if (!running_) return {};
  std::vector<Target> agents;
  for (const auto& n : info_.nodes) {
    if (n.pid <= 0) continue;
    Target t;
    t.pid = n.pid;
    t.label = "agent " + n.spec.name;
    t.child = true;
    t.log = n.log;
    agents.push_back(std::move(t));
  }
  std::vector<Target> server;
  if (info_.server_pid > 0) {
    Target t;
    t.pid = info_.server_pid;
    t.label = "server";
    t.child = true;
    t.log = server_dir(info_.dir) / "server.log";
    server.push_back(std::move(t));
  }
  Status result;
  if (order == StopOrder::together) {
    for (auto& t : server)
      agents.push_back(std::move(t));
    server.clear();
    result = stop_targets(agents, SIGTERM, opts_.stop_timeout);
  } else {
    result = stop_targets(agents, SIGTERM, opts_.stop_timeout);
    if (auto s = stop_targets(server, SIGTERM, opts_.stop_timeout); !s && result) result = s;
  }
  std::vector<Target> all = agents;
  all.insert(all.end(), server.begin(), server.end());
  if (auto s = judge_exits(all, SIGTERM); !s && result) result = s;
  sweep_apps(info_.dir / "nodes", opts_.stop_timeout);
  for (auto& n : info_.nodes)
    n.pid = 0;
  info_.server_pid = 0;
  running_ = false;
  std::error_code ec;
  fs::remove(state_file(info_.dir), ec);
  if (!agents.empty() || !server.empty()) report("stopped the lab");
  return result;
}

Status Lab::save_state() const {
  return write_file_atomic(state_file(info_.dir), to_json(state_to_json(info_)), 0600);
}

// ---- lab.json, from another process ---------------------------------------------------------

Result<LabInfo> load_state(const fs::path& dir) {
  const fs::path file = state_file(dir);
  auto text = read_file(file, 16 << 20);
  if (!text) {
    if (text.error().code == Errc::not_found) {
      return err(Errc::not_found,
                 fmt::format("no lab runs in {} ({} does not exist)", dir.string(), file.string()));
    }
    return text.error();
  }
  auto v = parse_json(*text, file.string());
  if (!v) return v.error();
  return state_from_json(*v);
}

Status down_from_state(const fs::path& dir) {
  auto st = load_state(dir);
  if (!st) return st.error();
  std::vector<Target> agents;
  for (const auto& n : st->nodes) {
    if (n.pid <= 0) continue;
    Target t;
    t.pid = n.pid;
    t.label = "agent " + n.spec.name;
    const Identity id = agent_identity(n);
    t.still_ours = [id](pid_t p) { return matches(p, id); };
    agents.push_back(std::move(t));
  }
  constexpr Millis kStopTimeout{10'000};
  Status result = stop_targets(agents, SIGTERM, kStopTimeout);
  std::vector<Target> server;
  if (st->server_pid > 0) {
    Target t;
    t.pid = st->server_pid;
    t.label = "server";
    const Identity id = server_identity(*st);
    t.still_ours = [id](pid_t p) { return matches(p, id); };
    server.push_back(std::move(t));
  }
  if (auto s = stop_targets(server, SIGTERM, kStopTimeout); !s && result) result = s;
  sweep_apps(st->dir / "nodes", kStopTimeout);
  if (result) {
    std::error_code ec;
    fs::remove(state_file(dir), ec);
  }
  return result;
}

}  // namespace slipway::lab
