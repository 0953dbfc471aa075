// slipway push and slipway versions against a real server.
#include <algorithm>
#include <fstream>
#include <random>

#include "artifacts/archive.h"
#include "common/crypto.h"
#include "e2e/harness.h"

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
};

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
