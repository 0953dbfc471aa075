// Per-environment config and secrets, end to end: `slipway config set` and `slipway secret set`
// (the value on standard input), then deploys of a release that holds config/app.conf.tmpl. The
// app gets the config as environment variables (also after its agent restarts), the template is
// rendered next to itself with mode 0600, each deploy records the config version it used and
// `history show` names what changed between two deploys; the secret's value appears nowhere it
// should not (logs, history, status, config show, the database file). A template naming an
// unknown key fails the deploy and leaves the nodes on their release. Hostile input on the routes
// is refused with a clear error.
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include "e2e/harness.h"
#include "lab/sample_release.h"

namespace slipway::e2e {
namespace {

constexpr const char* kSecret = "s3cr3t-Zq9-hunter2-value";
constexpr const char* kSecret2 = "another-s3cr3t-K7x";
constexpr const char* kTemplate =
    "greeting={{ GREETING }}\npassword={{DB_PASSWORD}}\nport={{ SLIPWAY_PORT }}\n"
    "literal={{{{ kept }}\n";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// NAME=VALUE lines of /proc/PID/environ.
std::map<std::string, std::string> environ_of(pid_t pid) {
  std::map<std::string, std::string> out;
  const std::string text = slurp(fmt::format("/proc/{}/environ", pid));
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\0', i);
    if (end == std::string::npos) end = text.size();
    const std::string kv = text.substr(i, end - i);
    if (auto eq = kv.find('='); eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
    i = end + 1;
  }
  return out;
}

class ConfigTest : public E2eTest {
 protected:
  // A release of the sample service with more files in it.
  fs::path release_with(const std::string& version,
                        std::map<std::string, std::string> extra_files) {
    lab::SampleRelease r;
    r.out_dir = dir() / "releases";
    r.app = "web";
    r.version = version;
    r.sample_binary = SLIPWAY_SAMPLE_SERVICE;
    r.healthy_for = Millis(300);
    r.interval = Millis(100);
    r.message = "web " + version;
    r.extra_files = std::move(extra_files);
    auto p = lab::build_sample_release(r);
    if (!p) throw std::runtime_error("build_sample_release: " + p.error().message);
    return *p;
  }

  fs::path release_dir(const std::string& node, const std::string& version) const {
    return node_root(node) / "apps" / "web" / "releases" / version;
  }

  pid_t app_pid(const std::string& node) const {
    std::ifstream in(node_root(node) / "apps" / "web" / "app.pid");
    pid_t pid = 0;
    in >> pid;
    return pid;
  }

  // Every file the lab's processes log to, and the server's database files.
  std::vector<fs::path> logs_and_database() const {
    std::vector<fs::path> out;
    for (const auto& e : fs::recursive_directory_iterator(info().dir)) {
      if (!e.is_regular_file()) continue;
      const std::string name = e.path().filename().string();
      if (name.ends_with(".log") || name.starts_with("slipway.db")) out.push_back(e.path());
    }
    return out;
  }

