// Actions addressed by id act on the object they authorized. Ids are sequential: a deployer
// scoped to staging fires pauses, aborts, promotes, resumes, lifts and reads at the next few ids
// of deploys, plans and freezes, from several threads at once, while an admin starts production
// deploys, plans and freezes one after the other. None of those requests may ever be accepted:
// every answer is 403 (an object outside the token's scope) or 404 (no such object yet), and no
// production deploy, plan or freeze is paused, aborted, promoted or lifted by it.
#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include <fmt/format.h>

#include "common/clock.h"
#include "e2e/harness.h"

namespace slipway::e2e {
namespace {

// What the attacker saw: every status it got, and per kind of request (deploy control, plan
// control, freeze lift, read) how many were answered otherwise than 403/404, with the first few.
struct Tally {
  std::mutex mu;
  std::map<int, int64_t> statuses;
  std::map<std::string, int64_t> accepted_by_kind;
  std::vector<std::string> accepted;  // the first few
  std::atomic<int64_t> requests{0};

  void add(const std::string& kind, const std::string& what, const net::HttpResult& r) {
    ++requests;
    std::lock_guard lock(mu);
    ++statuses[r.status];
    if (r.status == 403 || r.status == 404) return;
    ++accepted_by_kind[kind];
    if (accepted.size() < 20) {
      accepted.push_back(fmt::format("{} -> {} {}", what, r.status, r.body.substr(0, 200)));
    }
  }
};

std::string lines(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& l : v)
    out += l + "\n";
  return out;
}

// What each attacking thread aims at.
enum class Aim { deploys, plans, freezes, reads };

class IdRaceTest : public E2eTest {
 protected:
  // The ids the admin will use next.
  std::atomic<int64_t> next_deploy_{1};
  std::atomic<int64_t> next_plan_{1};
  std::atomic<int64_t> next_freeze_{1};
  std::atomic<bool> stop_{false};
  Tally tally_;

  // Requests at the next two ids of one kind, as fast as they come back: a check that found no
  // object must never let the action reach the object the admin creates under that id meanwhile.
  void attack(const std::string& token, Aim aim) {
    const auto post = [&](const char* kind, const std::string& t, const std::string& body = "") {
      tally_.add(kind, "POST " + t + " " + body, http("POST", t, body, {}, token));
    };
    const auto get = [&](const std::string& t) {
      tally_.add("read", "GET " + t, http("GET", t, "", {}, token));
    };
    while (!stop_) {
      const int64_t d = next_deploy_;
      const int64_t p = next_plan_;
      const int64_t f = next_freeze_;
      for (int64_t k = 0; k <= 1 && !stop_; ++k) {
        switch (aim) {
          case Aim::deploys:
            for (const char* action : {"pause", "abort", "promote", "resume"})
              post("deploy control", fmt::format("/api/v1/deploys/{}/{}", d + k, action));
            break;
          case Aim::plans:
            for (const char* action : {"abort", "promote"})
              post("plan control", fmt::format("/api/v1/plans/p{}/{}", p + k, action));
            break;
          case Aim::freezes: {
            const std::string freeze = fmt::format("/api/v1/freezes/{}", f + k);
            tally_.add("freeze lift", "DELETE " + freeze, http("DELETE", freeze, "", {}, token));
            post("freeze lift", "/api/v1/freezes/lift", fmt::format(R"({{"id":{}}})", f + k));
            break;
          }
          case Aim::reads:
            // The current ones too (in use, or just over): 403, never their data.
            for (const int64_t id : {d + k - 1, d + k}) {
              if (id < 1) continue;
              get(fmt::format("/api/v1/deploys/{}", id));
              get(fmt::format("/api/v1/deploys/{}/watch", id));
            }
            if (p + k - 1 >= 1) get(fmt::format("/api/v1/plans/p{}", p + k - 1));
            get(fmt::format("/api/v1/plans/p{}", p + k));
            if (f + k - 1 >= 1) get(fmt::format("/api/v1/freezes/{}", f + k - 1));
            get(fmt::format("/api/v1/freezes/{}", f + k));
            break;
        }
      }
    }
  }

  // The newest deploy id in the history (0 when there is none).
  int64_t newest_deploy() {
    const auto list = arr(get_json("/api/v1/deploys?limit=1"), "deploys");
    return list.empty() ? 0 : i64(list.front(), "id");
  }

