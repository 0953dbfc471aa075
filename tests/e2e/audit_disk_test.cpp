// Fail closed (issue 13): an action whose audit entry cannot be written is refused, and nothing
// of it happens. The disk under the server's database really fills up: the server runs in a mount
// namespace of its own (`unshare -rm`, no root needed) where a 16 MiB tmpfs holds slipway.db (a
// symbolic link in the data directory points there; SQLite follows it and keeps its -wal next to
// the file), and the test fills that tmpfs through /proc/PID/root until the kernel answers ENOSPC.
// Freezing, creating a token and deploying are then refused with the reason (exit code != 0) and
// leave no freeze, no token, no deploy; once the space is back, they work again. Skipped, with the
// reason, where the kernel refuses unprivileged mount namespaces.
#include <cerrno>
#include <cstring>
#include <fstream>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

constexpr const char* kUnshare = "/usr/bin/unshare";

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Writes zeros to `file` until the file system is full; the bytes written.
uint64_t fill(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(fmt::format("open {}: {}", file.string(), strerror(errno)));
  uint64_t total = 0;
  std::string zeros(1 << 20, '\0');
  for (size_t chunk : {size_t{1} << 20, size_t{64} << 10, size_t{4} << 10, size_t{512}}) {
    for (;;) {
      const ssize_t n = ::write(fd, zeros.data(), chunk);
      if (n <= 0) break;
      total += static_cast<uint64_t>(n);
    }
  }
  ::close(fd);
  return total;
}

class AuditDiskTest : public E2eTest {
 protected:
  // Whether this kernel lets a user make a mount namespace and mount a tmpfs in it; why not.
  std::string namespaces_refused() {
    if (!fs::exists(kUnshare)) return std::string(kUnshare) + " is not installed";
    const fs::path probe = dir() / "probe";
    fs::create_directories(probe);
    auto r = run_process({kUnshare, "-rm", "/bin/sh", "-c",
                          "mount -t tmpfs -o size=1m tmpfs \"$0\"", probe.string()},
                         {}, Millis(20'000));
    return r.exit_code == 0 ? "" : "unshare -rm + mount tmpfs failed: " + r.describe();
  }

  // A wrapper the lab runs instead of slipway: `server` in its own mount namespace with a small
  // tmpfs at `disk`, anything else (the agents) as it is.
  fs::path write_wrapper(const fs::path& disk) {
    const fs::path wrapper = dir() / "slipway-with-small-disk";
    std::ofstream out(wrapper);
    out << "#!/bin/sh\n"
        << "if [ \"$1\" = server ]; then\n"
        << "  exec " << kUnshare << " -rm /bin/sh -c "
        << "'mount -t tmpfs -o size=16m tmpfs \"$0\" && exec \"$@\"' '" << disk.string() << "' '"
        << SLIPWAY_BIN << "' \"$@\"\n"
        << "fi\n"
        << "exec '" << SLIPWAY_BIN << "' \"$@\"\n";
    out.close();
    fs::permissions(wrapper, fs::perms::owner_all);
    return wrapper;
  }

  std::string web_version(const std::string& node) {
    const auto nodes = status_by_node();
    const auto* apps = obj(nodes.at(node)).if_contains("apps");
    if (!apps || !apps->is_object() || !apps->as_object().contains("web")) return "";
    return str(apps->as_object().at("web"), "version");
  }
};

TEST_F(AuditDiskTest, AFullDiskUnderTheAuditLogRefusesTheActionAndNothingHappens) {
  if (const auto why = namespaces_refused(); !why.empty()) GTEST_SKIP() << why;
  const fs::path disk = dir() / "disk";  // a tmpfs, in the server's mount namespace only
  const fs::path data = dir() / "lab" / "server";
  fs::create_directories(disk);
  fs::create_directories(data);
  fs::permissions(data, fs::perms::owner_all);
  fs::create_symlink(disk / "slipway.db", data / "slipway.db");
  lab_bin_ = write_wrapper(disk);
  ASSERT_NO_THROW(start_lab(2));
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  ASSERT_EQ(push(release("1.1.0"), "web", "1.1.0").exit_code, 0);
  auto r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const int64_t first_deploy = i64(latest_deploy(), "id");

  // The disk fills up (seen from inside the server's namespace).
  const fs::path seen =
      fs::path(fmt::format("/proc/{}/root", info().server_pid)) / disk.relative_path();
  ASSERT_TRUE(fs::exists(seen / "slipway.db")) << "the database lives on the small disk";
  const fs::path filler = seen / "filler";
  EXPECT_GT(fill(filler), 0u);
  // SQLite may still reuse room its log file holds already: go on until an audited request (a
  // token request without a role: refused by its handler, so harmless) can no longer be logged.
  int status = 0;
  for (int i = 0; i < 3000 && status != 503; ++i)
    status = http("POST", "/api/v1/tokens", "{}").status;
  ASSERT_EQ(status, 503) << "the audit log never failed on a full disk";

  r = cli({"freeze", "--env", "staging", "--until", "2h", "--reason", "disk full"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.err, "the audit log cannot be written")) << r.describe();
  EXPECT_TRUE(has(r.err, "nothing was done")) << r.describe();
  r = cli({"token", "create", "--role", "admin", "--name", "while-full"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.err, "the audit log cannot be written")) << r.describe();
  EXPECT_FALSE(has(r.out, "slwt_")) << "no token was made: " << r.describe();
  r = cli({"deploy", "web", "1.1.0", "--env", "staging"});
  EXPECT_NE(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.err, "the audit log cannot be written")) << r.describe();

  // The disk is back.
  fs::remove(filler);
  EXPECT_TRUE(arr(cli_json({"freezes"}), "freezes").empty()) << "no freeze was set";
  const auto tokens = cli_json({"token", "list"});
  EXPECT_FALSE(has(to_json(tokens), "while-full")) << to_json(tokens);
  EXPECT_EQ(i64(latest_deploy(), "id"), first_deploy) << "no deploy was started";
  for (const char* node : {"node-1", "node-2"})
    EXPECT_EQ(web_version(node), "1.0.0") << node;

  // ... and so is every action.
  r = cli({"freeze", "--env", "staging", "--until", "2h", "--reason", "disk back"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(cli({"unfreeze", "--env", "staging"}).exit_code, 0);
  r = cli({"token", "create", "--role", "viewer", "--name", "after-full"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "1.1.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  for (const char* node : {"node-1", "node-2"})
    EXPECT_EQ(web_version(node), "1.1.0") << node;
  r = cli({"audit", "verify"});
  EXPECT_EQ(r.exit_code, 0) << "the failed appends left the chain whole: " << r.describe();
}

}  // namespace
}  // namespace slipway::e2e
