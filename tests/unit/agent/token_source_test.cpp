// The join token's sources, and wiping tokens from what /proc shows of the agent. The wipes are
// checked where they matter: in /proc/PID/cmdline and /proc/PID/environ of a process started by
// the test (this binary again, in a helper mode), read from the outside.
#include "agent/token_source.h"

#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_test_util.h"
#include "common/strings.h"

extern char** environ;

namespace slipway::agent {
namespace {

using testing::TempDir;

constexpr std::string_view kHelper = "token-source-helper";

std::string arg_after(int argc, char** argv, std::string_view flag) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == flag) return argv[i + 1];
  }
  return "";
}

// `token-source-helper scrub ...`: wipes "flag-secret" from its arguments and takes
// SLIPWAY_JOIN_TOKEN and SLIPWAY_TOKEN from its environment; `token-source-helper take ...`: does
// what `slipway agent` does first (take_join_token). Either prints one line saying what it did,
// then waits for its standard input to close, so that the test can look at its /proc meanwhile.
// glibc calls constructors with main()'s own argc, argv and envp: the memory /proc shows.
__attribute__((constructor)) void token_source_helper(int argc, char** argv, char** /*envp*/) {
  if (argc < 3 || argv[1] != kHelper) return;
  std::string report;
  if (std::string_view(argv[2]) == "scrub") {
    const size_t wiped = wipe_from_arguments(argc, argv, "flag-secret");
    const auto join = take_from_environment("SLIPWAY_JOIN_TOKEN");
    const auto api = take_from_environment("SLIPWAY_TOKEN");
    report = fmt::format("wiped={} join={} api={} getenv={}", wiped, join.value_or("-"),
                         api.value_or("-"), std::getenv("SLIPWAY_JOIN_TOKEN") ? "set" : "unset");
  } else {
    auto token = take_join_token(arg_after(argc, argv, "--token"),
                                 arg_after(argc, argv, "--token-file"), argc, argv);
    report = token ? "token=" + *token : "error=" + token.error().message;
    const char* kept = std::getenv("KEPT");
    report += fmt::format(" dumpable={} KEPT={}", ::prctl(PR_GET_DUMPABLE), kept ? kept : "-");
  }
  report += "\n";
  (void)!::write(1, report.data(), report.size());
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  std::_Exit(0);
}

// What the helper said and what /proc showed of it while it waited.
struct Seen {
  std::string report;
  std::vector<std::string> cmdline;
  std::string environ_block;
};

