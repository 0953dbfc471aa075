// slipway lab up | down | status
#include <atomic>
#include <chrono>
#include <csignal>
#include <iostream>
#include <thread>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "lab/lab.h"

namespace slipway::cli {

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) {
  g_stop = true;
}
}  // namespace

// Waits for SIGINT or SIGTERM (used by the demo and `lab up --attach`).
void wait_for_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  while (!g_stop)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
}

void print_usage_hint(const lab::LabInfo& info, std::ostream& out) {
  out << "\nUse the CLI against it:\n";
  out << fmt::format("  export SLIPWAY_SERVER={}\n", info.server_url);
  out << fmt::format("  export SLIPWAY_TOKEN=$(cat {})\n",
                     (info.dir / "server" / "admin.token").string());
  out << "  slipway status --env staging\n";
  out << "  slipway nodes\n";
  out << "  slipway versions web\n";
  out << "  slipway deploy web 1.1.0 --env staging --batch 2\n";
  out << "  slipway rollback web --env staging\n";
  out << "  slipway history web\n";
  out << fmt::format("\nOr open the web console at {}/ and sign in with that token.\n",
                     info.server_url);
}

int cmd_lab_up(const LabUpArgs& a) {
  if (a.dir.empty()) return fail(err(Errc::invalid_argument, "--dir is required"));
  lab::NodePlan plan;
  plan.count = a.nodes;
  plan.env = a.env;
  plan.roles = a.roles;
  plan.zones = a.zones;
  plan.first_address = a.first_address;
  auto nodes = lab::make_nodes(plan);
  if (!nodes) return fail(nodes.error());
  lab::LabOptions o;
  o.dir = a.dir;
  o.listen = a.listen;
  o.nodes = std::move(*nodes);
  o.detach = !a.attach;
  o.progress = [](const std::string& line) { std::cout << "  " << line << "\n" << std::flush; };
  lab::Lab lab;
  auto info = lab.up(o);
  if (!info) return fail(info.error());
  std::cout << fmt::format("lab up: server {} with {} node(s); files in {}\n", info->server_url,
                           info->nodes.size(), info->dir.string());
  print_usage_hint(*info, std::cout);
  if (a.attach) {
    std::cout << "\nPress Ctrl-C to stop every process of the lab.\n" << std::flush;
    wait_for_interrupt();
    std::cout << "\nstopping the lab...\n";
    if (auto st = lab.down(); !st) return fail(st.error());
  } else {
    std::cout << fmt::format("\nStop it with: slipway lab down --dir {}\n", info->dir.string());
  }
  return kExitOk;
}

int cmd_lab_down(const std::string& dir) {
  if (dir.empty()) return fail(err(Errc::invalid_argument, "--dir is required"));
  if (auto st = lab::down_from_state(dir); !st) return fail(st.error());
  std::cout << "lab stopped\n";
  return kExitOk;
}

int cmd_lab_status(const std::string& dir) {
  auto info = lab::load_state(dir);
  if (!info) return fail(info.error());
  Table t({"PROCESS", "PID", "ADDRESS", "RUNNING"});
  auto running = [](pid_t pid) { return pid > 0 && ::kill(pid, 0) == 0 ? "yes" : "no"; };
  t.row({"server " + info->server_url, std::to_string(info->server_pid), "-",
         running(info->server_pid)});
  for (const auto& n : info->nodes) {
    t.row({"agent " + n.spec.name, std::to_string(n.pid), n.spec.address, running(n.pid)});
  }
  t.print(std::cout);
  return kExitOk;
}

}  // namespace slipway::cli
