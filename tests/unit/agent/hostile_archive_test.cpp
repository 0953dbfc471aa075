// Hostile archives sent to a node that runs a good release: each is refused at the agent (the
// install fails at `unpack`), nothing outside the new release's directory changes -- not the
// agent's own files, not the running release, not a directory next to the agent's root -- and the
// node stays on its previous release, still running. The classes are those of the public history
// of tar extraction bugs; tests/unit/artifacts/archive_test.cpp covers each at the extractor with
// more variants.
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "agent/node_runtime.h"
#include "agent_test_util.h"
#include "common/strings.h"

namespace slipway::agent {
namespace {

using artifacts::ArchiveEntry;
using artifacts::EntryType;
using testing::BuiltRelease;
using testing::file_entry;
using testing::LocalFetcher;
using testing::process_gone;
using testing::RecordingSink;
using testing::slurp;
using testing::TempDir;

constexpr const char* kManifest = "start: ./bin/run\n";

ArchiveEntry link_entry(EntryType type, std::string path, std::string target) {
  ArchiveEntry e;
  e.path = std::move(path);
  e.type = type;
  e.link_target = std::move(target);
  e.mode = type == EntryType::symlink ? 0777 : 0644;
  return e;
}
ArchiveEntry symlink(std::string path, std::string target) {
  return link_entry(EntryType::symlink, std::move(path), std::move(target));
}
ArchiveEntry hardlink(std::string path, std::string target) {
  return link_entry(EntryType::hardlink, std::move(path), std::move(target));
}
ArchiveEntry special(std::string path, EntryType type) {
  ArchiveEntry e;
  e.path = std::move(path);
  e.type = type;
  e.mode = 0666;
  return e;
}

// Everything under `root`, described without following links; `skip` names (relative paths)
// that change by themselves (the running app's log).
std::map<std::string, std::string> describe_tree(const fs::path& root,
                                                 const std::vector<std::string>& skip = {}) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().lexically_relative(root).string();
    if (std::find(skip.begin(), skip.end(), rel) != skip.end()) continue;
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " ino=" << st.st_ino;
    if (!S_ISDIR(st.st_mode)) d << " size=" << st.st_size << " mtime=" << st.st_mtime;
    if (S_ISREG(st.st_mode)) d << " content=" << slurp(it->path());
    if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(it->path()).string();
    out[rel] = d.str();
  }
  return out;
}

// A .tar.gz.gz: the archive gzip-compressed once more (libarchive undoes any number of layers),
// so that a tar of zeros shrinks far beyond gzip's own limit of about 1000:1.
void gzip_again(const fs::path& in, const fs::path& out) {
  const auto data = slurp(in);
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                            archive_write_free);
  ASSERT_EQ(archive_write_set_format_raw(a.get()), ARCHIVE_OK);
  ASSERT_EQ(archive_write_add_filter_gzip(a.get()), ARCHIVE_OK);
  ASSERT_EQ(archive_write_open_filename(a.get(), out.c_str()), ARCHIVE_OK);
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(),
                                                                  archive_entry_free);
  archive_entry_set_pathname(e.get(), "data");
  archive_entry_set_filetype(e.get(), AE_IFREG);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
  ASSERT_EQ(archive_write_header(a.get(), e.get()), ARCHIVE_OK);
  ASSERT_EQ(archive_write_data(a.get(), data.data(), data.size()),
            static_cast<la_ssize_t>(data.size()));
  ASSERT_EQ(archive_write_close(a.get()), ARCHIVE_OK);
}

class HostileArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    id_.name = "node-1";
    id_.env = "staging";
    id_.address = "127.0.0.1";
    id_.root = root_.path();
    runtime_ = std::make_unique<NodeRuntime>(id_, fetcher_);
    ASSERT_TRUE(runtime_->open());
    // The agent's own files, and a directory next to its root: what an archive would aim at.
    ASSERT_TRUE(write_file_atomic(root_.path() / "agent.key", "agent credential", 0600));
    ASSERT_TRUE(write_file_atomic(outside_.path() / "target.txt", "outside target"));

    // The good release, running.
    good_entries_ = {
        file_entry("slipway.yaml", std::string("start: ./bin/run --address ${SLIPWAY_ADDRESS} "
                                               "--port ${SLIPWAY_PORT}\n"
                                               "health:\n"
                                               "  http: http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/"
                                               "health\n"
                                               "  healthy_for: 100ms\n"
                                               "  interval: 50ms\n")),
        testing::dir_entry("bin"),
        file_entry("bin/run",
                   std::string("#!/bin/sh\nexec ") + SLIPWAY_SAMPLE_SERVICE + " \"$@\"\n", 0755)};
    good_ = build("good.tar.gz", good_entries_);
    const auto res = install("1.0.0", good_);
    ASSERT_TRUE(res.ok) << res.reason;
    ASSERT_EQ(current(), "1.0.0");
    pid_ = app_pid();
    ASSERT_GT(pid_, 0);
  }
  void TearDown() override {
    if (runtime_) runtime_->shutdown();
  }

  BuiltRelease build(const std::string& name, const std::vector<ArchiveEntry>& entries) {
    const fs::path out = archives_.path() / name;
    auto st = artifacts::write_tar_gz(out, entries);
    EXPECT_TRUE(st) << st.error().message;
    return registered(out);
  }
  BuiltRelease registered(const fs::path& file) {
    auto sha = sha256_file(file);
    EXPECT_TRUE(sha.has_value());
    BuiltRelease r{file, sha ? *sha : ""};
    fetcher_.add(r.sha256, r.archive);
    return r;
  }

  protocol::InstallResult install(const std::string& version, const BuiltRelease& r) {
    protocol::InstallCommand c;
    c.action = "a-" + version;
    c.deploy = 1;
    c.app = "web";
    c.version = version;
    c.sha256 = r.sha256;
    c.url = "/api/v1/blobs/" + r.sha256;
    c.keep_releases = 5;
    sink_.clear();
    return runtime_->install(c, sink_);
  }

  fs::path app_dir() const { return root_.path() / "apps" / "web"; }
  std::optional<std::string> current() const {
    std::error_code ec;
    auto t = fs::read_symlink(app_dir() / "current", ec);
    if (ec) return std::nullopt;
    return t.filename().string();
  }
  pid_t app_pid() const {
    const std::string s(trim(slurp(app_dir() / "app.pid")));
    return s.empty() ? 0 : std::stoi(s);
  }

  // Installs `bad` as 6.6.6: refused at unpack, nothing changed outside, still on 1.0.0.
  void ExpectRefusedAtTheAgent(const BuiltRelease& bad, const std::string& reason_fragment) {
    const std::vector<std::string> skip = {"apps/web/app.log"};
    const auto root_before = describe_tree(root_.path(), skip);
    const auto outside_before = describe_tree(outside_.path());
    const auto res = install("6.6.6", bad);
    EXPECT_FALSE(res.ok) << "a hostile archive was installed";
    EXPECT_EQ(sink_.status("unpack"), "failed") << sink_.output("unpack");
    EXPECT_NE(res.reason.find(reason_fragment), std::string::npos) << res.reason;
    EXPECT_EQ(res.version, "1.0.0");
    EXPECT_EQ(current(), "1.0.0");
    EXPECT_EQ(app_pid(), pid_);
    EXPECT_FALSE(process_gone(pid_)) << "the running release was stopped";
    EXPECT_EQ(describe_tree(root_.path(), skip), root_before)
        << "something in the agent's root changed";
    EXPECT_EQ(describe_tree(outside_.path()), outside_before);
    EXPECT_EQ(slurp(root_.path() / "agent.key"), "agent credential");
    EXPECT_EQ(slurp(outside_.path() / "target.txt"), "outside target");
  }

  std::vector<ArchiveEntry> with_manifest(std::vector<ArchiveEntry> entries) {
    entries.insert(entries.begin(), file_entry("slipway.yaml", kManifest));
    return entries;
  }
  std::vector<ArchiveEntry> good_entries_with(const std::vector<ArchiveEntry>& more) const {
    auto out = good_entries_;
    out.insert(out.end(), more.begin(), more.end());
    return out;
  }
  std::string key() const { return (root_.path() / "agent.key").string(); }
  std::string outside() const { return outside_.path().string(); }

  TempDir root_;
  TempDir outside_;
  TempDir archives_;
  NodeIdentity id_;
  LocalFetcher fetcher_;
  RecordingSink sink_;
  std::unique_ptr<NodeRuntime> runtime_;
  std::vector<ArchiveEntry> good_entries_;
  BuiltRelease good_;
  pid_t pid_ = 0;
};

// The release is unpacked into ROOT/apps/web/releases/.6.6.6.tmp-XXXX: "../" is releases/,
// "../../" the app's directory (current, meta, state.json), "../../../../" the agent's root.

TEST_F(HostileArchiveTest, DotDotEntriesAimedAtTheAgentsOwnFiles) {
  for (const char* path :
       {"../1.0.0/bin/run", "../../current", "../../state.json", "../../meta/1.0.0.json",
        "../../../../agent.key", "bin/../../../../../agent.key"}) {
    SCOPED_TRACE(path);
    ExpectRefusedAtTheAgent(
        build("dotdot.tar.gz", with_manifest({file_entry(path, "pwned", 0755)})), "..");
  }
}

TEST_F(HostileArchiveTest, AbsolutePaths) {
  ExpectRefusedAtTheAgent(build("abs.tar.gz", with_manifest({file_entry(key(), "pwned")})),
                          "absolute");
  ExpectRefusedAtTheAgent(
      build("abs2.tar.gz", with_manifest({file_entry(outside() + "/target.txt", "pwned")})),
      "absolute");
}

TEST_F(HostileArchiveTest, SymlinksLeavingTheRelease) {
  ExpectRefusedAtTheAgent(build("abs-link.tar.gz", with_manifest({symlink("key", key())})),
                          "absolute path");
  ExpectRefusedAtTheAgent(build("rel-link.tar.gz", with_manifest({symlink("up", "../../../..")})),
                          "leads outside");
  // Through a chain of links, each harmless-looking on its own.
  ExpectRefusedAtTheAgent(
      build("chain.tar.gz", with_manifest({testing::dir_entry("a"), symlink("a/one", "../two"),
                                           symlink("two", "three"), symlink("three", "..")})),
      "leads outside");
}