// Runs this binary as the helper with `args` and exactly the environment `env`.
Seen run_helper(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> strings = {"/proc/self/exe", std::string(kHelper)};
  strings.insert(strings.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (auto& s : strings)
    argv.push_back(s.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = env;
  for (auto& s : env_strings)
    envp.push_back(s.data());
  envp.push_back(nullptr);
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  Seen seen;
  char c;
  while (::read(out[0], &c, 1) == 1 && c != '\n')
    seen.report += c;
  const std::string proc = fmt::format("/proc/{}/", pid);
  seen.cmdline = split(testing::slurp(proc + "cmdline"), '\0');
  seen.environ_block = testing::slurp(proc + "environ");
  ::close(in[1]);  // the helper exits
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return seen;
}

bool has(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

TEST(TokenWipe, ATokenLeavesTheCommandLineAndTheEnvironmentBlockInPlace) {
  const Seen seen = run_helper(
      {"scrub", "--token", "flag-secret", "--name", "node-1", "--token=flag-secret", "--root",
       "/srv/flag-secret/x"},
      {"SLIPWAY_JOIN_TOKEN=join-secret", "KEPT=as-it-was", "SLIPWAY_TOKEN=slwt_api-secret"});
  EXPECT_EQ(seen.report, "wiped=3 join=join-secret api=slwt_api-secret getenv=unset");

  // The same arguments, each as long as it was, the token overwritten.
  const std::vector<std::string> expected = {"/proc/self/exe", std::string(kHelper),
                                             "scrub",          "--token",
                                             "xxxxxxxxxxx",    "--name",
                                             "node-1",         "--token=xxxxxxxxxxx",
                                             "--root",         "/srv/xxxxxxxxxxx/x"};
  EXPECT_EQ(seen.cmdline, expected);

  // The block the process started with (unsetenv alone would leave the values there).
  EXPECT_FALSE(has(seen.environ_block, "join-secret")) << seen.environ_block;
  EXPECT_FALSE(has(seen.environ_block, "api-secret")) << seen.environ_block;
  EXPECT_TRUE(has(seen.environ_block, "KEPT=as-it-was")) << seen.environ_block;
  EXPECT_TRUE(has(seen.environ_block, "SLIPWAY_JOIN_TOKEN=xxxxxxxxxxx")) << seen.environ_block;
}

TEST(TokenWipe, TheAgentsStartTakesTheTokenOfEachSourceAndLeavesNoTraceOfIt) {
  TempDir dir;
  const fs::path file = dir.path() / "join.token";
  ASSERT_TRUE(write_file_atomic(file, "file-secret\n", 0600));

  // (Reading another process's environ needs root once it is not dumpable: the checks of the
  // block below hold trivially for another user, and prove the overwrite for root.)
  Seen seen = run_helper({"take", "--token", "flag-secret", "--name", "n"},
                         {"SLIPWAY_TOKEN=slwt_api-secret", "KEPT=cloud-key"});
  EXPECT_EQ(seen.report, "token=flag-secret dumpable=0 KEPT=cloud-key");
  EXPECT_FALSE(has(join(seen.cmdline, " "), "flag-secret")) << join(seen.cmdline, " ");
  EXPECT_FALSE(has(seen.environ_block, "api-secret")) << seen.environ_block;
  // Every other value is gone from the block too, though getenv still finds it.
  EXPECT_FALSE(has(seen.environ_block, "cloud-key")) << seen.environ_block;
  if (::geteuid() == 0) {
    EXPECT_TRUE(has(seen.environ_block, "KEPT=xxxxxxxxx")) << seen.environ_block;
  }

  seen = run_helper({"take"}, {"SLIPWAY_JOIN_TOKEN=env-secret", "SLIPWAY_TOKEN=slwt_api-secret"});
  EXPECT_EQ(seen.report, "token=env-secret dumpable=0 KEPT=-");
  EXPECT_FALSE(has(seen.environ_block, "env-secret")) << seen.environ_block;
  EXPECT_FALSE(has(seen.environ_block, "api-secret")) << seen.environ_block;

  seen = run_helper({"take", "--token-file", file.string()}, {});
  EXPECT_EQ(seen.report, "token=file-secret dumpable=0 KEPT=-");

  // More than one: refused, and still wiped from both places.
  seen = run_helper({"take", "--token", "flag-secret"}, {"SLIPWAY_JOIN_TOKEN=env-secret"});
  EXPECT_TRUE(
      seen.report.starts_with("error=the join token is given 2 times (--token, "
                              "$SLIPWAY_JOIN_TOKEN)"))
      << seen.report;
  EXPECT_FALSE(has(join(seen.cmdline, " "), "flag-secret"));
  EXPECT_FALSE(has(seen.environ_block, "env-secret"));
}

TEST(JoinTokenSources, ExactlyOneIsRequired) {
  auto none = pick_join_token({});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code, Errc::invalid_argument);
  EXPECT_TRUE(has(none.error().message, "--token-file FILE")) << none.error().message;

  EXPECT_EQ(pick_join_token({"t1", "", std::nullopt}).value(), "t1");
  EXPECT_EQ(pick_join_token({"", "", "t2"}).value(), "t2");

  auto three = pick_join_token({"t1", "/nonexistent", "t2"});
  ASSERT_FALSE(three);
  EXPECT_EQ(three.error().message,
            "the join token is given 3 times (--token, --token-file, $SLIPWAY_JOIN_TOKEN): give "
            "it one way only");
  EXPECT_FALSE(has(three.error().message, "t1"));

  auto empty = pick_join_token({"", "", ""});
  ASSERT_FALSE(empty);
  EXPECT_TRUE(has(empty.error().message, "empty")) << empty.error().message;
}

TEST(TokenFile, ReadsTheFirstLineOfAPrivateFile) {
  TempDir dir;
  const fs::path file = dir.path() / "join.token";
  ASSERT_TRUE(write_file_atomic(file, "  s3cret:sha256:ab  \nsecond line\n", 0600));
  EXPECT_EQ(read_token_file(file).value(), "s3cret:sha256:ab");
  ASSERT_TRUE(write_file_atomic(file, "s3cret", 0400));  // no newline, read-only
  EXPECT_EQ(read_token_file(file).value(), "s3cret");
  EXPECT_EQ(pick_join_token({"", file.string(), std::nullopt}).value(), "s3cret");
}

TEST(TokenFile, FilesOthersMayReadOrThatAreNotTokensAreRefusedWithTheFix) {
  TempDir dir;
  const fs::path file = dir.path() / "join.token";
  for (unsigned mode : {0644u, 0604u, 0660u, 0640u, 0620u, 0602u}) {
    ASSERT_TRUE(write_file_atomic(file, "s3cret-value\n", mode));
    auto r = read_token_file(file);
    ASSERT_FALSE(r) << fmt::format("{:o}", mode);
    EXPECT_EQ(r.error().code, Errc::failed_precondition);
    EXPECT_TRUE(has(r.error().message, fmt::format("has mode {:04o}", mode))) << r.error().message;
    EXPECT_TRUE(has(r.error().message, "chmod 600 " + file.string())) << r.error().message;
    EXPECT_FALSE(has(r.error().message, "s3cret")) << r.error().message;
  }

  ASSERT_TRUE(write_file_atomic(file, " \n s3cret\n", 0600));
  EXPECT_TRUE(has(read_token_file(file).error().message, "holds no token")) << "blank first line";
  ASSERT_TRUE(write_file_atomic(file, std::string(5000, 'a'), 0600));
  EXPECT_TRUE(has(read_token_file(file).error().message, "larger than 4 KiB"));
  EXPECT_TRUE(has(read_token_file(dir.path()).error().message, "is not a regular file"));
  auto missing = read_token_file(dir.path() / "missing");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::not_found);
  EXPECT_TRUE(has(missing.error().message, (dir.path() / "missing").string()));

  // Another user's file (only root can make one here).
  if (::geteuid() == 0) {
    ASSERT_TRUE(write_file_atomic(file, "s3cret\n", 0600));
    ASSERT_EQ(::chown(file.c_str(), 4242, 4242), 0);
    EXPECT_TRUE(has(read_token_file(file).error().message, "belongs to user id 4242"))
        << read_token_file(file).error().message;
  }
}

}  // namespace
}  // namespace slipway::agent