  int64_t deploy_ok(const std::string& version) {
    auto r = cli({"deploy", "web", version, "--env", "staging"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    return i64(latest_deploy(), "id");
  }
};

TEST_F(ConfigTest, ConfigAndSecretsReachTheAppAndNothingElse) {
  ASSERT_NO_THROW(start_lab(2));
  auto r = cli({"config", "set", "--env", "staging", "--app", "web", "GREETING=hello world",
                "LOG_LEVEL=debug"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("config version 1"), std::string::npos) << r.describe();
  r = cli_stdin({"secret", "set", "--env", "staging", "--app", "web", "DB_PASSWORD"},
                std::string(kSecret) + "\n");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("config version 2"), std::string::npos) << r.describe();
  // A secret is never taken from an empty standard input.
  r = cli_stdin({"secret", "set", "--env", "staging", "--app", "web", "EMPTY"}, "\n");
  EXPECT_EQ(r.exit_code, 2) << r.describe();

  const std::map<std::string, std::string> files{{"config/app.conf.tmpl", kTemplate}};
  ASSERT_EQ(push(release_with("1.0.0", files), "web", "1.0.0").exit_code, 0);
  const int64_t first = deploy_ok("1.0.0");
  EXPECT_EQ(i64(deploy(first), "config_version"), 2);

  for (const std::string node : {"node-1", "node-2"}) {
    const fs::path rendered = release_dir(node, "1.0.0") / "config" / "app.conf";
    const std::string port =
        std::to_string(i64(obj(status_by_node()[node]).at("apps").as_object().at("web"), "port"));
    EXPECT_EQ(slurp(rendered), "greeting=hello world\npassword=" + std::string(kSecret) +
                                   "\nport=" + port + "\nliteral={{ kept }}\n");
    struct stat st {};
    ASSERT_EQ(::stat(rendered.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    const auto env = environ_of(app_pid(node));
    EXPECT_EQ(env.count("GREETING") ? env.at("GREETING") : "", "hello world") << node;
    EXPECT_EQ(env.count("DB_PASSWORD") ? env.at("DB_PASSWORD") : "", kSecret) << node;
    EXPECT_EQ(env.count("LOG_LEVEL") ? env.at("LOG_LEVEL") : "", "debug") << node;
  }

  // The config changes: one key changed, one removed, a secret added; the next deploy uses
  // version 5 and `history show` names the changes (names only).
  ASSERT_EQ(cli({"config", "set", "--env", "staging", "--app", "web", "GREETING=bye"}).exit_code,
            0);
  ASSERT_EQ(cli({"config", "unset", "--env", "staging", "--app", "web", "LOG_LEVEL"}).exit_code, 0);
  ASSERT_EQ(cli_stdin({"secret", "set", "--env", "staging", "--app", "web", "API_KEY"}, kSecret2)
                .exit_code,
            0);
  ASSERT_EQ(push(release_with("1.0.1", files), "web", "1.0.1").exit_code, 0);
  const int64_t second = deploy_ok("1.0.1");
  const auto d2 = deploy(second);
  EXPECT_EQ(i64(d2, "config_version"), 5);
  const auto& diff = obj(d2).at("config_changes");
  EXPECT_EQ(i64(diff, "previous_deploy"), first);
  EXPECT_EQ(i64(diff, "from_version"), 2);
  EXPECT_EQ(i64(diff, "to_version"), 5);
  EXPECT_EQ(to_json(obj(diff).at("changes")),
            R"([{"key":"API_KEY","secret":true,"change":"added"},)"
            R"({"key":"GREETING","secret":false,"change":"changed"},)"
            R"({"key":"LOG_LEVEL","secret":false,"change":"removed"}])");
  auto show = cli({"history", "show", std::to_string(second)});
  ASSERT_EQ(show.exit_code, 0) << show.describe();
  EXPECT_NE(show.out.find(fmt::format("config    version 5 (since deploy #{}, version 2: added "
                                      "API_KEY (secret), changed GREETING, removed LOG_LEVEL)",
                                      first)),
            std::string::npos)
      << show.out;
  EXPECT_EQ(environ_of(app_pid("node-1")).at("API_KEY"), kSecret2);
  EXPECT_EQ(environ_of(app_pid("node-1")).count("LOG_LEVEL"), 0u);

  // An agent that restarts starts the app again with its config.
  ASSERT_TRUE(lab_.stop_node("node-2", SIGTERM));
  ASSERT_TRUE(lab_.start_node("node-2"));
  ASSERT_TRUE(lab_.wait_for_nodes());
  ASSERT_TRUE(wait_until(
      [&] {
        const auto n = status_by_node()["node-2"];
        const auto* a = obj(n).at("apps").as_object().if_contains("web");
        return a && boolean(*a, "healthy") && app_pid("node-2") > 0 &&
               environ_of(app_pid("node-2")).count("DB_PASSWORD") > 0;
      },
      Millis(30'000)));
  EXPECT_EQ(environ_of(app_pid("node-2")).at("DB_PASSWORD"), kSecret);
  EXPECT_EQ(environ_of(app_pid("node-2")).at("GREETING"), "bye");

  // What users can see: masked or absent.
  auto cfg = cli({"config", "show", "--env", "staging", "--app", "web"});
  ASSERT_EQ(cfg.exit_code, 0) << cfg.describe();
  EXPECT_NE(cfg.out.find("********"), std::string::npos) << cfg.out;
  EXPECT_NE(cfg.out.find("bye"), std::string::npos) << cfg.out;
  auto cfg_json = cli_json({"config", "show", "--env", "staging", "--app", "web"});
  auto secrets = cli({"secret", "list", "--env", "staging", "--app", "web"});
  ASSERT_EQ(secrets.exit_code, 0) << secrets.describe();
  EXPECT_NE(secrets.out.find("API_KEY"), std::string::npos) << secrets.out;
  std::vector<std::pair<std::string, std::string>> seen = {
      {"config show", cfg.all()},
      {"config show -o json", to_json(cfg_json)},
      {"secret list", secrets.all()},
      {"history", cli({"history", "web", "--env", "staging"}).all()},
      {"history -o json", cli({"history", "-o", "json"}).all()},
      {"history show", show.all()},
      {"history show -o json", cli({"history", "show", std::to_string(first), "-o", "json"}).all()},
      {"status", cli({"status", "--env", "staging"}).all()},
      {"status -o json", cli({"status", "-o", "json"}).all()},
  };
  for (const auto& p : logs_and_database())
    seen.emplace_back(p.string(), slurp(p));
  ASSERT_GT(seen.size(), 12u);  // the logs of the server and agents, the database
  for (const auto& [what, text] : seen) {
    EXPECT_EQ(text.find(kSecret), std::string::npos) << what;
    EXPECT_EQ(text.find(kSecret2), std::string::npos) << what;
  }
}

TEST_F(ConfigTest, ATemplateWithAnUnknownKeyFailsTheDeployAndTheNodeStays) {
  ASSERT_NO_THROW(start_lab(1));
  ASSERT_EQ(cli({"config", "set", "--env", "staging", "--app", "web", "GREETING=hi"}).exit_code, 0);
  ASSERT_EQ(push(release_with("1.0.0", {{"config/app.conf.tmpl", "greeting={{ GREETING }}\n"}}),
                 "web", "1.0.0")
                .exit_code,
            0);
  deploy_ok("1.0.0");
  ASSERT_EQ(push(release_with("1.0.1", {{"config/app.conf.tmpl",
                                         "greeting={{ GREETING }}\n  x={{ NOPE }}\n"}}),
                 "web", "1.0.1")
                .exit_code,
            0);
  auto r = cli({"deploy", "web", "1.0.1", "--env", "staging"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  const auto d = deploy(i64(latest_deploy(), "id"));
  EXPECT_NE(str(d, "state"), "succeeded");
  const std::string reason = str(arr(d, "nodes").front(), "reason");
  EXPECT_NE(reason.find("config/app.conf.tmpl"), std::string::npos) << reason;
  EXPECT_NE(reason.find("line 2, column 5: unknown key 'NOPE'"), std::string::npos) << reason;
  const auto n = status_by_node()["node-1"];
  const auto& web = obj(n).at("apps").as_object().at("web");
  EXPECT_EQ(str(web, "version"), "1.0.0");
  EXPECT_TRUE(boolean(web, "healthy"));
  // Nothing was rendered: config/app.conf is still the one the release ships.
  EXPECT_EQ(slurp(release_dir("node-1", "1.0.1") / "config" / "app.conf").find("greeting="),
            std::string::npos);
}

TEST_F(ConfigTest, HostileInputOnTheRoutesIsRefused) {
  ASSERT_NO_THROW(start_lab(1));
  const std::string base = "/api/v1/envs/staging/apps/web";
  struct Case {
    std::string method;
    std::string target;
    std::string body;
    int status;
  };
  const std::string huge(17 * 1024, 'v');
  constexpr int kBadPath = -1;  // refused as a bad name (400) or as no route at all (404)
  const std::vector<Case> cases = {
      {"PATCH", base + "/config", R"({"set":{"1A":"x"}})", 400},
      {"PATCH", base + "/config", R"({"set":{"A-B":"x"}})", 400},
      {"PATCH", base + "/config", R"({"set":{"SLIPWAY_PORT":"1"}})", 400},
      {"PATCH", base + "/config", R"({"set":{"":"x"}})", 400},
      {"PATCH", base + "/config", R"({"set":{"A":"x\u0000y"}})", 400},
      {"PATCH", base + "/config", R"({"set":{"A":")" + huge + R"("}})", 413},
      {"PATCH", base + "/config", R"({"set":{"A":1}})", 400},
      {"PATCH", base + "/config", R"({"set":["A"]})", 400},
      {"PATCH", base + "/config", R"({"unset":"A"})", 400},
      {"PATCH", base + "/config", R"({"set":{"A":"x"},"extra":1})", 400},
      {"PATCH", base + "/config", R"({})", 400},
      {"PATCH", base + "/config", R"({"set":{"A":"x"},"unset":["A"]})", 400},
      {"PATCH", base + "/config", R"([1,2])", 400},
      {"PATCH", base + "/config", "not json", 400},
      {"PATCH", base + "/config", R"({"unset":["MISSING"]})", 404},
      {"PATCH", "/api/v1/envs/..%2Fx/apps/web/config", R"({"set":{"A":"x"}})", kBadPath},
      {"PATCH", "/api/v1/envs/staging/apps/we%0Ab/config", R"({"set":{"A":"x"}})", 400},
      {"GET", "/api/v1/envs/staging/apps/%2E%2E/config", "", kBadPath},
      {"PUT", base + "/secrets/1BAD", R"({"value":"x"})", 400},
      {"PUT", base + "/secrets/SLIPWAY_X", R"({"value":"x"})", 400},
      {"PUT", base + "/secrets/S", R"({"value":""})", 400},
      {"PUT", base + "/secrets/S", R"({"value":5})", 400},
      {"PUT", base + "/secrets/S", R"({"value":"x","also":"y"})", 400},
      {"PUT", base + "/secrets/S", R"({})", 400},
      {"PUT", base + "/secrets/S", R"({"value":"a\u0000b"})", 400},
      {"PUT", base + "/secrets/S", R"({"value":")" + huge + R"("})", 413},
      {"DELETE", base + "/secrets/NOPE", "", 404},
      {"GET", base + "/secrets/S", "", 405},
  };
  for (const auto& c : cases) {
    auto res = http(c.method, c.target, c.body);
    const int want = c.status == kBadPath && res.status == 404 ? 404
                     : c.status == kBadPath                    ? 400
                                                               : c.status;
    EXPECT_EQ(res.status, want) << c.method << " " << c.target << " " << c.body.substr(0, 80)
                                << " -> " << res.body;
    if (res.status >= 400 && res.status != 405) {
      EXPECT_NE(res.body.find("error"), std::string::npos) << res.body;
    }
  }
  // Without a token: refused.
  EXPECT_EQ(http("GET", base + "/config", "", {}, std::string()).status, 401);
  // Nothing was stored by any of them.
  const auto cfg = get_json(base + "/config");
  EXPECT_EQ(i64(cfg, "version"), 0);
  EXPECT_TRUE(arr(cfg, "config").empty());
  // A secret cannot turn into plain config (or back) by accident.
  ASSERT_EQ(http("PUT", base + "/secrets/S", R"({"value":"x"})").status, 200);
  EXPECT_EQ(http("PATCH", base + "/config", R"({"set":{"S":"clear"}})").status, 409);
  // The CLI checks names before sending and never takes a secret from its arguments.
  auto r = cli({"config", "set", "--env", "staging", "--app", "web", "NOEQUALS"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  r = cli({"secret", "set", "--env", "staging", "--app", "web", "K", "value"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace slipway::e2e
