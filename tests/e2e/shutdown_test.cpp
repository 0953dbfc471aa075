// A clean stop: the server and its agents, stopped with SIGTERM (alone, or all at the same moment
// as an init system stops a machine), exit with code 0 after a life with something of everything
// in it. A heap corrupted at shutdown shows as an exit code 134 ("corrupted size vs. prev_size"),
// and in the sanitizer build (build-asan, SLIPWAY_SANITIZE) as AddressSanitizer's report and
// exit code 1; Lab::down and Lab::stop_server say which process ended how, with its log's tail.
#include <csignal>

#include "artifacts/archive.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

class ShutdownTest : public E2eTest {
 protected:
  // The sequence the server was seen to corrupt its heap after: deploys (one failing and
  // reverted), a rollback, a refused hostile push, a SIGKILL and a restart, one more deploy.
  void live_a_little() {
    for (const auto& v : {"1.0.0", "1.1.0"}) {
      auto r = push(release(v), "web", v);
      ASSERT_EQ(r.exit_code, 0) << r.describe();
      r = cli({"deploy", "web", v, "--env", "staging", "--batch", "2"});
      ASSERT_EQ(r.exit_code, 0) << r.describe();
    }
    auto r =
        push(release("1.2.0", {.healthy = false, .health_timeout = Millis(2'000)}), "web", "1.2.0");
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    r = cli({"deploy", "web", "1.2.0", "--env", "staging", "--batch", "1"});
    ASSERT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(str(latest_deploy(), "state"), "rolled_back") << to_json(latest_deploy());
    r = cli({"rollback", "web", "--env", "staging"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();

    const fs::path hostile = dir() / "hostile.tar.gz";
    artifacts::ArchiveEntry manifest;
    manifest.path = "slipway.yaml";
    manifest.content = "start: ./bin/server\n";
    artifacts::ArchiveEntry escape;
    escape.path = "../evil";
    escape.content = "x";
    ASSERT_TRUE(artifacts::write_tar_gz(hostile, {manifest, escape}));
    r = push(hostile, "web", "6.6.6");
    ASSERT_EQ(r.exit_code, 2) << r.describe();

    ASSERT_TRUE(lab_.stop_server(SIGKILL));
    ASSERT_TRUE(lab_.start_server());
    ASSERT_TRUE(lab_.wait_for_nodes());
    r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--batch", "3"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    // A deploy still running while everything stops.
    r = cli({"deploy", "web", "1.0.0", "--env", "staging", "--batch", "1", "--detach"});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
};

TEST_F(ShutdownTest, ServerAndAgentsStoppedTogetherExitZero) {
  ASSERT_NO_THROW(start_lab(3));
  ASSERT_NO_FATAL_FAILURE(live_a_little());
  auto st = lab_.down(lab::Lab::StopOrder::together);
  EXPECT_TRUE(st) << st.error().message;
}

TEST_F(ShutdownTest, ServerStoppedAloneThenAgentsExitZero) {
  ASSERT_NO_THROW(start_lab(3));
  ASSERT_NO_FATAL_FAILURE(live_a_little());
  auto st = lab_.stop_server(SIGTERM);
  EXPECT_TRUE(st) << st.error().message;
  st = lab_.down();
  EXPECT_TRUE(st) << st.error().message;
}

}  // namespace
}  // namespace slipway::e2e
