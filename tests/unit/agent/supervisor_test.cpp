#include "agent/supervisor.h"

#include <fstream>
#include <string>

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_test_util.h"
#include "common/strings.h"

namespace slipway::agent {
namespace {

using namespace std::chrono_literals;
using testing::count_of;
using testing::process_gone;
using testing::slurp;
using testing::TempDir;
using testing::wait_until;

ProcessSpec shell(const std::string& command, const fs::path& cwd = {}) {
  ProcessSpec s;
  s.command = command;
  s.cwd = cwd;
  return s;
}

std::string comm_of(pid_t pid) {
  return std::string(trim(slurp("/proc/" + std::to_string(pid) + "/comm")));
}

TEST(Supervisor, StartsWritesThePidFileAppendsToTheLogAndStops) {
  TempDir d;
  const fs::path log = d / "app.log";
  const fs::path pidf = d / "app.pid";
  std::ofstream(log) << "previous line\n";
  Supervisor sup;
  ProcessSpec spec = shell("echo hello from $APP_NAME; exec sleep 60");
  spec.env = {{"APP_NAME", "web"}};
  ASSERT_TRUE(sup.start("web", spec, log, pidf));
  const ProcessStatus st = sup.status("web");
  ASSERT_TRUE(st.running);
  ASSERT_GT(st.pid, 0);
  EXPECT_EQ(::getpgid(st.pid), st.pid) << "its own process group";
  EXPECT_EQ(std::string(trim(slurp(pidf))), std::to_string(st.pid));
  EXPECT_TRUE(wait_until([&] { return slurp(log).find("hello from web") != std::string::npos; }));
  EXPECT_EQ(slurp(log).rfind("previous line\n", 0), 0u) << "the log is appended to";

  ASSERT_TRUE(sup.stop("web", 5s));
  EXPECT_TRUE(process_gone(st.pid));
  EXPECT_FALSE(sup.status("web").running);
  EXPECT_FALSE(fs::exists(pidf));
  EXPECT_TRUE(sup.stop("web", 5s)) << "stopping what is not supervised is a no-op";
}

TEST(Supervisor, ExecsASimpleCommandSoThePidIsTheAppItself) {
  TempDir d;
  Supervisor sup;
  ASSERT_TRUE(sup.start("web", shell("sleep 60"), d / "app.log", d / "app.pid"));
  const pid_t pid = sup.status("web").pid;
  // The shell replaces itself with the command (right after start() returns).
  EXPECT_TRUE(wait_until([&] { return comm_of(pid) == "sleep"; })) << comm_of(pid);
  EXPECT_EQ(sup.status("web").pid, pid);
  ASSERT_TRUE(sup.stop("web", 5s));
}

TEST(Supervisor, RestartsAProcessThatDies) {
  TempDir d;
  Supervisor sup;
  ASSERT_TRUE(sup.start("web", shell("echo started >> runs.txt; sleep 0.1; exit 7", d.path()),
                        d / "app.log", d / "app.pid"));
  EXPECT_TRUE(wait_until([&] { return sup.status("web").restarts >= 1; }));
  const ProcessStatus st = sup.status("web");
  EXPECT_EQ(st.last_exit, "exit code 7");
  EXPECT_EQ(st.last_exit_code, 7);
  EXPECT_TRUE(wait_until([&] { return count_of(slurp(d / "runs.txt"), "started") >= 2; }));
  EXPECT_NE(slurp(d / "app.log").find("exited (exit code 7); restarting in 1.0s"),
            std::string::npos)
      << slurp(d / "app.log");
  ASSERT_TRUE(sup.stop("web", 5s));
}

TEST(Supervisor, DoesNotRestartAProcessBeingStopped) {
  TempDir d;
  Supervisor sup;
  ASSERT_TRUE(sup.start("web", shell("echo started >> runs.txt; exec sleep 60", d.path()),
                        d / "app.log", d / "app.pid"));
  ASSERT_TRUE(wait_until([&] { return count_of(slurp(d / "runs.txt"), "started") == 1; }));
  const pid_t pid = sup.status("web").pid;
  ASSERT_TRUE(sup.stop("web", 5s));
  EXPECT_TRUE(process_gone(pid));
  // Longer than the first restart backoff: a restart would have happened by now.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(count_of(slurp(d / "runs.txt"), "started"), 1);
  EXPECT_FALSE(sup.status("web").running);
}

TEST(Supervisor, StopEscalatesToSigkillForAProcessThatIgnoresSigterm) {
  TempDir d;
  Supervisor sup;
  ASSERT_TRUE(sup.start(
      "web",
      shell("trap '' TERM; sleep 60 & echo $! > child.pid; while :; do wait; done", d.path()),
      d / "app.log", d / "app.pid"));
  ASSERT_TRUE(wait_until([&] { return !slurp(d / "child.pid").empty(); }));
  const pid_t leader = sup.status("web").pid;
  const pid_t child = std::stoi(slurp(d / "child.pid"));
  ASSERT_TRUE(sup.stop("web", 200ms));
  EXPECT_TRUE(process_gone(leader));
  EXPECT_TRUE(wait_until([&] { return process_gone(child); })) << "the whole group";
  ::kill(child, SIGKILL);
}

TEST(Supervisor, StartReplacesTheRunningProcess) {
  TempDir d;
  Supervisor sup;
  ASSERT_TRUE(sup.start("web", shell("sleep 60"), d / "app.log", d / "app.pid"));
  const pid_t first = sup.status("web").pid;
  ASSERT_TRUE(sup.start("web", shell("sleep 61"), d / "app.log", d / "app.pid"));
  const pid_t second = sup.status("web").pid;
  EXPECT_NE(first, second);
  EXPECT_TRUE(process_gone(first));
  EXPECT_FALSE(process_gone(second));
  EXPECT_EQ(sup.status("web").restarts, 0);
  ASSERT_TRUE(sup.stop("web", 5s));
}

TEST(Supervisor, KillsTheLeftoverProcessGroupOfAPreviousAgent) {
  TempDir d;
  // A process group left by an agent that was killed: its leader's pid is in the pid file.
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  auto leftover = spawn_shell(shell("sleep 60 & exec sleep 60"), devnull);
  ::close(devnull);
  ASSERT_TRUE(leftover) << leftover.error().message;
  std::ofstream(d / "app.pid") << *leftover << "\n";

  Supervisor sup;
  ASSERT_TRUE(sup.start("web", shell("sleep 60"), d / "app.log", d / "app.pid"));
  EXPECT_TRUE(process_gone(*leftover));
  EXPECT_FALSE(process_group_alive(*leftover)) << "no member of the old group is left";
  EXPECT_NE(sup.status("web").pid, *leftover);
  int status;
  ::waitpid(*leftover, &status, 0);
  ASSERT_TRUE(sup.stop("web", 5s));
}

TEST(Supervisor, LeavesAnUnrelatedProcessNamedByAStalePidFileAlone) {
  TempDir d;
  // Alive, but not the leader of its own process group: not something the supervisor started.
  const pid_t other = ::fork();
  if (other == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(other, 0);
  std::ofstream(d / "app.pid") << other << "\n";
  Supervisor sup;
  ASSERT_TRUE(sup.start("web", shell("sleep 60"), d / "app.log", d / "app.pid"));
  EXPECT_FALSE(process_gone(other));
  ASSERT_TRUE(sup.stop("web", 5s));
  ::kill(other, SIGKILL);
  int status;
  ::waitpid(other, &status, 0);
}

TEST(Supervisor, ChildrenDoNotOutliveAKilledAgent) {
  TempDir d;
  const fs::path pidf = d / "app.pid";
  // The "agent" is a child process that starts an app and then dies without any cleanup.
  const pid_t agent = ::fork();
  if (agent == 0) {
    auto* sup = new Supervisor;  // never destroyed: the agent dies abruptly
    const bool ok = static_cast<bool>(sup->start("web", shell("sleep 60"), d / "app.log", pidf));
    ::_exit(ok ? 0 : 1);
  }
  ASSERT_GT(agent, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(agent, &status, 0), agent);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const pid_t app = std::stoi(slurp(pidf));
  EXPECT_TRUE(wait_until([&] { return process_gone(app); }));
  ::kill(app, SIGKILL);
}

}  // namespace
}  // namespace slipway::agent
