// slipway demo: a server and five agents on loopback, three releases of the sample web service,
// a healthy rollout, a bad release that rolls itself back, and a rollback by hand with no download.
#include <iostream>

#include <fmt/format.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "lab/lab.h"
#include "lab/sample_release.h"

namespace slipway::cli {

void wait_for_interrupt();
void print_usage_hint(const lab::LabInfo& info, std::ostream& out);

namespace {

// The demo's deploys and its rollback: web in staging, N at a time.
DeployArgs demo_deploy(const std::string& version, const std::string& batch) {
  DeployArgs a;
  a.app = "web";
  a.version = version;
  a.env = "staging";
  a.batch = batch;
  return a;
}

RollbackArgs demo_rollback() {
  RollbackArgs a;
  a.app = "web";
  a.env = "staging";
  a.batch = "2";
  return a;
}

void step(const std::string& title) {
  std::cout << "\n" << paint("==> " + title, Color::bold) << "\n" << std::flush;
}

int64_t downloads(client::ApiClient& c) {
  auto s = c.get("/api/v1/stats");
  if (!s) return -1;
  return s->as_object().at("artifact_downloads").as_int64();
}

}  // namespace

int cmd_demo(const DemoArgs& a) {
  std::string dir = a.dir;
  if (dir.empty()) {
    char tmpl[] = "/tmp/slipway-demo-XXXXXX";
    if (!::mkdtemp(tmpl)) return fail(err(Errc::io, "cannot create a temporary directory"));
    dir = tmpl;
  }
  std::cout << paint("Slipway demo", Color::bold) << ": one server, five agents, three releases.\n"
            << "Everything runs as local processes on loopback addresses; files are in " << dir
            << "\n";

  step("building three releases of the sample web service");
  auto sample = lab::find_sample_binary();
  if (!sample) return fail(sample.error());
  struct Rel {
    std::string version;
    bool healthy;
    std::string note;
  };
  const std::vector<Rel> rels = {{"1.0.0", true, "first release"},
                                 {"1.1.0", true, "faster start page"},
                                 {"1.2.0", false, "a bug: /health answers 500"}};
  std::vector<std::filesystem::path> files;
  for (const auto& r : rels) {
    lab::SampleRelease sr;
    sr.out_dir = std::filesystem::path(dir) / "releases";
    sr.app = "web";
    sr.version = r.version;
    sr.sample_binary = *sample;
    sr.healthy = r.healthy;
    sr.health_timeout = Millis(6'000);
    sr.healthy_for = Millis(1'000);
    sr.interval = Millis(200);
    sr.message = r.note;
    auto f = lab::build_sample_release(sr);
    if (!f) return fail(f.error());
    std::cout << fmt::format("  {}  ({})\n", f->string(), r.note);
    files.push_back(*f);
  }

  step("starting a server and five agents (env staging, role api, zones a and b)");
  lab::NodePlan plan;
  plan.count = 5;
  plan.env = "staging";
  plan.roles = {"api"};
  plan.zones = {"a:2", "b:3"};
  plan.first_address = "127.0.0.11";
  auto nodes = lab::make_nodes(plan);
  if (!nodes) return fail(nodes.error());
  lab::LabOptions o;
  o.dir = std::filesystem::path(dir) / "lab";
  o.nodes = std::move(*nodes);
  o.progress = [](const std::string& line) { std::cout << "  " << line << "\n" << std::flush; };
  lab::Lab lab;
  auto info = lab.up(o);
  if (!info) return fail(info.error());

  ClientFlags flags;
  flags.server = info->server_url;
  flags.token = info->admin_token;
  auto c = make_client(flags);

  auto run = [&](const std::string& title, auto&& fn, int expect) -> bool {
    step(title);
    const int rc = fn();
    if (rc != expect) {
      std::cout << paint(fmt::format("the demo expected exit code {} here and got {}; stopping",
                                     expect, rc),
                         Color::red)
                << "\n";
      return false;
    }
    return true;
  };

  bool ok = run(
      "pushing the three releases (slipway push)",
      [&] {
        for (size_t i = 0; i < rels.size(); ++i) {
          if (int rc = cmd_push(flags, PushArgs{files[i].string(), "web", rels[i].version}); rc)
            return rc;
        }
        return 0;
      },
      0);

  ok = ok && run(
                 "deploying web 1.0.0 to all five, two at a time (slipway deploy web 1.0.0 --env "
                 "staging --batch 2)",
                 [&] { return cmd_deploy(flags, demo_deploy("1.0.0", "2")); }, 0);

  ok = ok && run(
                 "deploying web 1.1.0 (slipway deploy web 1.1.0 --env staging --batch 2)",
                 [&] { return cmd_deploy(flags, demo_deploy("1.1.0", "2")); }, 0);

  ok = ok && run(
                 "deploying web 1.2.0, which ships a bug (slipway deploy web 1.2.0 --env staging "
                 "--batch 1)",
                 [&] {
                   const int rc = cmd_deploy(flags, demo_deploy("1.2.0", "1"));
                   std::cout << fmt::format(
                       "\nThe first node failed its health check and went back to 1.1.0 by itself; "
                       "the deploy stopped "
                       "there and exited with code {} (a CI job would fail here). The other nodes "
                       "never saw 1.2.0.\n",
                       rc);
                   return rc;
                 },
                 1);

  int64_t before = 0;
  ok = ok &&
       run(
           "rolling back by hand to the previous release (slipway rollback web --env staging)",
           [&] {
             before = downloads(c);
             const int rc = cmd_rollback(flags, demo_rollback());
             const int64_t after = downloads(c);
             std::cout << fmt::format(
                 "\nArtifact downloads from the server during the rollback: {} (every node still "
                 "had 1.0.0 on disk "
                 "in releases/1.0.0; it only switched its `current` link and restarted).\n",
                 after - before);
             return rc;
           },
           0);

  if (ok) {
    step("what is deployed where (slipway status --env staging)");
    cmd_status(flags, "staging", "");
    step("history (slipway history web)");
    cmd_history(flags, "web", "", 20);
    print_usage_hint(*info, std::cout);
  }
  if (!a.exit_when_done) {
    std::cout
        << "\nEverything is still running. Press Ctrl-C to stop every process the demo started.\n"
        << std::flush;
    wait_for_interrupt();
  }
  std::cout << "\nstopping the server and the agents...\n" << std::flush;
  if (auto st = lab.down(); !st) return fail(st.error());
  std::cout << "done.\n";
  return ok ? kExitOk : kExitFailed;
}

}  // namespace slipway::cli
