// `slipway secret rotate-key` end to end (issue 13): every config secret and every webhook
// secret is re-sealed under a new DATA/secrets.key in one transaction; the running server uses the
// new key at once (a deploy still hands the secret to the app, the webhook still signs right),
// the old key no longer opens the database's values and stays as secrets.key.old (0600) until the
// next rotation replaces it; a restart works. A rotation that a stop interrupted is finished at the
// next start when the database was re-sealed, and discarded when it was not.
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <sys/stat.h>

#include "common/secret_box.h"
#include "e2e/harness.h"
#include "support/sqlite_file.h"
#include "support/webhook_receiver.h"

namespace slipway::e2e {
namespace {

using testing::SqliteFile;
using testing::WebhookReceiver;

constexpr const char* kSecret = "rot4te-me-Pq7-value";
constexpr auto kWait = std::chrono::milliseconds(60'000);

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

class SecretRotationTest : public E2eTest {
 protected:
  fs::path data() const { return info().dir / "server"; }
  std::string db() const { return (data() / "slipway.db").string(); }

  SecretKey key_in(const std::string& file) {
    auto k = SecretKey::load(data() / file, "key");
    if (!k || !*k) throw std::runtime_error("no key in " + file);
    return **k;
  }

  void set_secret() {
    auto r = http("PUT", "/api/v1/envs/staging/apps/web/secrets/DB_PASSWORD",
                  fmt::format(R"({{"value":"{}"}})", kSecret));
    if (r.status != 200) throw std::runtime_error("secret set: " + r.body);
  }

  // The sealed value of DB_PASSWORD and of the hook's secret, as the database holds them.
  std::string sealed_secret() {
    SqliteFile f(db());
    return f.query("SELECT value FROM config_entries WHERE key = 'DB_PASSWORD'").at(0).at(0);
  }
  std::string sealed_hook() {
    SqliteFile f(db());
    return f.query("SELECT secret FROM notify_hooks WHERE name = 'ops'").at(0).at(0);
  }

  // DB_PASSWORD in the environment of node-1's app.
  std::string app_secret() {
    pid_t pid = 0;
    std::ifstream(node_root("node-1") / "apps" / "web" / "app.pid") >> pid;
    const std::string env = slurp(fmt::format("/proc/{}/environ", pid));
    const std::string key = std::string("DB_PASSWORD=");
    const auto at = env.find(key);
    if (at == std::string::npos) return "";
    return env.substr(at + key.size(), env.find('\0', at) - at - key.size());
  }

  void deploy_and_check(const std::string& version, WebhookReceiver* receiver) {
    auto r = cli({"deploy", "web", version, "--env", "staging"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(app_secret(), kSecret) << "the app got the secret of " << version;
    if (!receiver) return;
    const int64_t id = i64(latest_deploy(), "id");
    const bool signed_right = receiver->wait_for(
        [id](const auto& rs) {
          for (const auto& q : rs) {
            if (q.answered != 200 || !q.signature_error.empty()) continue;
            const auto b = parse(q.body, "webhook body");
            const auto* d = obj(b).if_contains("deploy");
            if (d && i64(*d, "id") == id) return true;
          }
          return false;
        },
        kWait);
    EXPECT_TRUE(signed_right) << "a correctly signed notification of deploy #" << id;
  }

  static mode_t mode_of(const fs::path& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? (st.st_mode & 0777) : 0;
  }
};

TEST_F(SecretRotationTest, RotateKeyResealsEverySecretAndTheServerGoesOnWithTheNewKey) {
  WebhookReceiver receiver;
  ASSERT_NO_THROW(start_lab(1));
  auto added = cli_json({"notify", "add", "--name", "ops", "webhook", receiver.url(), "--events",
                         "deploy.started,deploy.succeeded"});
  const std::string hook_secret = str(added, "secret");
  ASSERT_FALSE(hook_secret.empty());
  receiver.set_secret(hook_secret);
  ASSERT_NO_THROW(set_secret());
  for (const char* v : {"1.0.0", "1.0.1", "1.0.2"})
    ASSERT_EQ(push(release(v), "web", v).exit_code, 0);

  const SecretKey first = key_in("secrets.key");
  const std::string first_bytes = slurp(data() / "secrets.key");
  EXPECT_FALSE(fs::exists(data() / "secrets.key.old"));
  auto r = cli({"secret", "rotate-key"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.out, "1 config secret(s) and 1 notification hook secret(s) re-sealed"))
      << r.out;

  // The files: the previous key kept, owner-only; the new one in place.
  EXPECT_EQ(slurp(data() / "secrets.key.old"), first_bytes);
  EXPECT_EQ(mode_of(data() / "secrets.key.old"), 0600u);
  EXPECT_EQ(mode_of(data() / "secrets.key"), 0600u);
  EXPECT_NE(slurp(data() / "secrets.key"), first_bytes);
  EXPECT_FALSE(fs::exists(data() / "secrets.key.new"));
  // The database: the old key opens nothing any more; the new one opens everything.
  const SecretKey second = key_in("secrets.key");
  EXPECT_FALSE(first.open(sealed_secret(), "staging/web/DB_PASSWORD"));
  EXPECT_FALSE(first.open(sealed_hook(), "notify/ops"));
  EXPECT_EQ(second.open(sealed_secret(), "staging/web/DB_PASSWORD").value(), kSecret);
  EXPECT_EQ(second.open(sealed_hook(), "notify/ops").value(), hook_secret);

  // The running server uses the new key: the app gets its secret, the webhook signs right.
  deploy_and_check("1.0.0", &receiver);
  // A secret set now is sealed with the new key.
  ASSERT_NO_THROW(set_secret());
  EXPECT_EQ(second.open(sealed_secret(), "staging/web/DB_PASSWORD").value(), kSecret);

  // A restart.
  ASSERT_TRUE(lab_.stop_server());
  ASSERT_TRUE(lab_.start_server());
  ASSERT_TRUE(lab_.wait_for_nodes());
  deploy_and_check("1.0.1", &receiver);

  // A second rotation replaces secrets.key.old with the key it replaces.
  r = cli({"secret", "rotate-key", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(i64(parse(r.out, "rotate-key"), "config_secrets"), 1) << r.out;
  EXPECT_EQ(key_in("secrets.key.old").mac_hex("x"), second.mac_hex("x"));
  EXPECT_EQ(mode_of(data() / "secrets.key.old"), 0600u);
  deploy_and_check("1.0.2", &receiver);

  // Audited, by the token that did it; refused to anyone but an admin.
  const auto audit = to_json(cli_json({"audit"}));
  EXPECT_TRUE(has(audit, "secret.rotate_key")) << audit;
  auto viewer = cli_json({"token", "create", "--role", "deployer", "--name", "dep"});
  r = cli_env({"secret", "rotate-key"},
              {{"SLIPWAY_SERVER", info().server_url}, {"SLIPWAY_TOKEN", str(viewer, "token")}});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  auto h = http("POST", "/api/v1/secrets/rotate-key", R"({"key":"mine"})");
  EXPECT_EQ(h.status, 400) << "a body is refused: " << h.body;
}

// A stop in the middle of a rotation: before its transaction committed (the new key file is
// discarded at the next start), or after (the next start puts the new key in place).
TEST_F(SecretRotationTest, AnInterruptedRotationIsFinishedOrDiscardedAtTheNextStart) {
  ASSERT_NO_THROW(start_lab(1));
  ASSERT_NO_THROW(set_secret());
  for (const char* v : {"1.0.0", "1.0.1"})
    ASSERT_EQ(push(release(v), "web", v).exit_code, 0);
  const std::string before = slurp(data() / "secrets.key");

  // Stopped before the commit: a new key written, the database still sealed with the old one.
  ASSERT_TRUE(lab_.stop_server());
  const SecretKey stray = SecretKey::random();
  ASSERT_TRUE(stray.write_file(data() / "secrets.key.new", "key"));
  ASSERT_TRUE(lab_.start_server());
  ASSERT_TRUE(lab_.wait_for_nodes());
  EXPECT_FALSE(fs::exists(data() / "secrets.key.new"));
  EXPECT_EQ(slurp(data() / "secrets.key"), before);
  deploy_and_check("1.0.0", nullptr);

  // Stopped after the commit, before the files were switched: the database is sealed with the key
  // in secrets.key.new (as the transaction leaves it: the values and the key check).
  ASSERT_TRUE(lab_.stop_server());
  const SecretKey old_key = key_in("secrets.key");
  const SecretKey next = SecretKey::random();
  {
    SqliteFile f(db());
    const std::string check =
        f.query("SELECT value FROM meta WHERE key = 'secrets/key_check'").at(0).at(0);
    const auto text = old_key.open(check, "meta/secrets_key_check");
    ASSERT_TRUE(text) << "the key check opens with the key in use";
    const auto plain = old_key.open(sealed_secret(), "staging/web/DB_PASSWORD");
    ASSERT_TRUE(plain);
    f.exec(fmt::format(
        "BEGIN; UPDATE config_entries SET value = '{}' WHERE key = 'DB_PASSWORD'; "
        "UPDATE meta SET value = '{}' WHERE key = 'secrets/key_check'; COMMIT",
        next.seal(*plain, "staging/web/DB_PASSWORD"), next.seal(*text, "meta/secrets_key_check")));
  }
  ASSERT_TRUE(next.write_file(data() / "secrets.key.new", "key"));
  ASSERT_TRUE(lab_.start_server());
  ASSERT_TRUE(lab_.wait_for_nodes());
  EXPECT_FALSE(fs::exists(data() / "secrets.key.new"));
  EXPECT_EQ(key_in("secrets.key").mac_hex("x"), next.mac_hex("x")) << "the rotation was finished";
  EXPECT_EQ(slurp(data() / "secrets.key.old"), before);
  deploy_and_check("1.0.1", nullptr);
  EXPECT_TRUE(has(slurp(data() / "server.log"), "finished the rotation of the secrets key"));
}

}  // namespace
}  // namespace slipway::e2e
