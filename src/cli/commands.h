// The CLI's subcommands: each is a function from its parsed options to an exit code. cli.cpp
// defines the flags (CLI11) and calls these; nothing here depends on the argument parser.
#pragma once

#include <filesystem>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "client/api_client.h"
#include "common/error.h"

namespace slipway::cli {

struct ClientFlags {
  std::string server = "http://127.0.0.1:7700";
  std::string token;
  std::string ca_cert;           // CA file for https:// servers; empty: the system's
  std::string output = "table";  // table | json
  bool json() const { return output == "json"; }
};

client::ApiClient make_client(const ClientFlags& f);
// Prints "error: MESSAGE" to standard error and returns the exit code for the error's code.
int fail(const Error& e);
// Warns on standard error of the nodes a deploy or run (`what`) just created left out, as the
// server named them (lost_nodes_left_out, quarantined_nodes_left_out).
void warn_left_out(const json::value& created, std::string_view what);
// Prints a JSON value to standard output (pretty enough for humans, one document).
void print_json(const json::value& v);
// Adds the node-picking flags that were given (role, zone, selector, batch) to a request body;
// invalid_argument for a bad batch size.
Status add_targeting(json::object& body, const std::string& role, const std::string& zone,
                     const std::string& selector, const std::string& batch);

// Artifacts
struct PushArgs {
  std::string file;
  std::string app;
  std::string version;
};
int cmd_push(const ClientFlags& f, const PushArgs& a);
int cmd_versions(const ClientFlags& f, const std::string& app);

// Inventory
int cmd_nodes(const ClientFlags& f, const std::string& env, const std::string& state);
// Lifts the node's quarantine (it converges again).
int cmd_nodes_release(const ClientFlags& f, const std::string& name);
int cmd_nodes_revoke(const ClientFlags& f, const std::string& name);
int cmd_status(const ClientFlags& f, const std::string& env, const std::string& app);

// Deploys
// How a deploy or rollback rolls out (empty = the server's default).
struct StrategyArgs {
  std::string strategy;  // rolling | canary | zones | all
  std::string canary;    // N, N% or tag:K=V
  bool pause = false;    // after the canaries, wait for `slipway promote`
  std::string canary_wait;
  std::vector<std::string> zones;  // the order
  std::string max_unavailable;
  std::string healthy_deadline;
  std::string progress_deadline;
};
struct DeployArgs {
  std::string app;
  std::string version;  // "" = newest
  std::string env;
  std::string role;
  std::string zone;
  std::string selector;
  std::string batch;  // "" = server default
  int max_failures = 0;
  bool detach = false;
  StrategyArgs how;
  bool force = false;    // through a freeze (recorded)
  bool dry_run = false;  // only say what it would do (POST .../preview)
};
int cmd_deploy(const ClientFlags& f, const DeployArgs& a);
struct RollbackArgs {
  std::string app;
  std::string env;
  std::string to;
  std::string role;
  std::string zone;
  std::string batch;
  int max_failures = 0;
  bool detach = false;
  bool dry_run = false;
  StrategyArgs how;
};
int cmd_rollback(const ClientFlags& f, const RollbackArgs& a);
// The id of a deploy ("12", "#12") or of a plan ("p3").
struct DeployOrPlan {
  bool plan = false;
  int64_t id = 0;
};
Result<DeployOrPlan> parse_deploy_or_plan(const std::string& text);
// These take a deploy id or a plan id (p3).
int cmd_watch(const ClientFlags& f, const std::string& id);
int cmd_abort(const ClientFlags& f, const std::string& id, bool rollback);
// pause, resume, promote
int cmd_control(const ClientFlags& f, const std::string& verb, const std::string& id);

// Deploy plans: slipway deploy -f deploy.yaml (ordered stages, see docs/plans.md).
struct PlanArgs {
  std::filesystem::path file;
  std::string env;  // when the file names none (or the same)
  bool detach = false;
  bool force = false;  // every stage through a freeze (recorded)
};
// Starts the plan and follows it: each stage's deploy, waits and approvals, rollbacks; 0 only
// when it succeeded.
int cmd_deploy_plan(const ClientFlags& f, const PlanArgs& a);
int cmd_plan_watch(const ClientFlags& f, int64_t id);
// promote, abort (the server's), pause, resume (those of the running stage's deploy)
int cmd_plan_control(const ClientFlags& f, const std::string& verb, int64_t id);
int cmd_plan_show(const ClientFlags& f, int64_t id);

// Follows a deploy the server just created (its JSON) until it ends, printing progress to `out`
// (a live bar when `live` and standard output is a terminal); returns 0 when it succeeded, 1 when
// it did not, 3 when the server was lost.
int follow_deploy(client::ApiClient& c, const json::value& created, std::ostream& out, bool live);

// Freezes
struct FreezeArgs {
  std::string env;
  std::string app;    // "" = every app of the environment
  std::string until;  // RFC 3339 or a duration from now
  std::string reason;
};
int cmd_freeze(const ClientFlags& f, const FreezeArgs& a);
int cmd_freezes(const ClientFlags& f, const std::string& env, const std::string& app, bool all);
// Lifts freeze `id` (when > 0), else the active freezes of exactly env (and app).
int cmd_unfreeze(const ClientFlags& f, int64_t id, const std::string& env, const std::string& app);

// The load balancer of an environment: slipway lb set|show|clear --env E
struct LbArgs {
  std::string verb;  // set | show | clear
  std::string env;
  std::string drain;
  std::string undrain;
  std::string on;
  std::string timeout;
};
int cmd_lb(const ClientFlags& f, const LbArgs& a);

// Per-environment config: slipway config set|show|unset, slipway secret set|list|unset.
struct ConfigArgs {
  std::string verb;
  std::string env;
  std::string app;
  std::vector<std::string> items;  // KEY=VALUE (config set), KEY (unset, secret set)
};
int cmd_config(const ClientFlags& f, const ConfigArgs& a);
int cmd_secret(const ClientFlags& f, const ConfigArgs& a);
// slipway secret rotate-key (admin): every secret re-sealed under a new key.
int cmd_secret_rotate_key(const ClientFlags& f);

// API tokens: slipway token create|list|revoke (admin)
struct TokenCreateArgs {
  std::string role;  // admin | deployer | viewer
  std::vector<std::string> envs;
  std::vector<std::string> apps;
  std::string ttl;   // "" = never expires
  std::string name;  // "" = the server picks one
};
// Prints the secret once (it is not kept anywhere but in the caller's hands).
int cmd_token_create(const ClientFlags& f, const TokenCreateArgs& a);
int cmd_token_list(const ClientFlags& f);
int cmd_token_revoke(const ClientFlags& f, const std::string& name_or_id);

// The audit log (admin): since is a duration back from now ("1h") or an RFC 3339 time.
int cmd_audit(const ClientFlags& f, const std::string& since, int limit);
// slipway audit verify (admin): 0 when the chain is intact, 1 naming the first bad row.
int cmd_audit_verify(const ClientFlags& f);

// Ad-hoc commands
struct RunArgs {
  std::string env;
  std::string role;
  std::string zone;
  std::string selector;
  std::string batch;    // "" = all at once
  std::string timeout;  // "" = the server's default (60s)
  std::vector<std::string> argv;
};
// Runs the command, prints each node's output as it finishes; 0 when it exited 0 everywhere.
int cmd_run(const ClientFlags& f, const RunArgs& a);
int cmd_run_show(const ClientFlags& f, int64_t id);

// History: deploys, plans and (without an app) runs, newest first. `show` takes a deploy id (12),
// a run id (r3) or a plan id (p2).
int cmd_history(const ClientFlags& f, const std::string& app, const std::string& env, int limit);
int cmd_history_show(const ClientFlags& f, const std::string& id);

// Lab
struct LabUpArgs {
  std::string dir;
  int nodes = 3;
  std::string env = "staging";
  std::vector<std::string> roles = {"api"};
  std::vector<std::string> zones;
  std::string first_address = "127.0.0.11";
  std::string listen = "127.0.0.1:0";
  bool attach = false;  // stay in the foreground until Ctrl-C
};
int cmd_lab_up(const LabUpArgs& a);
int cmd_lab_down(const std::string& dir);
int cmd_lab_status(const std::string& dir);

// The demo
struct DemoArgs {
  std::string dir;              // "" = a fresh temporary directory
  bool exit_when_done = false;  // do not wait for Ctrl-C (for tests)
};
int cmd_demo(const DemoArgs& a);

}  // namespace slipway::cli
