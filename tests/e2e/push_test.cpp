// slipway push and slipway versions against a real server; who may push (a push is a release
// decision: a token scoped to environments may not, a publisher may).
#include <algorithm>
#include <fstream>
#include <random>

#include <fmt/format.h>

#include "artifacts/archive.h"
#include "common/crypto.h"
#include "e2e/harness.h"
#include "net/http_client.h"

namespace slipway::e2e {
namespace {

class PushTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    start_lab(0);
  }

  // A .tar.gz with these entries.
  fs::path archive(const std::string& name, const std::vector<artifacts::ArchiveEntry>& entries) {
    const fs::path p = dir() / name;
    auto st = artifacts::write_tar_gz(p, entries);
    if (!st) throw std::runtime_error(st.error().message);
    return p;
  }
  static artifacts::ArchiveEntry file(std::string path, std::string content) {
    artifacts::ArchiveEntry e;
    e.path = std::move(path);
    e.content = std::move(content);
    return e;
  }
  // POST /api/v1/tokens with the admin token; the secret.
  std::string create_token(const std::string& body) {
    auto r = http("POST", "/api/v1/tokens", body);
    if (r.status != 201) throw std::runtime_error("token create: " + r.body);
    return str(parse(r.body, "token"), "token");
  }
  // The CLI as the holder of `token`.
  ProcResult cli_as(const std::string& token, const std::vector<std::string>& args) {
    return cli_env(args, {{"SLIPWAY_SERVER", info().server_url}, {"SLIPWAY_TOKEN", token}});
  }
  // What the server's artifact store holds in its directory of uploads in progress.
  std::vector<std::string> uploads_in_progress() {
    std::vector<std::string> out;
    const fs::path tmp = info().dir / "server" / "artifacts" / "tmp";
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(tmp, ec))
      out.push_back(e.path().filename().string());
    return out;
  }
};

constexpr const char* kStagingPushRefusal =
    "token 'ci' is scoped to environments staging: pushing a version makes it deployable "
    "everywhere; use a token valid in every environment of the app, or one with the publisher "
    "role";