  // Waits until deploy `id` ends. A deploy the attacker paused is resumed (and noted), so that a
  // run against a server with the race still ends.
  json::value finish_deploy(int64_t id, std::vector<std::string>& harm) {
    for (;;) {
      const auto d = deploy(id);
      const std::string state = str(d, "state");
      if (state == "paused") {
        harm.push_back(fmt::format("deploy #{} was paused: {}", id, str(d, "waiting")));
        http("POST", fmt::format("/api/v1/deploys/{}/resume", id));
      } else if (state != "running") {
        return d;
      }
      std::this_thread::sleep_for(Millis(50));
    }
  }
};

TEST_F(IdRaceTest, ScopedControlsAtTheNextIdsNeverReachProduction) {
  start_lab(1);
  add_agent("prod-1", "production");
  ASSERT_EQ(push(release("1.0.0"), "web", "1.0.0").exit_code, 0);
  ASSERT_EQ(push(release("2.0.0"), "web", "2.0.0").exit_code, 0);
  auto t = http("POST", "/api/v1/tokens",
                R"({"role":"deployer","name":"staging-ci","envs":["staging"]})");
  ASSERT_EQ(t.status, 201) << t.body;
  const std::string token = str(parse(t.body, "token"), "token");

  std::vector<std::thread> attackers;
  for (const Aim aim :
       {Aim::deploys, Aim::deploys, Aim::plans, Aim::freezes, Aim::freezes, Aim::reads})
    attackers.emplace_back([this, token, aim] { attack(token, aim); });

  // Rounds until both enough rounds and enough attacking requests were made (bounded).
  constexpr int kMinRounds = 20;
  constexpr int kMaxRounds = 60;
  constexpr int64_t kMinRequests = 10'000;
  std::vector<std::string> harm;
  int rounds = 0;
  for (; rounds < kMaxRounds && (rounds < kMinRounds || tally_.requests < kMinRequests); ++rounds) {
    const std::string version = rounds % 2 ? "1.0.0" : "2.0.0";
    auto r = http("POST", "/api/v1/deploys",
                  fmt::format(R"({{"app":"web","env":"production","version":"{}"}})", version));
    ASSERT_EQ(r.status, 201) << r.body;
    const int64_t id = i64(parse(r.body, "deploy"), "id");
    next_deploy_ = id + 1;
    const auto d = finish_deploy(id, harm);
    if (str(d, "state") != "succeeded" || !str(d, "aborted_by").empty()) {
      harm.push_back(fmt::format("deploy #{} ended {} (aborted by '{}')", id, str(d, "state"),
                                 str(d, "aborted_by")));
    }

    r = http("POST", "/api/v1/plans",
             fmt::format(R"({{"app":"web","env":"production","force":true,)"
                         R"("stages":[{{"name":"all","version":"{}"}}]}})",
                         version == "1.0.0" ? "2.0.0" : "1.0.0"));
    ASSERT_EQ(r.status, 201) << r.body;
    const int64_t plan = i64(parse(r.body, "plan"), "id");
    next_plan_ = plan + 1;
    std::string plan_state;
    ASSERT_TRUE(wait_until(
        [&] {
          plan_state = str(get_json(fmt::format("/api/v1/plans/p{}", plan)), "state");
          const int64_t newest = newest_deploy();
          if (newest >= next_deploy_) next_deploy_ = newest + 1;
          if (newest > id && str(deploy(newest), "state") == "paused") {
            harm.push_back(fmt::format("deploy #{} of plan p{} was paused", newest, plan));
            http("POST", fmt::format("/api/v1/deploys/{}/resume", newest));
          }
          return plan_state == "succeeded" || plan_state == "failed" || plan_state == "rolled_back";
        },
        Millis(120'000)))
        << "plan p" << plan << " is " << plan_state;
    if (plan_state != "succeeded") harm.push_back(fmt::format("plan p{} {}", plan, plan_state));
    // Its stage's deploy was not touched either.
    const int64_t stage_deploy = newest_deploy();
    const auto sd = finish_deploy(stage_deploy, harm);
    if (!str(sd, "aborted_by").empty()) {
      harm.push_back(fmt::format("deploy #{} aborted by {}", stage_deploy, str(sd, "aborted_by")));
    }

    // Three freezes in a row (each a new id under fire), then each checked and lifted.
    std::vector<int64_t> freezes;
    for (const char* app : {"web", "api", "worker"}) {
      r = http("POST", "/api/v1/freezes",
               fmt::format(R"({{"env":"production","app":"{}","until":"{}","reason":"race"}})", app,
                           format_time(now_ms() + 3'600'000)));
      ASSERT_EQ(r.status, 201) << r.body;
      freezes.push_back(i64(parse(r.body, "freeze"), "id"));
      next_freeze_ = freezes.back() + 1;
    }
    for (const int64_t freeze : freezes) {
      const auto f = get_json(fmt::format("/api/v1/freezes/{}", freeze));
      if (!str(f, "lifted_by").empty()) {
        harm.push_back(fmt::format("freeze #{} was lifted by {}", freeze, str(f, "lifted_by")));
      }
      r = http("DELETE", fmt::format("/api/v1/freezes/{}", freeze));
      if (r.status != 200) harm.push_back(fmt::format("lifting freeze #{}: {}", freeze, r.body));
    }
  }
  stop_ = true;
  for (auto& a : attackers)
    a.join();

  std::string statuses;
  for (const auto& [status, n] : tally_.statuses)
    statuses += fmt::format(" {}x{}", n, status);
  for (const auto& [kind, n] : tally_.accepted_by_kind)
    statuses += fmt::format("; {} {} accepted", n, kind);
  const std::string summary =
      fmt::format("{} rounds, {} attacking requests:{}", rounds, tally_.requests.load(), statuses);
  std::cout << summary << "\n";
  EXPECT_GE(rounds, kMinRounds);
  EXPECT_GE(tally_.requests.load(), kMinRequests) << summary;
  EXPECT_TRUE(tally_.accepted.empty()) << summary << "\n" << lines(tally_.accepted);
  EXPECT_TRUE(harm.empty()) << summary << "\n" << lines(harm);
  // Both kinds of refusal were seen: ids that did not exist yet and production objects.
  EXPECT_GT(tally_.statuses[403], 0) << summary;
  EXPECT_GT(tally_.statuses[404], 0) << summary;
  // Nothing in the history names the attacker's token as the actor of anything.
  const auto audit = get_json("/api/v1/audit?limit=10000");
  for (const auto& e : arr(audit, "entries")) {
    if (str(e, "token") == "staging-ci") {
      EXPECT_TRUE(i64(e, "status") == 403 || i64(e, "status") == 404) << to_json(e);
    }
  }
}

}  // namespace
}  // namespace slipway::e2e