TEST_F(HostileArchiveTest, ALinkThenAFileWrittenThroughIt) {
  ExpectRefusedAtTheAgent(build("through.tar.gz", with_manifest({symlink("app", app_dir().string()),
                                                                 file_entry("app/current", "x")})),
                          "");
  ExpectRefusedAtTheAgent(
      build("through-inner.tar.gz", with_manifest({testing::dir_entry("d"), symlink("l", "d"),
                                                   file_entry("l/x", "written through a link")})),
      "");
}

TEST_F(HostileArchiveTest, HardLinks) {
  ExpectRefusedAtTheAgent(build("hard-abs.tar.gz", with_manifest({hardlink("h", key())})), "");
  ExpectRefusedAtTheAgent(
      build("hard-rel.tar.gz", with_manifest({hardlink("h", "../../../../agent.key")})), "");
  ExpectRefusedAtTheAgent(build("hard-self.tar.gz", with_manifest({hardlink("h", "h")})), "");
  ExpectRefusedAtTheAgent(
      build("hard-current.tar.gz", with_manifest({hardlink("run", "../1.0.0/bin/run")})), "");
}

TEST_F(HostileArchiveTest, OverLongPaths) {
  ExpectRefusedAtTheAgent(
      build("long.tar.gz", with_manifest({file_entry(std::string(5000, 'a'), "x")})),
      "longer than");
  std::string deep;
  for (int i = 0; i < 600; ++i)
    deep += "d/";
  ExpectRefusedAtTheAgent(build("deep.tar.gz", with_manifest({file_entry(deep + "f", "x")})),
                          "longer than");
}

TEST_F(HostileArchiveTest, DeviceNodesAndFifos) {
  ExpectRefusedAtTheAgent(
      build("chr.tar.gz", with_manifest({special("null", EntryType::char_device)})), "device");
  ExpectRefusedAtTheAgent(
      build("blk.tar.gz", with_manifest({special("sda", EntryType::block_device)})), "device");
  ExpectRefusedAtTheAgent(build("fifo.tar.gz", with_manifest({special("fifo", EntryType::fifo)})),
                          "FIFOs");
}

TEST_F(HostileArchiveTest, DuplicateEntries) {
  ExpectRefusedAtTheAgent(
      build("dup.tar.gz", with_manifest({file_entry("bin", "first"), file_entry("bin", "second")})),
      "");
  // slipway.yaml twice: which one would the agent read?
  ExpectRefusedAtTheAgent(build("dup-manifest.tar.gz",
                                with_manifest({file_entry("./slipway.yaml", "start: ./evil\n")})),
                          "");
}

TEST_F(HostileArchiveTest, DecompressionBombByRatio) {
  // 80 MiB of zeros in a file of a few kilobytes: refused once the ratio check starts (64 MiB out
  // at the agent's default limits), long before the disk fills.
  ArchiveEntry zeros = file_entry("zeros", "");
  zeros.declared_size = 80LL << 20;
  const fs::path once = archives_.path() / "bomb.tar.gz";
  ASSERT_TRUE(artifacts::write_tar_gz(once, with_manifest({zeros})));
  const fs::path twice = archives_.path() / "bomb.tar.gz.gz";
  gzip_again(once, twice);
  ASSERT_LT(fs::file_size(twice), 64u << 10);
  ExpectRefusedAtTheAgent(registered(twice), "expands more than");
}

TEST_F(HostileArchiveTest, NotAnArchiveAtAll) {
  const fs::path junk = archives_.path() / "junk.tar.gz";
  ASSERT_TRUE(write_file_atomic(junk, std::string("\x1f\x8b\x08\x00 not really gzip", 20)));
  ExpectRefusedAtTheAgent(registered(junk), "");
}

// setuid and setgid bits are not a reason to refuse a release (archives made on systems with
// setgid group directories carry them); they are dropped, so the agent (often root) never
// creates a setuid file. Nothing outside the release changes.
TEST_F(HostileArchiveTest, SetuidAndSetgidBitsAreDropped) {
  auto entries = good_entries_with(
      {file_entry("bin/suid", "#!/bin/sh\n", 04755), file_entry("bin/sgid", "#!/bin/sh\n", 02755)});
  const auto outside_before = describe_tree(outside_.path());
  const auto res = install("1.1.0", build("suid.tar.gz", entries));
  ASSERT_TRUE(res.ok) << res.reason;
  for (const auto& e : fs::recursive_directory_iterator(app_dir() / "releases" / "1.1.0")) {
    struct stat st;
    ASSERT_EQ(::lstat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & (S_ISUID | S_ISGID), 0u) << e.path();
  }
  EXPECT_EQ(describe_tree(outside_.path()), outside_before);
  EXPECT_EQ(slurp(root_.path() / "agent.key"), "agent credential");
}

}  // namespace
}  // namespace slipway::agent