// Staging's CI must not put code into production: a pushed version is deployable in every
// environment (a deploy without a version takes the newest), so a token scoped to environments
// cannot push; the refusal comes before a byte of the body is read.
TEST_F(PushTest, ATokenScopedToEnvironmentsCannotPushAndItsBodyIsNeverRead) {
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  const std::string ci =
      create_token(R"({"role":"deployer","name":"ci","envs":["staging"],"apps":["web"]})");

  auto r = cli_as(ci, {"push", release("2.0.0").string(), "--app", "web", "--version", "2.0.0"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find(kStagingPushRefusal), std::string::npos) << r.describe();
  EXPECT_EQ(http("GET", "/api/v1/artifacts/web/2.0.0").status, 404);

  // A push of 3 GiB announced, and no body sent: the answer comes at once, nothing is stored.
  const auto url = net::parse_url(info().server_url);
  ASSERT_TRUE(url);
  const std::string head = fmt::format(
      "POST /api/v1/artifacts/web/6.6.6 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
      url->host, ci, 3ULL << 30);
  const std::string answer =
      raw_exchange(url->host, url->port, head + "first bytes", Millis(30'000));
  EXPECT_EQ(answer.rfind("HTTP/1.1 403", 0), 0u) << answer;
  EXPECT_NE(answer.find(kStagingPushRefusal), std::string::npos) << answer;
  EXPECT_TRUE(uploads_in_progress().empty());
  EXPECT_EQ(http("GET", "/api/v1/artifacts/web/6.6.6").status, 404);

  // Every refusal is in the audit log, with the token and the app.
  int refused = 0;
  const auto audit = get_json("/api/v1/audit");
  for (const auto& e : arr(audit, "entries")) {
    if (str(e, "action") != "artifact.push" || str(e, "token") != "ci") continue;
    EXPECT_EQ(i64(e, "status"), 403) << to_json(e);
    EXPECT_NE(str(e, "target").find("app=web"), std::string::npos) << to_json(e);
    ++refused;
  }
  EXPECT_EQ(refused, 2);
  // The newest version is still the one an unscoped token pushed.
  EXPECT_EQ(str(cli_json({"versions", "web"}), "latest"), "1.0.0");
}

// What CI uses: a publisher pushes (its app scope still holds) and reads, and deploys nothing; a
// deployer valid in every environment pushes too.
TEST_F(PushTest, APublisherPushesAndReadsButDoesNotDeploy) {
  auto created = cli_json({"token", "create", "--role", "publisher", "--name", "ci-publish"});
  const std::string publisher = str(created, "token");
  EXPECT_EQ(str(created, "role"), "publisher");
  auto r =
      cli_as(publisher, {"push", release("1.0.0").string(), "--app", "web", "--version", "1.0.0"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli_as(publisher, {"versions", "web"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = cli_as(publisher, {"status", "--env", "production"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = cli_as(publisher, {"deploy", "web", "1.0.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("needs the deployer role"), std::string::npos) << r.describe();
  r = cli_as(publisher, {"rollback", "web", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  r = cli_as(publisher, {"run", "--env", "staging", "--", "true"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  r = cli_as(publisher, {"token", "list"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();

  // A publisher is never scoped to environments; an app scope limits what it pushes.
  r = cli({"token", "create", "--role", "publisher", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("publisher token cannot be scoped to environments"), std::string::npos)
      << r.describe();
  const std::string api_only =
      create_token(R"({"role":"publisher","name":"api-ci","apps":["api"]})");
  r = cli_as(api_only, {"push", release("1.0.1").string(), "--app", "web", "--version", "1.0.1"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("scoped to app(s) api"), std::string::npos) << r.describe();
  r = cli_as(api_only, {"push", release("1.0.1", {.app = "api"}).string(), "--app", "api",
                        "--version", "1.0.1"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  // A deployer valid in every environment (scoped to its app or not) pushes.
  const std::string web_deployer =
      create_token(R"({"role":"deployer","name":"web-deployer","apps":["web"]})");
  r = cli_as(web_deployer,
             {"push", release("1.1.0").string(), "--app", "web", "--version", "1.1.0"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  // A viewer does not.
  const std::string viewer = create_token(R"({"role":"viewer","name":"look"})");
  r = cli_as(viewer, {"push", release("1.2.0").string(), "--app", "web", "--version", "1.2.0"});
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_NE(r.err.find("needs the publisher role"), std::string::npos) << r.describe();
  EXPECT_EQ(str(cli_json({"versions", "web"}), "latest"), "1.1.0");
  EXPECT_TRUE(uploads_in_progress().empty());
}

TEST_F(PushTest, NewVersionSameBytesAgainAndConflictingBytes) {
  const fs::path first = release("1.0.0", {.message = "the first build"});
  auto r = push(first, "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("pushed web 1.0.0"), std::string::npos) << r.describe();

  // The same bytes again: fine, nothing changes.
  r = push(first, "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("already"), std::string::npos) << r.describe();

  // Other bytes under the same version: refused, the original stays.
  const fs::path other = release("1.0.0", {.message = "a different build", .out_subdir = "other"});
  const auto sha_first = sha256_file(first);
  const auto sha_other = sha256_file(other);
  ASSERT_TRUE(sha_first && sha_other);
  ASSERT_NE(*sha_first, *sha_other);
  r = push(other, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("already exists with different content"), std::string::npos) << r.describe();
  EXPECT_NE(r.err.find("immutable"), std::string::npos) << r.describe();

  auto d = http("GET", "/api/v1/artifacts/web/1.0.0/download");
  ASSERT_EQ(d.status, 200) << d.body.substr(0, 300);
  EXPECT_EQ(sha256_hex(d.body), *sha_first);
  EXPECT_EQ(d.headers["x-slipway-sha256"], *sha_first);
  auto meta = get_json("/api/v1/artifacts/web/1.0.0");
  EXPECT_EQ(str(meta, "sha256"), *sha_first);
  // The blob by digest, as agents fetch it, too.
  auto b = http("GET", "/api/v1/blobs/" + *sha_first);
  ASSERT_EQ(b.status, 200);
  EXPECT_EQ(sha256_hex(b.body), *sha_first);

  // Only one version is listed.
  auto v = cli_json({"versions", "web"});
  ASSERT_EQ(arr(v, "versions").size(), 1u) << to_json(v);
}

TEST_F(PushTest, BadArchivesAreRefusedWithTheReason) {
  // Not an archive at all.
  const fs::path junk = dir() / "junk.tar.gz";
  {
    std::ofstream out(junk, std::ios::binary);
    out << "this is not a tarball, only some text that pretends to be one\n";
  }
  auto r = push(junk, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("not a readable .tar.gz"), std::string::npos) << r.describe();

  // A good archive without slipway.yaml.
  const fs::path bare = archive("bare.tar.gz", {file("README", "hello\n"), file("bin/x", "x")});
  r = push(bare, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("no slipway.yaml"), std::string::npos) << r.describe();

  // A manifest that is not valid YAML: the message gives the line.
  const fs::path bad_yaml = archive(
      "bad-yaml.tar.gz",
      {file("slipway.yaml", "start: ./bin/server\nhealth:\n  http: [unclosed\n  timeout: 3s\n")});
  r = push(bad_yaml, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("slipway.yaml line "), std::string::npos) << r.describe();

  // Valid YAML, but an unknown key on line 3.
  const fs::path unknown_key = archive(
      "unknown-key.tar.gz",
      {file("slipway.yaml", "start: ./bin/server\nhooks:\n  after_instal: true\nbogus: 1\n")});
  r = push(unknown_key, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("slipway.yaml line 3"), std::string::npos) << r.describe();

  // No way to start the app.
  const fs::path no_start =
      archive("no-start.tar.gz", {file("slipway.yaml", "# nothing here\nhealth:\n  tcp: x:1\n")});
  r = push(no_start, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("slipway.yaml line "), std::string::npos) << r.describe();

  // A hostile archive (an entry escaping with ..) is refused at push time.
  const fs::path hostile = archive(
      "hostile.tar.gz", {file("slipway.yaml", "start: ./bin/server\n"), file("../evil", "x")});
  r = push(hostile, "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_NE(r.err.find("evil"), std::string::npos) << r.describe();

  // None of them made it into the repository, and a good one still goes in.
  auto list = http("GET", "/api/v1/artifacts/web");
  EXPECT_EQ(list.status, 404) << list.body;
  r = push(release("1.0.0"), "web", "1.0.0");
  EXPECT_EQ(r.exit_code, 0) << r.describe();

  // A file that does not exist.
  r = push(dir() / "missing.tar.gz", "web", "1.0.1");
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

TEST_F(PushTest, VersionsAreListedInSemVerOrder) {
  std::vector<std::string> versions = {"1.10.0", "1.2.0", "1.9.0-rc.1", "1.9.0"};
  std::mt19937 rng(std::random_device{}());
  std::shuffle(versions.begin(), versions.end(), rng);
  std::string order;
  for (const auto& v : versions) {
    order += v + " ";
    auto r = push(release(v, {.app = "shop"}), "shop", v);
    ASSERT_EQ(r.exit_code, 0) << "pushing " << v << ": " << r.describe();
  }
  auto j = cli_json({"versions", "shop"});
  std::vector<std::string> listed;
  for (const auto& v : arr(j, "versions"))
    listed.push_back(str(v, "version"));
  EXPECT_EQ(listed, (std::vector<std::string>{"1.2.0", "1.9.0-rc.1", "1.9.0", "1.10.0"}))
      << "pushed in the order " << order;
  EXPECT_EQ(str(j, "latest"), "1.10.0");
  for (const auto& v : arr(j, "versions")) {
    EXPECT_EQ(str(v, "sha256").size(), 64u) << to_json(v);
    EXPECT_GT(i64(v, "size"), 0) << to_json(v);
  }

  // The table lists them in the same order.
  auto t = cli({"versions", "shop"});
  ASSERT_EQ(t.exit_code, 0) << t.describe();
  const auto p12 = t.out.find("1.2.0");
  const auto prc = t.out.find("1.9.0-rc.1");
  const auto p110 = t.out.find("1.10.0");
  EXPECT_TRUE(p12 < prc && prc < p110) << t.out;

  // An app nobody pushed.
  auto none = cli({"versions", "nothing"});
  EXPECT_EQ(none.exit_code, 2) << none.describe();
}

}  // namespace
}  // namespace slipway::e2e
