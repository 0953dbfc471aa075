// The Lab's process management, against a stand-in for the slipway binary.
//
// The real `slipway server` and `slipway agent` are exercised by the end-to-end tests. Here the
// lab starts this very test binary instead: when it runs as `unit_lab server ...` or
// `unit_lab agent ...`, a static initializer below plays the part (before GoogleTest's main),
// keeping to the command-line contract the lab relies on:
//   server: writes DIR/admin.token and DIR/join.token, listens, writes DIR/server.url, answers
//           GET /healthz and GET /api/v1/nodes (with the admin token) over HTTP;
//   agent:  records its command line in ROOT/argv.txt and "NAME PID" in ROOT/fake-agent, which
//           the fake server reads to list it: alive while that process runs.
// Environment variables make them misbehave (see fake_server and fake_agent).
#include "lab/lab.h"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fs.h"
#include "common/strings.h"
#include "unit/lab/test_util.h"

namespace slipway::lab {
namespace {

using testing::eventually;
using testing::process_alive;
using testing::TempDir;

// ---- the stand-in ---------------------------------------------------------------------------

constexpr const char* kAdminToken = "admin-secret";
constexpr const char* kJoinToken = "join-secret";

std::string arg(const std::vector<std::string>& args, const std::string& flag) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag) return args[i + 1];
  }
  return {};
}

void write_atomically(const fs::path& p, const std::string& content, mode_t mode = 0644) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp);
    out << content;
  }
  ::chmod(tmp.c_str(), mode);
  fs::rename(tmp, p);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void respond(int fd, int status, const std::string& body) {
  const std::string out =
      "HTTP/1.1 " + std::to_string(status) +
      " X\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\nConnection: close\r\n\r\n" + body;
  [[maybe_unused]] ssize_t n = ::send(fd, out.data(), out.size(), MSG_NOSIGNAL);
}

std::string node_list(const fs::path& lab_dir) {
  std::string out = "{\"nodes\":[";
  bool first = true;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(lab_dir / "nodes", ec)) {
    std::istringstream in(slurp(e.path() / "root" / "fake-agent"));
    std::string name;
    pid_t pid = 0;
    if (!(in >> name >> pid)) continue;
    out += (first ? "" : ",");
    out += "{\"name\":\"" + name + "\",\"env\":\"staging\",\"state\":\"" +
           (process_alive(pid) ? "alive" : "lost") + "\"}";
    first = false;
  }
  return out + "]}";
}

// FAKE_SERVER_FAIL: exits 1 at once, with a message. FAKE_SERVER_HANG: never listens.
// FAKE_IGNORE_TERM: ignores SIGTERM.
// As the real server and agent do: SIGTERM is a clean stop, exit code 0 (the lab reports any
// other end after SIGTERM as an error).
void exit_0_on_term(int) {
  ::_exit(0);
}

int fake_server(const std::vector<std::string>& args) {
  const fs::path data = arg(args, "--data");
  const std::string listen = arg(args, "--listen");
  write_atomically(data / "fake-server.pid", std::to_string(::getpid()));
  ::signal(SIGTERM, std::getenv("FAKE_IGNORE_TERM") ? SIG_IGN : exit_0_on_term);
  if (std::getenv("FAKE_SERVER_FAIL")) {
    std::fprintf(stderr, "boom: cannot open the database\n");
    return 1;
  }
  if (std::getenv("FAKE_SERVER_HANG")) {
    for (;;)
      ::pause();
  }
  if (!fs::exists(data / "admin.token")) {
    write_atomically(data / "admin.token", std::string(kAdminToken) + "\n", 0600);
    write_atomically(data / "join.token", std::string(kJoinToken) + "\n", 0600);
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  const size_t colon = listen.rfind(':');
  ::inet_pton(AF_INET, listen.substr(0, colon).c_str(), &a.sin_addr);
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(listen.substr(colon + 1))));
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 64) != 0) {
    std::fprintf(stderr, "cannot listen on %s\n", listen.c_str());
    return 1;
  }
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  std::fprintf(stderr, "fake server listening on port %d\n", ntohs(a.sin_port));
  write_atomically(data / "server.url",
                   "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "\n");
  for (;;) {
    const int c = ::accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string req;
    char buf[4096];
    while (req.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.append(buf, static_cast<size_t>(n));
    }
    if (req.starts_with("GET /healthz ")) {
      respond(c, 200, "{\"ok\":true}");
    } else if (req.starts_with("GET /api/v1/nodes ")) {
      if (to_lower(req).find("authorization: bearer " + std::string(kAdminToken)) ==
          std::string::npos) {
        respond(c, 401, "{\"error\":\"unauthenticated\"}");
      } else {
        respond(c, 200, node_list(data.parent_path()));
      }
    } else {
      respond(c, 404, "{}");
    }
    ::close(c);
  }
}

