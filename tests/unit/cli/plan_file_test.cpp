// The plan file of `slipway deploy -f`: what it becomes (the body of POST /api/v1/plans) and every
// refusal, each naming the file and the line at fault.
#include "cli/plan_file.h"

#include <string>

#include <gtest/gtest.h>

namespace slipway::cli {
namespace {

constexpr const char* kExample = R"yaml(# the example of docs/plans.md
app: web
version: 1.4.2
env: production
stages:
  - name: migrate
    app: web-migrator
    role: migrator
    strategy: all
  - name: api
    role: api
    strategy: canary
    canary: 1
    batch: 25%
    pause: false
    canary_wait: 2m
    max_failures: 1
    max_unavailable: 1
    healthy_deadline: 90s
    progress_deadline: 10m
    approve: true
  - name: worker
    selector: "role=worker, zone in (a,b)"
    zone: a
    strategy: zones
    zones: [a]
    wait: 5m
  - name: last
    version: "1.10"
    force: true
)yaml";

// The error of parsing `yaml`; fails the test when it parses.
std::string error_of(const std::string& yaml) {
  auto r = parse_plan_file(yaml, "deploy.yaml");
  EXPECT_FALSE(r) << "parsed: " << to_json(r ? json::value(*r) : json::value());
  return r ? "" : r.error().message;
}

TEST(PlanFile, TheExampleBecomesTheRequestBody) {
  auto r = parse_plan_file(kExample, "deploy.yaml");
  ASSERT_TRUE(r) << r.error().message;
  const json::object& o = *r;
  EXPECT_EQ(o.at("app"), "web");
  EXPECT_EQ(o.at("version"), "1.4.2");
  EXPECT_EQ(o.at("env"), "production");
  const auto& stages = o.at("stages").as_array();
  ASSERT_EQ(stages.size(), 4u);
  EXPECT_EQ(to_json(stages[0]),
            R"({"name":"migrate","app":"web-migrator","role":"migrator","strategy":"all"})");
  const auto& api = stages[1].as_object();
  EXPECT_EQ(api.at("canary"), "1");  // sizes stay text, as the API takes them
  EXPECT_EQ(api.at("batch"), "25%");
  EXPECT_EQ(api.at("pause"), false);
  EXPECT_EQ(api.at("max_failures"), 1);
  EXPECT_EQ(api.at("approve"), true);
  EXPECT_EQ(api.at("healthy_deadline"), "90s");
  const auto& worker = stages[2].as_object();
  EXPECT_EQ(worker.at("selector"), "role=worker, zone in (a,b)");
  EXPECT_EQ(to_json(worker.at("zones")), R"(["a"])");
  EXPECT_EQ(worker.at("wait"), "5m");
  EXPECT_EQ(stages[3].as_object().at("version"), "1.10");  // not the number 1.1
  EXPECT_EQ(stages[3].as_object().at("force"), true);
}

TEST(PlanFile, ZonesMayBeACommaSeparatedListAndEnvMayComeFromTheCommandLine) {
  auto r = parse_plan_file("app: web\nstages:\n  - name: a\n    strategy: zones\n    zones: b, a\n",
                           "p.yaml");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_FALSE(r->contains("env"));
  EXPECT_EQ(to_json(r->at("stages").as_array()[0].as_object().at("zones")), R"(["b","a"])");
}

TEST(PlanFile, EveryRefusalNamesTheFileAndLine) {
  struct Case {
    std::string yaml;
    std::string expected;  // a part of the message, with the line
  };
  const std::string head = "app: web\nenv: prod\nstages:\n";  // stages start on line 4
  const Case cases[] = {
      {"", "deploy.yaml line 1: is empty"},
      {"- a\n- b\n", "line 1: the top level must be a mapping"},
      {"app: web\nenv: prod\n", "line 1: names no stages"},
      {"app: web\nstages: []\n", "line 2: stages: must be a list of at least one"},
      {"app: web\nstages: x\n", "line 2: stages: must be a list"},
      {"app: web\nenv: prod\nbogus: 1\nstages:\n  - name: a\n",
       "line 3: unknown key 'bogus' (known keys: app, version, env, force, stages)"},
      {"app: web\napp: api\nstages:\n  - name: a\n", "line 2: 'app' appears twice"},
      {"app: we/b\nstages:\n  - name: a\n", "line 1: app: app name 'we/b' has a character"},
      {"env: [a]\nstages:\n  - name: a\n    app: x\n", "line 1: env: must be a single value"},
      {"env:\nstages:\n  - name: a\n    app: x\n", "line 1: env: has no value"},
      {"force: yes\napp: x\nstages:\n  - name: a\n", "line 1: force: must be true or false"},
      {head + "  - role: api\n", "line 4: stage 1: has no name"},
      {head + "  - name: a\n  - name: a\n", "line 5: stage 2: the name a is taken"},
      {head + "  - name: ../x\n", "line 4: stage 1: name: stage name '../x'"},
      {head + "  - x\n", "line 4: stage 1: must be a mapping"},
      {head + "  - name: a\n    colour: red\n",
       "line 5: stage 1: unknown key 'colour' (known keys: name, app, version"},
      {head + "  - name: a\n    env: other\n", "line 5: stage 1: unknown key 'env'"},
      {head + "  - name: a\n    strategy: bluegreen\n",
       "line 5: stage 1: strategy: unknown strategy 'bluegreen'"},
      {head + "  - name: a\n    batch: lots\n", "line 5: stage 1: batch: 'lots' is not valid"},
      {head + "  - name: a\n    max_unavailable: 0\n",
       "line 5: stage 1: max_unavailable: '0' is not valid"},
      {head + "  - name: a\n    canary: tag:x\n", "line 5: stage 1: canary:"},
      {head + "  - name: a\n    wait: soon\n  - name: b\n", "line 5: stage 1: wait:"},
      {head + "  - name: a\n    wait: 0s\n  - name: b\n",
       "line 5: stage 1: wait: must be longer than zero"},
      {head + "  - name: a\n    canary_wait: 5 minutes\n", "line 5: stage 1: canary_wait:"},
      {head + "  - name: a\n    max_failures: -1\n",
       "line 5: stage 1: max_failures: '-1' is not a number"},
      {head + "  - name: a\n    approve: maybe\n  - name: b\n",
       "line 5: stage 1: approve: must be true or false"},
      {head + "  - name: a\n    selector: 'zone in (a'\n", "line 5: stage 1: selector:"},
      {head + "  - name: a\n    zones: [a, {b: c}]\n", "line 5: stage 1: zones: must be a single"},
      {head + "  - name: a\n    zones: [a, b/c]\n", "line 5: stage 1: zones: zone 'b/c'"},
      {head + "  - name: a\n    role:\n      x: y\n", "line 5: stage 1: role: must be a single"},
      {head + "  - name: a\n    wait: 1m\n    approve: true\n  - name: b\n",
       "line 5: stage 1 (a): give either wait (hold for a while) or approve"},
      {head + "  - name: a\n  - name: b\n    approve: true\n",
       "line 6: stage 2 (b): is the last stage: wait and approve hold the plan"},
      {"env: prod\nstages:\n  - name: a\n    role: api\n",
       "line 3: stage 1 (a): names no app: give app: for the stage or for the whole plan"},
      {"app: web\nstages:\n  - name: a\n    role: [api\n", "not valid YAML"},
      {"app: web\nstages:\n  - name: a\n---\napp: x\n",
       "line 5: holds more than one YAML document"},
  };
  for (const auto& c : cases) {
    const std::string m = error_of(c.yaml);
    EXPECT_NE(m.find(c.expected), std::string::npos)
        << "for:\n"
        << c.yaml << "\ngot: " << m << "\nexpected: " << c.expected;
    EXPECT_EQ(m.rfind("deploy.yaml line ", 0), 0u) << m;
  }
}

TEST(PlanFile, AtMostTwentyStages) {
  std::string yaml = "app: web\nenv: prod\nstages:\n";
  for (int i = 1; i <= 20; ++i)
    yaml += "  - name: s" + std::to_string(i) + "\n";
  EXPECT_TRUE(parse_plan_file(yaml, "deploy.yaml"));
  yaml += "  - name: s21\n";
  EXPECT_NE(error_of(yaml).find("line 4: stages: at most 20 (21 given)"), std::string::npos)
      << error_of(yaml);
}

TEST(PlanFile, AMissingFileSaysSo) {
  auto r = load_plan_file("/nonexistent/deploy.yaml");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/deploy.yaml"), std::string::npos)
      << r.error().message;
}

}  // namespace
}  // namespace slipway::cli
