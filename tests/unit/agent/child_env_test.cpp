// The environment of what the agent starts: the allowlist of its own variables, then the child's.
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "agent/process.h"

namespace slipway::agent {
namespace {

using Env = std::map<std::string, std::string>;

TEST(ChildEnvironment, TheAllowlistOfTheAgentsVariablesThenTheChildsOwn) {
  const char* agent_env[] = {
      "PATH=/opt/bin:/usr/bin", "HOME=/var/lib/slipway", "USER=slipway", "LOGNAME=slipway",
      "SHELL=/bin/bash", "LANG=C.UTF-8", "LANGUAGE=en", "LC_ALL=C", "LC_TIME=en_GB.UTF-8",
      "TZ=Europe/Paris", "TMPDIR=/var/tmp", "TERM=xterm",
      // Not on the list: never passed on.
      "SLIPWAY_TOKEN=slwt_admin", "SLIPWAY_JOIN_TOKEN=join-secret",
      "SLIPWAY_NODE=forged-by-the-shell", "SLIPWAY_SERVER=https://deploy",
      "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "DATABASE_URL=postgres://u:p@db/x",
      "LD_PRELOAD=/tmp/evil.so", "http_proxy=http://user:pw@proxy:3128", "PATHS=/x", "MYPATH=/y",
      "LC_=no-name", "lang=lower-case", "=no-name-at-all", "no-equals-sign", nullptr};
  const Env vars = {{"SLIPWAY_NODE", "node-1"},
                    {"SLIPWAY_ENV", "staging"},
                    {"DB_PASSWORD", "s3cr3t"},  // the app's secret
                    {"LOG_LEVEL", "debug"},     // the manifest's env
                    {"TZ", "UTC"}};             // the child's own beat the agent's

  const Env expected = {{"PATH", "/opt/bin:/usr/bin"},
                        {"HOME", "/var/lib/slipway"},
                        {"USER", "slipway"},
                        {"LOGNAME", "slipway"},
                        {"SHELL", "/bin/bash"},
                        {"LANG", "C.UTF-8"},
                        {"LANGUAGE", "en"},
                        {"LC_ALL", "C"},
                        {"LC_TIME", "en_GB.UTF-8"},
                        {"TZ", "UTC"},
                        {"TMPDIR", "/var/tmp"},
                        {"TERM", "xterm"},
                        {"SLIPWAY_NODE", "node-1"},
                        {"SLIPWAY_ENV", "staging"},
                        {"DB_PASSWORD", "s3cr3t"},
                        {"LOG_LEVEL", "debug"}};
  EXPECT_EQ(child_environment(agent_env, vars), expected);
}

TEST(ChildEnvironment, PathHasADefaultWhenNobodySetsOne) {
  const char* agent_env[] = {"HOME=/root", "SECRET=x", nullptr};
  EXPECT_EQ(child_environment(agent_env, {}), (Env{{"HOME", "/root"}, {"PATH", kDefaultPath}}));
  EXPECT_EQ(child_environment(nullptr, {{"A", "1"}}), (Env{{"A", "1"}, {"PATH", kDefaultPath}}));
  // The child's own PATH wins over both.
  EXPECT_EQ(child_environment(agent_env, {{"PATH", "/app/bin"}}).at("PATH"), "/app/bin");
}

TEST(ChildEnvironment, AVariableNamedTwiceIsTakenAsGetenvFindsIt) {
  const char* agent_env[] = {"HOME=/first", "HOME=/second", nullptr};
  EXPECT_EQ(child_environment(agent_env, {}).at("HOME"), "/first");
}

TEST(ChildEnvironment, TheAllowlist) {
  for (const char* name : {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_ALL",
                           "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", "TERM"}) {
    EXPECT_TRUE(inherited_by_children(name)) << name;
  }
  for (const char* name : {"SLIPWAY_TOKEN", "SLIPWAY_JOIN_TOKEN", "SLIPWAY_NODE", "LC_", "LC",
                           "path", "PATH_", "LD_PRELOAD", "LD_LIBRARY_PATH", "SSH_AUTH_SOCK",
                           "AWS_SECRET_ACCESS_KEY", "HTTPS_PROXY", "NOTIFY_SOCKET", ""}) {
    EXPECT_FALSE(inherited_by_children(name)) << name;
  }
}

}  // namespace
}  // namespace slipway::agent
