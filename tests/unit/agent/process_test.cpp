#include "agent/process.h"

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
using testing::process_gone;
using testing::slurp;
using testing::TempDir;
using testing::wait_until;

TEST(RunCommand, CapturesOutputExitCodeEnvironmentAndDirectory) {
  TempDir dir;
  ProcessSpec spec;
  spec.command = "echo \"value=$SLIPWAY_TEST_VALUE\"; pwd; echo to-stderr >&2; exit 3";
  spec.cwd = dir.path();
  spec.env = {{"SLIPWAY_TEST_VALUE", "forty two"}};
  auto r = run_command(spec, 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->ok());
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->describe(), "exit code 3");
  EXPECT_NE(r->output.find("value=forty two\n"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find(dir.path().string() + "\n"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("to-stderr\n"), std::string::npos) << r->output;
}

// Through the real exec: what the child gets is child_environment(environ, spec.env).
TEST(RunCommand, GetsTheAllowlistOfTheAgentsVariablesNeverTheRest) {
  ::setenv("SLIPWAY_TOKEN", "slwt_must-not-leak", 1);
  ::setenv("SLIPWAY_JOIN_TOKEN", "join-must-not-leak", 1);
  ::setenv("SLIPWAY_TEST_SECRET", "must-not-leak", 1);
  ::setenv("LC_MEASUREMENT", "from-agent", 1);
  ProcessSpec spec;
  spec.command = "env";
  spec.env = {{"SLIPWAY_TEST_OWN", "own"}, {"SLIPWAY_TEST_SECRET", "the-childs-own"}};
  auto r = run_command(spec, 10s);
  for (const char* name :
       {"SLIPWAY_TOKEN", "SLIPWAY_JOIN_TOKEN", "SLIPWAY_TEST_SECRET", "LC_MEASUREMENT"}) {
    ::unsetenv(name);
  }
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok());
  const std::string out = "\n" + r->output;  // every line starts after a newline
  EXPECT_EQ(r->output.find("leak"), std::string::npos) << r->output;
  EXPECT_NE(out.find("\nLC_MEASUREMENT=from-agent\n"), std::string::npos) << r->output;
  EXPECT_NE(out.find("\nSLIPWAY_TEST_OWN=own\n"), std::string::npos) << r->output;
  EXPECT_NE(out.find("\nSLIPWAY_TEST_SECRET=the-childs-own\n"), std::string::npos) << r->output;
  EXPECT_NE(out.find("\nPATH="), std::string::npos) << r->output;
}

TEST(RunCommand, KeepsOnlyTheLastBytesOfLongOutput) {
  ProcessSpec spec;
  // 100 000 'a' then a recognisable end.
  spec.command = "head -c 100000 /dev/zero | tr '\\0' a; printf END";
  auto r = run_command(spec, 10s, 1000);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok()) << r->describe();
  EXPECT_NE(r->output.find("[... 99003 bytes cut ...]\n"), std::string::npos)
      << r->output.substr(0, 100);
  const std::string body = r->output.substr(r->output.find('\n') + 1);
  EXPECT_EQ(body.size(), 1000u);
  EXPECT_EQ(body, std::string(997, 'a') + "END");
}

TEST(RunCommand, TimeoutKillsTheWholeProcessGroup) {
  TempDir dir;
  ProcessSpec spec;
  // A background grandchild, then a foreground sleep: both must go.
  spec.command = "sleep 60 & echo $! > bg.pid; sleep 60";
  spec.cwd = dir.path();
  auto r = run_command(spec, 300ms);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_FALSE(r->ok());
  EXPECT_EQ(r->describe(), "timed out after 300ms");
  const pid_t bg = std::stoi(slurp(dir / "bg.pid"));
  EXPECT_TRUE(wait_until([&] { return process_gone(bg); })) << "background child " << bg;
  ::kill(bg, SIGKILL);  // in case the assertion failed: never leave it behind
}

TEST(RunCommand, TimeoutEscalatesToSigkillWhenSigtermIsIgnored) {
  TempDir dir;
  ProcessSpec spec;
  spec.command = "trap '' TERM; sleep 60 & echo $! > bg.pid; wait; wait";
  spec.cwd = dir.path();
  auto r = run_command(spec, 200ms);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->signal, SIGKILL);
  const pid_t bg = std::stoi(slurp(dir / "bg.pid"));
  EXPECT_TRUE(wait_until([&] { return process_gone(bg); }));
  ::kill(bg, SIGKILL);
}

TEST(RunCommand, DoesNotWaitForABackgroundChildHoldingTheOutput) {
  ProcessSpec spec;
  spec.command = "sleep 60 & echo $!";
  auto r = run_command(spec, 30s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->timed_out);
  EXPECT_TRUE(r->ok()) << r->describe();
  const pid_t bg = std::stoi(std::string(trim(r->output)));
  EXPECT_FALSE(process_gone(bg)) << "only a timeout kills the group";
  ::kill(bg, SIGKILL);
}

TEST(RunCommand, ReportsSignals) {
  ProcessSpec spec;
  spec.command = "kill -KILL $$";
  auto r = run_command(spec, 10s);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->exit_code, -1);
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_EQ(r->describe(), "killed by signal 9 (SIGKILL)");
}

TEST(RunCommand, MissingWorkingDirectoryIsAnError) {
  ProcessSpec spec;
  spec.command = "true";
  spec.cwd = "/nonexistent/slipway-test-dir";
  auto r = run_command(spec, 10s);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::io);
  EXPECT_NE(r.error().message.find("/nonexistent/slipway-test-dir"), std::string::npos)
      << r.error().message;
}

TEST(RunCommand, ChildrenInheritNoDescriptorOfTheAgent) {
  // A descriptor opened without O_CLOEXEC, as a careless library might.
  const int fd = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 3);
  ProcessSpec spec;
  spec.command = "ls /proc/$$/fd";  // the shell's descriptors, listed by another process
  auto r = run_command(spec, 10s);
  ::close(fd);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->output, "0\n1\n2\n");  // stdin, stdout, stderr and nothing else
}

TEST(RunCommand, ChildrenGetDefaultSignalDispositions) {
  // An agent ignores SIGPIPE; a child must not inherit that (`yes | head` relies on SIGPIPE).
  struct sigaction old {};
  struct sigaction ign {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGPIPE, &ign, &old);
  ProcessSpec spec;
  spec.command = "yes | head -n 1; trap";
  auto r = run_command(spec, 10s);
  ::sigaction(SIGPIPE, &old, nullptr);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->output, "y\n");  // no "Broken pipe" from yes, no inherited traps
}

TEST(SpawnShell, StartsAProcessGroupLeader) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  ProcessSpec spec;
  spec.command = "exec sleep 60";
  auto pid = spawn_shell(spec, p[1]);
  ::close(p[1]);
  ::close(p[0]);
  ASSERT_TRUE(pid) << pid.error().message;
  EXPECT_EQ(::getpgid(*pid), *pid);
  ::kill(-*pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(*pid, &status, 0), *pid);
  EXPECT_EQ(describe_wait_status(status), "killed by signal 9 (SIGKILL)");
}

}  // namespace
}  // namespace slipway::agent