// FAKE_AGENT_FAIL_NAME=NAME: that agent exits 2 at once. FAKE_AGENT_TERM_EXIT=N: exits N on
// SIGTERM, as a crash at shutdown would. FAKE_AGENT_APP: starts an "app" (a
// child in ROOT/app, in its own session, as a supervisor that leaves its app running would) and
// records its pid in ROOT/app.pid. FAKE_IGNORE_TERM: ignores SIGTERM.
int fake_agent(const std::vector<std::string>& args) {
  const fs::path root = arg(args, "--root");
  const std::string name = arg(args, "--name");
  write_atomically(root / "argv.txt", join(args, "\n") + "\n");
  ::signal(SIGTERM, std::getenv("FAKE_IGNORE_TERM") ? SIG_IGN : exit_0_on_term);
  // FAKE_AGENT_TERM_EXIT=N: says what a heap corrupted at shutdown says, and exits N on SIGTERM.
  if (const char* code = std::getenv("FAKE_AGENT_TERM_EXIT")) {
    static int term_exit = std::atoi(code);
    ::signal(SIGTERM, [](int) {
      constexpr char kMsg[] = "corrupted size vs. prev_size while consolidating\n";
      (void)!::write(2, kMsg, sizeof kMsg - 1);
      ::_exit(term_exit);
    });
  }
  if (const char* fail = std::getenv("FAKE_AGENT_FAIL_NAME"); fail && name == fail) {
    std::fprintf(stderr, "agent boom: %s cannot start\n", name.c_str());
    return 2;
  }
  // The lab gives the token in a file, never on the command line nor in the environment.
  if (trim(slurp(arg(args, "--token-file"))) != kJoinToken || std::getenv("SLIPWAY_JOIN_TOKEN") ||
      std::getenv("SLIPWAY_TOKEN")) {
    std::fprintf(stderr, "wrong join token\n");
    return 3;
  }
  if (std::getenv("FAKE_AGENT_APP")) {
    fs::create_directories(root / "app");
    const pid_t app = ::fork();
    if (app == 0) {
      ::setsid();
      if (::chdir((root / "app").c_str()) != 0) ::_exit(1);
      // Written once it runs in ROOT/app, so that the test never looks at it too early.
      write_atomically(root / "app.pid", std::to_string(::getpid()));
      for (;;)
        ::pause();
    }
    while (!fs::exists(root / "app.pid"))
      ::usleep(10'000);
  }
  write_atomically(root / "fake-agent", name + " " + std::to_string(::getpid()) + "\n");
  for (;;)
    ::pause();
}

// Runs before main: takes over when this binary was started as `server` or `agent`.
const bool kIsStandIn = [] {
  const std::string cmdline = slurp("/proc/self/cmdline");
  const auto args = split(cmdline, '\0');
  if (args.size() >= 2 && (args[1] == "server" || args[1] == "agent")) {
    std::_Exit(args[1] == "server" ? fake_server(args) : fake_agent(args));
  }
  return false;
}();

// ---- helpers --------------------------------------------------------------------------------

// Sets an environment variable for the lifetime of the guard (children inherit it).
class EnvGuard {
 public:
  EnvGuard(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~EnvGuard() { ::unsetenv(name_); }

 private:
  const char* name_;
};

// Kills (SIGKILL) whatever of `pids` still runs when the test ends, so that a failing test does
// not leave processes behind either.
struct KillOnExit {
  std::vector<pid_t> pids;
  ~KillOnExit() {
    for (pid_t p : pids) {
      if (p > 0 && process_alive(p)) ::kill(p, SIGKILL);
    }
  }
};

LabOptions options(const TempDir& tmp, int nodes) {
  LabOptions o;
  o.dir = tmp.path() / "lab";
  auto self = self_executable();
  EXPECT_TRUE(self);
  o.slipway_bin = *self;
  NodePlan plan;
  plan.count = nodes;
  plan.roles = {"api", "worker"};
  plan.zones = {"a:1", "b:" + std::to_string(nodes - 1)};
  plan.tags = {{"canary", "yes"}};
  if (nodes > 0) o.nodes = *make_nodes(plan);
  return o;
}

pid_t read_pid(const fs::path& p) {
  const std::string s = slurp(p);
  return s.empty() ? 0 : static_cast<pid_t>(std::stol(s));
}

std::vector<std::string> lines(const fs::path& p) {
  return split(slurp(p), '\n');
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---- tests ----------------------------------------------------------------------------------

TEST(Lab, UpStartsServerAndAgentsAndDownStopsThem) {
  TempDir tmp;
  Lab lab;
  auto opts = options(tmp, 3);
  std::vector<std::string> progress;
  opts.progress = [&](const std::string& line) { progress.push_back(line); };
  auto info = lab.up(opts);
  ASSERT_TRUE(info) << info.error().message;

  const fs::path dir = tmp.path() / "lab";
  EXPECT_EQ(info->dir, dir);
  EXPECT_TRUE(info->server_url.starts_with("http://127.0.0.1:")) << info->server_url;
  EXPECT_EQ(info->admin_token, kAdminToken);
  EXPECT_EQ(info->join_token, kJoinToken);
  EXPECT_TRUE(process_alive(info->server_pid));
  EXPECT_TRUE(fs::exists(dir / "server" / "server.log"));
  EXPECT_TRUE(contains(slurp(dir / "server" / "server.log"), "fake server listening"));
  ASSERT_EQ(info->nodes.size(), 3u);
  for (const auto& n : info->nodes) {
    EXPECT_TRUE(process_alive(n.pid)) << n.spec.name;
    EXPECT_EQ(n.root, dir / "nodes" / n.spec.name / "root");
    EXPECT_EQ(n.log, dir / "nodes" / n.spec.name / "agent.log");
    EXPECT_TRUE(fs::exists(n.log));
    EXPECT_TRUE(std::count(progress.begin(), progress.end(), n.spec.name + " is alive") == 1)
        << join(progress, "\n");
  }

  // The agent's command line, as the contract has it.
  const auto argv = lines(dir / "nodes" / "node-2" / "root" / "argv.txt");
  const std::vector<std::string> expected = {info->slipway_bin.string(),
                                             "agent",
                                             "--server",
                                             info->server_url,
                                             "--token-file",
                                             (dir / "server" / "join.token").string(),
                                             "--name",
                                             "node-2",
                                             "--env",
                                             "staging",
                                             "--roles",
                                             "api,worker",
                                             "--zone",
                                             "b",
                                             "--tag",
                                             "canary=yes",
                                             "--root",
                                             (dir / "nodes" / "node-2" / "root").string(),
                                             "--address",
                                             "127.0.0.12",
                                             "--log-level",
                                             "info"};
  EXPECT_EQ(argv, expected);

  // lab.json, readable only by the owner (it holds the tokens).
  struct stat st {};
  ASSERT_EQ(::stat((dir / "lab.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto state = load_state(dir);
  ASSERT_TRUE(state) << state.error().message;
  EXPECT_EQ(state->server_url, info->server_url);
  EXPECT_EQ(state->server_pid, info->server_pid);
  ASSERT_EQ(state->nodes.size(), 3u);
  EXPECT_EQ(state->nodes[1].spec.zone, "b");
  EXPECT_EQ(state->nodes[1].spec.tags.at("canary"), "yes");
  EXPECT_EQ(state->nodes[1].pid, info->nodes[1].pid);

  ASSERT_TRUE(lab.down());
  EXPECT_FALSE(process_alive(info->server_pid));
  for (const auto& n : info->nodes)
    EXPECT_FALSE(process_alive(n.pid));
  EXPECT_FALSE(fs::exists(dir / "lab.json"));
  EXPECT_TRUE(lab.down());  // idempotent
}

TEST(Lab, DestructorStopsEverything) {
  TempDir tmp;
  std::vector<pid_t> pids;
  {
    Lab lab;
    auto info = lab.up(options(tmp, 2));
    ASSERT_TRUE(info) << info.error().message;
    pids = {info->server_pid, info->nodes[0].pid, info->nodes[1].pid};
  }
  for (pid_t p : pids)
    EXPECT_FALSE(process_alive(p)) << p;
}

TEST(Lab, AServerThatDiesIsReportedWithItsLog) {
  TempDir tmp;
  EnvGuard fail("FAKE_SERVER_FAIL", "1");
  Lab lab;
  auto info = lab.up(options(tmp, 2));
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, Errc::io);
  EXPECT_TRUE(contains(info.error().message, "exited with code 1")) << info.error().message;
  EXPECT_TRUE(contains(info.error().message, "boom: cannot open the database"))
      << info.error().message;
  EXPECT_FALSE(fs::exists(tmp.path() / "lab" / "nodes" / "node-1" / "root" / "argv.txt"));
}

TEST(Lab, AServerThatNeverListensTimesOutAndIsStopped) {
  TempDir tmp;
  EnvGuard hang("FAKE_SERVER_HANG", "1");
  Lab lab;
  auto opts = options(tmp, 1);
  opts.start_timeout = Millis(300);
  auto info = lab.up(opts);
  ASSERT_FALSE(info);
  EXPECT_EQ(info.error().code, Errc::timeout);
  EXPECT_TRUE(contains(info.error().message, "server.url")) << info.error().message;
  const pid_t server = read_pid(tmp.path() / "lab" / "server" / "fake-server.pid");
  ASSERT_GT(server, 0);
  EXPECT_FALSE(process_alive(server));
}

TEST(Lab, AnAgentThatDiesIsReportedAndEverythingIsStopped) {
  TempDir tmp;
  EnvGuard fail("FAKE_AGENT_FAIL_NAME", "node-2");
  Lab lab;
  auto info = lab.up(options(tmp, 3));
  ASSERT_FALSE(info);
  EXPECT_TRUE(contains(info.error().message, "agent node-2 exited with code 2"))
      << info.error().message;
  EXPECT_TRUE(contains(info.error().message, "agent boom")) << info.error().message;
  EXPECT_FALSE(process_alive(read_pid(tmp.path() / "lab" / "server" / "fake-server.pid")));
  EXPECT_FALSE(fs::exists(tmp.path() / "lab" / "lab.json"));
}

TEST(Lab, StopAndStartNodesAndTheServer) {
  TempDir tmp;
  Lab lab;
  auto info = lab.up(options(tmp, 2));
  ASSERT_TRUE(info) << info.error().message;

  const pid_t old_agent = info->nodes[0].pid;
  ASSERT_TRUE(lab.stop_node("node-1", SIGKILL));
  EXPECT_FALSE(process_alive(old_agent));
  EXPECT_EQ(lab.info().nodes[0].pid, 0);
  EXPECT_EQ(load_state(tmp.path() / "lab")->nodes[0].pid, 0);  // lab.json follows
  EXPECT_EQ(lab.stop_node("node-1").error().code, Errc::failed_precondition);
  EXPECT_EQ(lab.stop_node("nobody").error().code, Errc::not_found);
  ASSERT_TRUE(lab.start_node("node-1"));
  EXPECT_EQ(lab.start_node("node-1").error().code, Errc::conflict);
  EXPECT_TRUE(process_alive(lab.info().nodes[0].pid));
  auto alive = lab.wait_for_nodes();
  EXPECT_TRUE(alive) << alive.error().message;

  // The server comes back on the same address, so that agents find it again.
  const std::string url = lab.info().server_url;
  const pid_t old_server = lab.info().server_pid;
  ASSERT_TRUE(lab.stop_server(SIGKILL));
  EXPECT_FALSE(process_alive(old_server));
  EXPECT_EQ(lab.stop_server().error().code, Errc::failed_precondition);
  auto restarted = lab.start_server();
  ASSERT_TRUE(restarted) << restarted.error().message;
  EXPECT_EQ(lab.info().server_url, url);
  EXPECT_NE(lab.info().server_pid, old_server);
  EXPECT_EQ(lab.start_server().error().code, Errc::conflict);
  alive = lab.wait_for_nodes();
  EXPECT_TRUE(alive) << alive.error().message;

  // A graceful stop, too.
  ASSERT_TRUE(lab.stop_node("node-2", SIGTERM));
  EXPECT_TRUE(lab.down());
}

TEST(Lab, AddNode) {
  TempDir tmp;
  Lab lab;
  auto info = lab.up(options(tmp, 2));
  ASSERT_TRUE(info) << info.error().message;
  NodeSpec extra{"late-1", "staging", {"api"}, "c", {}, "127.0.0.50"};
  auto added = lab.add_node(extra);
  ASSERT_TRUE(added) << added.error().message;
  ASSERT_EQ(lab.info().nodes.size(), 3u);
  EXPECT_TRUE(process_alive(lab.info().nodes[2].pid));
  EXPECT_EQ(load_state(tmp.path() / "lab")->nodes.size(), 3u);
  EXPECT_EQ(lab.add_node(extra).error().code, Errc::conflict);
  extra.name = "late-2";  // same address
  EXPECT_EQ(lab.add_node(extra).error().code, Errc::conflict);
  extra.address = "10.0.0.1";
  EXPECT_EQ(lab.add_node(extra).error().code, Errc::invalid_argument);
}

// The lab shows the production way: the join token in a file (the fake agent exits 3 when its
// --token-file does not hold it, or when a token reaches it through the environment), and agent
// roots readable by their user only.
TEST(Lab, AgentsGetTheJoinTokenFromAFileAndNoTokenFromTheEnvironment) {
  TempDir tmp;
  Lab lab;
  ::setenv("SLIPWAY_JOIN_TOKEN", "from-the-users-shell", 1);
  ::setenv("SLIPWAY_TOKEN", "slwt_the-users-api-token", 1);
  auto info = lab.up(options(tmp, 2));
  ::unsetenv("SLIPWAY_JOIN_TOKEN");
  ::unsetenv("SLIPWAY_TOKEN");
  ASSERT_TRUE(info) << info.error().message;
  for (const auto& n : info->nodes) {
    EXPECT_TRUE(process_alive(n.pid)) << n.spec.name;
    EXPECT_FALSE(contains(slurp(n.root / "argv.txt"), kJoinToken)) << n.spec.name;
    struct stat st {};
    ASSERT_EQ(::stat(n.root.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << n.spec.name;
  }
}

TEST(Lab, ProcessesThatIgnoreSigtermAreKilled) {
  TempDir tmp;
  EnvGuard ignore("FAKE_IGNORE_TERM", "1");
  Lab lab;
  auto opts = options(tmp, 2);
  opts.stop_timeout = Millis(200);
  auto info = lab.up(opts);
  ASSERT_TRUE(info) << info.error().message;
  // Stopped all the same, and reported: a process that needs SIGKILL did not stop cleanly.
  auto down = lab.down();
  ASSERT_FALSE(down);
  EXPECT_NE(down.error().message.find("not a clean stop"), std::string::npos)
      << down.error().message;
  EXPECT_NE(down.error().message.find("was killed by signal 9 after signal 15"), std::string::npos)
      << down.error().message;
  EXPECT_NE(down.error().message.find("server (pid"), std::string::npos) << down.error().message;
  EXPECT_FALSE(process_alive(info->server_pid));
  for (const auto& n : info->nodes)
    EXPECT_FALSE(process_alive(n.pid));
}

TEST(Lab, AnAgentThatDoesNotExit0AfterSigtermIsReportedWithItsLog) {
  TempDir tmp;
  EnvGuard crash("FAKE_AGENT_TERM_EXIT", "134");
  Lab lab;
  auto info = lab.up(options(tmp, 2));
  ASSERT_TRUE(info) << info.error().message;
  auto down = lab.down(Lab::StopOrder::together);
  ASSERT_FALSE(down);
  const auto& m = down.error().message;
  EXPECT_NE(m.find("agent " + info->nodes[0].spec.name), std::string::npos) << m;
  EXPECT_NE(m.find("exited with code 134 after signal 15"), std::string::npos) << m;
  EXPECT_NE(m.find("corrupted size vs. prev_size"), std::string::npos) << m;  // its log
  EXPECT_EQ(m.find("server (pid"), std::string::npos) << m;                   // the server exited 0
  EXPECT_FALSE(process_alive(info->server_pid));
}

TEST(Lab, AppsThatAgentsLeaveBehindAreStopped) {
  TempDir tmp;
  EnvGuard app("FAKE_AGENT_APP", "1");
  Lab lab;
  auto info = lab.up(options(tmp, 2));
  ASSERT_TRUE(info) << info.error().message;
  std::vector<pid_t> apps;
  for (const auto& n : info->nodes)
    apps.push_back(read_pid(n.root / "app.pid"));
  for (pid_t p : apps)
    ASSERT_TRUE(p > 0 && process_alive(p));
  ASSERT_TRUE(lab.down());
  for (pid_t p : apps) {
    // Reparented, so reaped by init rather than by us: wait until it is gone.
    EXPECT_TRUE(eventually([&] { return !process_alive(p); })) << p;
  }
}

TEST(Lab, DetachedLabOutlivesTheObjectAndIsStoppedFromState) {
  TempDir tmp;
  KillOnExit cleanup;
  std::vector<pid_t>& pids = cleanup.pids;
  {
    Lab lab;
    auto opts = options(tmp, 2);
    opts.detach = true;
    auto info = lab.up(opts);
    ASSERT_TRUE(info) << info.error().message;
    EXPECT_TRUE(info->detached);
    pids = {info->server_pid, info->nodes[0].pid, info->nodes[1].pid};
    for (pid_t p : pids)
      EXPECT_EQ(::getsid(p), p) << "own session";
  }
  for (pid_t p : pids)
    EXPECT_TRUE(process_alive(p)) << p;

  // Another Lab in the same directory is refused while this one runs.
  Lab second;
  auto again = second.up(options(tmp, 2));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::conflict);
  EXPECT_TRUE(contains(again.error().message, "slipway lab down")) << again.error().message;

  auto down = down_from_state(tmp.path() / "lab");
  EXPECT_TRUE(down) << down.error().message;
  for (pid_t p : pids) {
    EXPECT_FALSE(process_alive(p)) << p;
    int st;
    ::waitpid(p, &st, 0);  // they are still this process's children: reap them
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "lab" / "lab.json"));
  EXPECT_EQ(down_from_state(tmp.path() / "lab").error().code, Errc::not_found);
}

TEST(Lab, DownFromStateNeverSignalsAProcessThatIsNotTheLabs) {
  TempDir tmp;
  const fs::path dir = tmp.path() / "lab";
  fs::create_directories(dir);
  // A pid that lab.json names but that now belongs to something else (a recycled pid).
  testing::Child other({"/bin/sleep", "60"});
  const std::string json =
      "{\"dir\":\"" + dir.string() +
      "\",\"slipway_bin\":\"/usr/bin/slipway\",\"server_pid\":" + std::to_string(other.pid()) +
      ",\"nodes\":[{\"name\":\"node-1\",\"pid\":" + std::to_string(other.pid()) + ",\"root\":\"" +
      (dir / "nodes/node-1/root").string() + "\"}]}";
  ASSERT_TRUE(write_file_atomic(dir / "lab.json", json, 0600));
  auto down = down_from_state(dir);
  EXPECT_TRUE(down) << down.error().message;
  EXPECT_TRUE(process_alive(other.pid()));
}

TEST(Lab, AChildOfACrashedCallerGoesToo) {
  // A process that brings a lab up attached and then dies without stopping it: PDEATHSIG
  // takes its server and agents down with it.
  TempDir tmp;
  const pid_t caller = ::fork();
  ASSERT_GE(caller, 0);
  if (caller == 0) {
    static Lab lab;  // never destroyed: _exit skips it
    auto info = lab.up(options(tmp, 2));
    ::_exit(info ? 0 : 1);
  }
  int st = 0;
  ASSERT_EQ(::waitpid(caller, &st, 0), caller);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  auto state = load_state(tmp.path() / "lab");
  ASSERT_TRUE(state) << state.error().message;
  KillOnExit cleanup{{state->server_pid}};
  for (const auto& n : state->nodes)
    cleanup.pids.push_back(n.pid);
  EXPECT_TRUE(eventually([&] { return !process_alive(state->server_pid); }));
  for (const auto& n : state->nodes) {
    EXPECT_TRUE(eventually([&] { return !process_alive(n.pid); })) << n.spec.name;
  }
}

TEST(Lab, UpRefusesBadOptionsWithoutStartingAnything) {
  TempDir tmp;
  {
    Lab lab;
    auto opts = options(tmp, 2);
    opts.nodes[1].name = opts.nodes[0].name;
    EXPECT_EQ(lab.up(opts).error().code, Errc::invalid_argument);
  }
  {
    Lab lab;
    auto opts = options(tmp, 2);
    opts.nodes[1].address = opts.nodes[0].address;
    EXPECT_EQ(lab.up(opts).error().code, Errc::invalid_argument);
  }
  {
    Lab lab;
    auto opts = options(tmp, 1);
    opts.nodes[0].address = "192.168.1.1";
    EXPECT_EQ(lab.up(opts).error().code, Errc::invalid_argument);
  }
  {
    Lab lab;
    auto opts = options(tmp, 1);
    opts.slipway_bin = tmp.path() / "no-such-binary";
    EXPECT_EQ(lab.up(opts).error().code, Errc::not_found);
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "lab" / "server" / "fake-server.pid"));
}

TEST(Lab, AServerOnlyLab) {
  TempDir tmp;
  Lab lab;
  auto info = lab.up(options(tmp, 0));
  ASSERT_TRUE(info) << info.error().message;
  EXPECT_TRUE(info->nodes.empty());
  EXPECT_TRUE(lab.down());
}

}  // namespace
}  // namespace slipway::lab
