// Freeze windows end to end: a frozen environment refuses deploys (with who, until when and why),
// --force goes through and is recorded, rollbacks stay allowed, a freeze of one app leaves the
// others alone, unfreeze lifts it, and a freeze outlives a server restart. No assertion depends on
// a freeze running out: every freeze here ends hours or days from now.
#include <fmt/format.h>

#include "common/clock.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

using FreezeTest = E2eTest;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(FreezeTest, FrozenEnvRefusesDeploysForceGoesThroughRollbackStaysAllowed) {
  ASSERT_NO_THROW(start_lab(2));
  for (const char* v : {"1.0.0", "1.1.0", "1.2.0"}) {
    auto r = push(release(v), "web", v);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
  }
  auto r = cli({"deploy", "web", "1.0.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  r = cli({"freeze", "--env", "staging", "--until", "2h", "--reason", "Black Friday"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.out, "froze staging (all apps)")) << r.describe();
  auto list = cli_json({"freezes"});
  ASSERT_EQ(arr(list, "freezes").size(), 1u) << to_json(list);
  const auto& fz = arr(list, "freezes").front();
  const int64_t freeze_id = i64(fz, "id");
  EXPECT_GT(freeze_id, 0);
  EXPECT_EQ(str(fz, "env"), "staging");
  EXPECT_EQ(str(fz, "app"), "");
  EXPECT_EQ(str(fz, "reason"), "Black Friday");
  EXPECT_TRUE(boolean(fz, "active"));
  const std::string who = str(fz, "created_by");
  EXPECT_EQ(who, "admin") << "the token's name (the CLI's USER@HOST is only a claim): " << who;
  const std::string until = str(fz, "until");
  ASSERT_GT(parse_time(until), now_ms()) << until;

  // Refused: the message names the freeze, who set it, until when, why, and --force.
  r = cli({"deploy", "web", "1.1.0", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  for (const std::string& part :
       {fmt::format("freeze #{}", freeze_id), who, std::string("Black Friday"),
        format_time_short(parse_time(until)), std::string("--force")}) {
    EXPECT_TRUE(has(r.err, part)) << part << " missing: " << r.describe();
  }
  auto h = http("POST", "/api/v1/deploys", R"({"app":"web","env":"staging","version":"1.1.0"})");
  EXPECT_EQ(h.status, 412) << h.body;
  EXPECT_TRUE(has(h.body, "failed_precondition")) << h.body;
  EXPECT_EQ(arr(get_json("/api/v1/deploys"), "deploys").size(), 1u) << "nothing was started";
  // The status shows the freeze.
  r = cli({"status", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.out, "frozen:") && has(r.out, "Black Friday")) << r.describe();

  // --force goes through, says so, and the deploy keeps the record.
  r = cli({"deploy", "web", "1.1.0", "--env", "staging", "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.err, "forced through")) << r.describe();
  auto forced = latest_deploy();
  const int64_t forced_id = i64(forced, "id");
  EXPECT_EQ(str(forced, "version"), "1.1.0");
  EXPECT_EQ(str(forced, "state"), "succeeded") << to_json(forced);
  EXPECT_TRUE(has(str(forced, "forced_freeze"), fmt::format("freeze #{}", freeze_id)))
      << to_json(forced);
  EXPECT_TRUE(has(str(forced, "forced_freeze"), "Black Friday")) << to_json(forced);
  auto show = cli_json({"history", "show", std::to_string(forced_id)});
  EXPECT_TRUE(has(str(show, "forced_freeze"), "Black Friday")) << to_json(show);
  r = cli({"history", "show", std::to_string(forced_id)});
  EXPECT_TRUE(has(r.out, "forced") && has(r.out, "Black Friday")) << r.describe();
  r = cli({"history", "web"});
  EXPECT_TRUE(has(r.out, "(forced)")) << r.describe();

  // A rollback is never refused by a freeze.
  r = cli({"rollback", "web", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto back = latest_deploy();
  EXPECT_EQ(str(back, "kind"), "rollback");
  EXPECT_EQ(str(back, "version"), "1.0.0");
  EXPECT_EQ(str(back, "forced_freeze"), "") << to_json(back);

  // Unfrozen: deploys work again, and are not marked forced.
  r = cli({"unfreeze", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(has(r.out, fmt::format("lifted freeze #{}", freeze_id))) << r.describe();
  r = cli({"deploy", "web", "1.2.0", "--env", "staging"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(str(latest_deploy(), "forced_freeze"), "");
  r = cli({"freezes"});
  EXPECT_TRUE(has(r.out, "no active freezes")) << r.describe();
  auto all = cli_json({"freezes", "--all"});
  ASSERT_EQ(arr(all, "freezes").size(), 1u) << to_json(all);
  EXPECT_FALSE(boolean(arr(all, "freezes").front(), "active"));
  EXPECT_EQ(str(arr(all, "freezes").front(), "lifted_by"), who);
  // Lifting it again is refused.
  r = cli({"unfreeze", std::to_string(freeze_id)});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(has(r.err, "lifted already")) << r.describe();
}

TEST_F(FreezeTest, AnAppFreezeLeavesOtherAppsAloneAndOutlivesARestart) {
  ASSERT_NO_THROW(start_lab(1));
  auto r = push(release("1.0.0"), "web", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = push(release("1.0.0", {.app = "api", .out_subdir = "api"}), "api", "1.0.0");
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  // Until a day from now, written with a +02:00 offset.
  const TimeMs end = (now_ms() / 1000 + 86'400) * 1000;
  const std::string until = format_time(end + 2 * 3'600'000).substr(0, 19) + "+02:00";
  r = cli(
      {"freeze", "--env", "staging", "--app", "web", "--until", until, "--reason", "web launch"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  auto created = get_json("/api/v1/freezes");
  ASSERT_EQ(arr(created, "freezes").size(), 1u) << to_json(created);
  const int64_t id = i64(arr(created, "freezes").front(), "id");
  EXPECT_EQ(parse_time(str(arr(created, "freezes").front(), "until")), end);
  EXPECT_EQ(str(arr(created, "freezes").front(), "app"), "web");

  r = cli({"deploy", "api", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << "a freeze of web leaves api alone: " << r.describe();
  r = cli({"deploy", "web", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(has(r.err, "web launch")) << r.describe();

  // The freeze outlives the server.
  ASSERT_TRUE(lab_.stop_server(SIGTERM));
  ASSERT_TRUE(lab_.start_server());
  auto alive = lab_.wait_for_nodes();
  ASSERT_TRUE(alive) << alive.error().message;
  r = cli({"deploy", "web", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(has(r.err, fmt::format("freeze #{}", id))) << r.describe();

  // Unfreezing the whole env lifts nothing (the freeze is web's), and says which one is there.
  r = cli({"unfreeze", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(has(r.err, fmt::format("#{} of web in staging", id))) << r.describe();
  r = cli({"unfreeze", std::to_string(id)});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = cli({"deploy", "web", "--env", "staging"});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST_F(FreezeTest, TheCliRefusesBadTimesAndReasonsBeforeAsking) {
  ASSERT_NO_THROW(start_lab(1));
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
      {{"--until", "2020-01-01T00:00:00Z", "--reason", "x"}, "not in the future"},
      {{"--until", "yesterday", "--reason", "x"}, "neither a time"},
      {{"--until", "2026-12-24 18:00", "--reason", "x"}, "neither a time"},
      {{"--until", "2h", "--reason", " "}, "reason is required"},
      {{"--until", "2h", "--reason", std::string(600, 'x')}, "too long"},
      {{"--until", "2h", "--reason", "a\nb"}, "control character"},
  };
  for (const auto& [extra, expected] : cases) {
    std::vector<std::string> args = {"freeze", "--env", "staging"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = cli(args);
    EXPECT_EQ(r.exit_code, 2) << r.describe();
    EXPECT_TRUE(has(r.err, expected)) << expected << ": " << r.describe();
  }
  auto r = cli({"freeze", "--env", "staging", "--until", "2h"});
  EXPECT_EQ(r.exit_code, 2) << "--reason is required: " << r.describe();
  r = cli({"unfreeze"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(arr(get_json("/api/v1/freezes?all=1"), "freezes").empty());
}

}  // namespace
}  // namespace slipway::e2e
