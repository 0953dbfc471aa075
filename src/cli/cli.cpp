#include "cli/cli.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <functional>
#include <iostream>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "agent/agent.h"
#include "agent/token_source.h"
#include "cli/cmd_enroll.h"
#include "cli/cmd_notify.h"
#include "cli/commands.h"
#include "common/log.h"
#include "common/strings.h"
#include "server/notifier.h"
#include "server/server.h"

namespace slipway::cli {

namespace {

constexpr const char* kDefaultServer = "http://127.0.0.1:7700";

// No envname() here: CLI11 reads an option's environment variable in every subcommand, used or
// not, and all client subcommands share one ClientFlags, so an unused subcommand's SLIPWAY_TOKEN
// would overwrite the --token given to the used one. fill_client_env does it after parsing.
void client_flags(CLI::App* sub, ClientFlags& f, bool output = true) {
  sub->add_option("--server", f.server,
                  fmt::format("Server URL (default: $SLIPWAY_SERVER, else {})", kDefaultServer));
  sub->add_option("--token", f.token,
                  "API token (default: $SLIPWAY_TOKEN; the admin token is in "
                  "DATA_DIR/admin.token)");
  sub->add_option("--ca-cert", f.ca_cert,
                  "CA certificate (PEM) that signed an https:// server's certificate (default: "
                  "$SLIPWAY_CA_CERT, else the system's; a self-made one is DATA_DIR/tls/ca.crt)");
  if (output) {
    sub->add_option("-o,--output", f.output, "Output format")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
  }
}

// How a deploy (canary: true) or a rollback rolls out.
void strategy_flags(CLI::App* sub, StrategyArgs& a, bool canary) {
  sub->add_option("--strategy", a.strategy,
                  canary ? "rolling (default), canary, zones (one zone at a time) or all"
                         : "rolling (default), zones or all")
      ->check(CLI::IsMember(canary ? std::vector<std::string>{"rolling", "canary", "zones", "all"}
                                   : std::vector<std::string>{"rolling", "zones", "all"}));
  if (canary) {
    sub->add_option("--canary", a.canary,
                    "Canary nodes first: N, N% or tag:KEY=VALUE (implies --strategy canary)");
    sub->add_flag("--pause", a.pause, "After the canaries, wait for `slipway promote ID`");
    sub->add_option("--canary-wait", a.canary_wait,
                    "After the canaries, go on by itself if they stay healthy this long (5m)");
  }
  sub->add_option("--zones", a.zones, "Zone order for --strategy zones: a,b,c (default: sorted)")
      ->delimiter(',');
  sub->add_option("--max-unavailable", a.max_unavailable,
                  "Never more than N (or N%) targeted nodes out of service at once, counting "
                  "those already unhealthy");
  sub->add_option("--healthy-deadline", a.healthy_deadline,
                  "A node not healthy this long after its update fails (default: the server's "
                  "--node-timeout)");
  sub->add_option("--progress-deadline", a.progress_deadline,
                  "Fail (and roll back) when no node becomes healthy for this long");
}

// What the command line left empty comes from the environment: flags beat it.
void fill_client_env(ClientFlags& f) {
  auto env = [](const char* name) -> std::string {
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  if (f.server.empty()) f.server = env("SLIPWAY_SERVER");
  if (f.server.empty()) f.server = kDefaultServer;
  if (f.token.empty()) f.token = env("SLIPWAY_TOKEN");
  if (f.ca_cert.empty()) f.ca_cert = env("SLIPWAY_CA_CERT");
}

Result<Millis> duration_flag(const std::string& name, const std::string& v) {
  auto d = parse_duration(v);
  if (!d) return err(Errc::invalid_argument, name + ": " + d.error().message);
  return d;
}

// With -f the file says what to deploy where and how: the flags that say it on the command line
// are refused.
Status plan_only(const DeployArgs& a) {
  const StrategyArgs& h = a.how;
  const bool given = !a.app.empty() || !a.version.empty() || !a.role.empty() || !a.zone.empty() ||
                     !a.selector.empty() || !a.batch.empty() || a.max_failures != 0 ||
                     !h.strategy.empty() || !h.canary.empty() || h.pause ||
                     !h.canary_wait.empty() || !h.zones.empty() || !h.max_unavailable.empty() ||
                     !h.healthy_deadline.empty() || !h.progress_deadline.empty();
  if (given) {
    return err(Errc::invalid_argument,
               "with -f the plan file says what to deploy and how: give no app, version, "
               "targeting or strategy flags (only --env, --force, --detach and -o)");
  }
  return {};
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"Slipway: ship versioned code to a fleet of servers, and take it back in seconds."};
  app.name("slipway");
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("slipway ") + SLIPWAY_VERSION);
  std::function<int()> action;
  std::string log_level = "info";

  // server
  server::ServerOptions so;
  std::string so_data, so_heartbeat = "5s", so_lost = "15s", so_node_timeout = "15m";
  std::string so_header_timeout = "10s", so_tls_cert, so_tls_key, so_notify_retry_base = "1s";
  bool so_tls = false, so_no_tls = false;
  auto* server =
      app.add_subcommand("server", "Run the Slipway server (artifacts, inventory, deploys, API)");
  server->add_option("--data", so_data, "Data directory (database, artifacts, tokens)")->required();
  server->add_option("--listen", so.listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();
  server->add_option("--heartbeat", so_heartbeat, "How often agents send heartbeats")
      ->capture_default_str();
  server->add_option("--lost-after", so_lost, "An agent silent this long is lost")
      ->capture_default_str();
  server
      ->add_option("--node-timeout", so_node_timeout,
                   "A node with no result for this long fails its deploy")
      ->capture_default_str();
  server
      ->add_option("--max-artifact-bytes", so.max_artifact_bytes,
                   "Largest artifact a push may upload")
      ->check(CLI::Range(uint64_t{1024}, uint64_t{1} << 40))
      ->capture_default_str();
  server->add_option("--keep-releases", so.keep_releases, "Releases each agent keeps on disk")
      ->check(CLI::Range(2, 100))
      ->capture_default_str();
  server->add_flag("--tls", so_tls,
                   "Serve HTTPS and WSS even on a loopback address (always so on other addresses)");
  server->add_flag("--no-tls", so_no_tls,
                   "Serve plain HTTP (allowed on loopback addresses only, unless --insecure)");
  server->add_flag("--insecure", so.insecure,
                   "Serve plain HTTP on any address (warns at every start: tokens and secrets "
                   "cross the network unencrypted)");
  server->add_option(
      "--tls-cert", so_tls_cert,
      "Certificate chain (PEM) to serve instead of the self-made one in DATA_DIR/tls");
  server->add_option("--tls-key", so_tls_key, "Private key (PEM) of --tls-cert");
  server
      ->add_option("--tls-san", so.tls_sans,
                   "More names (DNS names or IP addresses) for the self-made server certificate")
      ->delimiter(',');
  server->add_option("--console-dir", so.console_dir,
                     "The web console's built files, served at / (default: `console` next to the "
                     "executable, else ../share/slipway/console)");
  server
      ->add_option("--header-timeout", so_header_timeout,
                   "A request's header must arrive within this time, else the connection is closed")
      ->capture_default_str();
  server
      ->add_option("--max-connections-per-address", so.max_connections_per_address,
                   "Connections one remote address may hold at once (0: no bound); the next is "
                   "answered 503")
      ->check(CLI::Range(0, 1'000'000))
      ->capture_default_str();
  server
      ->add_option("--db-queue-limit", so.db_queue_limit,
                   "Database jobs queued from which agents' reports, requests that change "
                   "something and database reads wait for room (back-pressure; nothing dropped)")
      ->check(CLI::Range(size_t{2}, size_t{10'000'000}))
      ->capture_default_str();
  std::string so_test_db_delay = "0ms";
  server->add_option("--TEST-db-delay", so_test_db_delay)->group("");  // tests only: a slow disk
  server
      ->add_option("--notify-retry-base", so_notify_retry_base,
                   "Wait before a failed notification's first retry; doubled for each next one "
                   "(five attempts)")
      ->capture_default_str();
  server->add_option("--smtp-relay", so.smtp_relay,
                     "SMTP relay for e-mail notifications: smtp://HOST:PORT or smtps://HOST:PORT "
                     "(a user as smtp://USER@HOST; the password from $SLIPWAY_SMTP_PASSWORD)");
  server->add_option("--smtp-from", so.smtp_from,
                     "Sender address of e-mail notifications (default slipway@localhost)");
  server->add_option("--smtp-resolve", so.smtp_resolve,
                     "Pin the relay's address: HOST:PORT:ADDRESS connects to ADDRESS for the "
                     "relay's HOST and PORT (as curl --resolve); TLS is still required unless the "
                     "relay URL itself names a loopback host (repeatable)");
  server
      ->add_option("--smtp-ca-cert", so.smtp_ca_cert,
                   "CA certificates (PEM) the SMTP relay's certificate is checked with "
                   "(default: the system's)")
      ->check(CLI::ExistingFile);
  server->add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  server->callback([&] {
    action = [&]() -> int {
      so.data_dir = so_data;
      if (so_tls && so_no_tls) {
        return fail(err(Errc::invalid_argument, "--tls and --no-tls cannot go together"));
      }
      so.want_tls = so_tls ? 1 : (so_no_tls ? 0 : -1);
      if (!so_tls_cert.empty() && so.want_tls == -1) so.want_tls = 1;  // a certificate means TLS
      so.tls_cert = so_tls_cert;
      so.tls_key = so_tls_key;
      for (const auto& n : so.tls_sans) {
        // A DNS name or an IP address (v6 with colons): letters, digits, '.', '-', ':'.
        const bool ok =
            !n.empty() && n.size() <= 253 && std::all_of(n.begin(), n.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ||
                     c == ':';
            });
        if (!ok) return fail(err(Errc::invalid_argument, "--tls-san: not a host name: " + n));
      }
      auto ht = duration_flag("--header-timeout", so_header_timeout);
      if (!ht) return fail(ht.error());
      if (ht->count() < 100) {
        return fail(err(Errc::invalid_argument, "--header-timeout must be at least 100ms"));
      }
      so.header_timeout = *ht;
      auto dd = duration_flag("--TEST-db-delay", so_test_db_delay);
      if (!dd) return fail(dd.error());
      so.test_db_delay = *dd;
      auto rb = duration_flag("--notify-retry-base", so_notify_retry_base);
      if (!rb) return fail(rb.error());
      if (rb->count() < 10 || rb->count() > 3'600'000) {
        return fail(err(Errc::invalid_argument, "--notify-retry-base must be from 10ms to 1h"));
      }
      so.notify_retry_base = *rb;
      if (!so.smtp_relay.empty()) {
        if (auto st = server::notify::validate_smtp_relay(so.smtp_relay); !st) {
          return fail(err(Errc::invalid_argument, "--smtp-relay: " + st.error().message));
        }
      }
      for (const auto& r : so.smtp_resolve) {
        if (so.smtp_relay.empty()) {
          return fail(err(Errc::invalid_argument, "--smtp-resolve goes with --smtp-relay"));
        }
        if (auto st = server::notify::validate_smtp_resolve(r, so.smtp_relay); !st) {
          return fail(err(Errc::invalid_argument, "--smtp-resolve: " + st.error().message));
        }
      }
      if (!so.smtp_from.empty() && !server::notify::is_email_address(so.smtp_from)) {
        return fail(err(Errc::invalid_argument, "--smtp-from: not an e-mail address"));
      }
      auto hb = duration_flag("--heartbeat", so_heartbeat);
      auto lost = duration_flag("--lost-after", so_lost);
      auto nt = duration_flag("--node-timeout", so_node_timeout);
      if (!hb) return fail(hb.error());
      if (!lost) return fail(lost.error());
      if (!nt) return fail(nt.error());
      so.heartbeat = *hb;
      so.lost_after = *lost;
      so.node_timeout = *nt;
      if (so.lost_after <= so.heartbeat) {
        return fail(err(Errc::invalid_argument, "--lost-after must be longer than --heartbeat"));
      }
      init_logging("server", log_level);
      return server::run_server(so);
    };
  });

  // agent
  agent::AgentOptions ao;
  std::string ao_roles, ao_root, ao_token_file;
  std::vector<std::string> ao_tags;
  auto* agent = app.add_subcommand("agent", "Run the agent of one node");
  agent->add_option("--server", ao.server, "Server URL")->envname("SLIPWAY_SERVER")->required();
  // The join token: one of --token-file, $SLIPWAY_JOIN_TOKEN (read by take_join_token, which also
  // takes it out of the environment) or --token (wiped from the command line once parsed).
  agent->add_option("--token-file", ao_token_file,
                    "File holding the join token (the server's DATA_DIR/join.token), mode 0600: "
                    "the production way (or $SLIPWAY_JOIN_TOKEN)");
  agent->add_option("--token", ao.token,
                    "The join token itself (visible to other users until the agent has started: "
                    "prefer --token-file)");
  agent->add_option("--name", ao.name, "This node's name")->required();
  agent->add_option("--env", ao.env, "Environment (staging, production, ...)")->required();
  agent->add_option("--roles", ao_roles, "Roles, comma-separated (api,worker)");
  agent->add_option("--zone", ao.zone, "Zone (eu-1a, ...)");
  agent->add_option("--tag", ao_tags, "A tag K=V (repeatable)");
  agent->add_option("--root", ao_root, "Root directory for releases and state")->required();
  agent->add_option("--address", ao.address, "The address its apps listen on (SLIPWAY_ADDRESS)")
      ->capture_default_str();
  agent
      ->add_option("--ca-cert", ao.ca_cert,
                   "CA certificate (PEM) of an https:// server whose join token carries no CA "
                   "fingerprint (default: the system's)")
      ->envname("SLIPWAY_CA_CERT");
  agent->add_option("--log-level", log_level, "debug, info, warn or error")->capture_default_str();
  agent->callback([&] {
    action = [&]() -> int {
      // First of all, before any thread starts: the token out of what others can read.
      auto token = agent::take_join_token(ao.token, ao_token_file, argc, argv);
      if (!token) return fail(token.error());
      ao.token = std::move(*token);
      ao.roles = split(ao_roles, ',');
      ao.root = ao_root;
      for (const auto& t : ao_tags) {
        const auto eq = t.find('=');
        if (eq == std::string::npos)
          return fail(err(Errc::invalid_argument, "--tag must be K=V, got " + t));
        ao.tags[t.substr(0, eq)] = t.substr(eq + 1);
      }
      init_logging("agent " + ao.name, log_level);
      return agent::run_agent(ao);
    };
  });

  // push
  ClientFlags cf;
  cf.server.clear();  // set after parsing: the flag, else $SLIPWAY_SERVER, else the default
  PushArgs push_args;
  auto* push = app.add_subcommand("push", "Upload a .tar.gz artifact as a new version of an app");
  push->add_option("file", push_args.file, "The artifact (.tar.gz with slipway.yaml at its root)")
      ->required();
  push->add_option("--app", push_args.app, "App name")->required();
  push->add_option("--version", push_args.version, "Version (SemVer or PEP 440)")->required();
  client_flags(push, cf);
  push->callback([&] { action = [&] { return cmd_push(cf, push_args); }; });

  // versions
  std::string versions_app;
  auto* versions = app.add_subcommand("versions", "List the versions of an app, in version order");
  versions->add_option("app", versions_app, "App name")->required();
  client_flags(versions, cf);
  versions->callback([&] { action = [&] { return cmd_versions(cf, versions_app); }; });

  // nodes
  std::string nodes_env, nodes_state;
  auto* nodes =
      app.add_subcommand("nodes", "List the nodes (agents) the server knows, alive and lost");
  nodes->add_option("--env", nodes_env, "Only this environment");
  nodes->add_option("--state", nodes_state,
                    "Only alive, lost, revoked or pending nodes (pending: waiting for approval)");
  client_flags(nodes, cf);
  std::string release_name;
  auto* release = nodes->add_subcommand(
      "release",
      "Lift a node's quarantine: it is a target again and converges to its desired release");
  release->add_option("name", release_name, "Node name")->required();
  client_flags(release, cf);
  release->callback([&] { action = [&] { return cmd_nodes_release(cf, release_name); }; });
  std::string revoke_name;
  auto* revoke = nodes->add_subcommand(
      "revoke",
      "Cut a node's agent off for good: disconnected, its credential revoked, its name never "
      "accepted again (the machine comes back only under a new name)");
  revoke->add_option("name", revoke_name, "Node name")->required();
  client_flags(revoke, cf);
  revoke->callback([&] { action = [&] { return cmd_nodes_revoke(cf, revoke_name); }; });
  nodes->callback([&] {
    if (!action) action = [&] { return cmd_nodes(cf, nodes_env, nodes_state); };
  });

  // status
  std::string status_env, status_app;
  auto* status =
      app.add_subcommand("status", "What is deployed where: node x app -> version and health");
  status->add_option("--env", status_env, "Only this environment");
  status->add_option("--app", status_app, "Only this app");
  client_flags(status, cf);
  status->callback([&] { action = [&] { return cmd_status(cf, status_env, status_app); }; });

  // deploy
  DeployArgs da;
  PlanArgs plan_args;
  auto* deploy = app.add_subcommand(
      "deploy",
      "Deploy a version of an app to an environment, in batches; or, with -f, a plan of stages");
  deploy->add_option("app", da.app, "App name");
  deploy->add_option("version", da.version, "Version (default: the newest)");
  deploy->add_option("-f,--file", plan_args.file,
                     "A plan of stages run in order (deploy.yaml; see docs/plans.md)");
  deploy->add_option("--env", da.env, "Environment (with -f: when the file names none)");
  deploy->add_option("--role", da.role, "Only nodes with this role");
  deploy->add_option("--zone", da.zone, "Only nodes in this zone");
  deploy->add_option("--selector", da.selector, "More terms: 'tag:team=x zone in (a,b)'");
  deploy->add_option("--batch", da.batch, "Nodes at a time: N or N% (default 25%)");
  deploy
      ->add_option("--max-failures", da.max_failures,
                   "Failed nodes tolerated before stopping and rolling back")
      ->capture_default_str();
  deploy->add_flag("--detach", da.detach, "Start it and return at once");
  deploy->add_flag("--dry-run", da.dry_run,
                   "Only say what it would do: the version, the nodes batch by batch, and why it "
                   "would be refused (exit 2), starting nothing");
  deploy->add_flag("--force", da.force, "Deploy even through a freeze (recorded with the deploy)");
  strategy_flags(deploy, da.how, true);
  client_flags(deploy, cf);
  deploy->callback([&] {
    action = [&] {
      if (!plan_args.file.empty()) {
        if (auto st = plan_only(da); !st) return fail(st.error());
        plan_args.env = da.env;
        plan_args.detach = da.detach;
        plan_args.force = da.force;
        return cmd_deploy_plan(cf, plan_args);
      }
      if (da.app.empty() || da.env.empty()) {
        return fail(err(Errc::invalid_argument,
                        "give the app and --env (slipway deploy APP [VERSION] --env ENV), or a "
                        "plan (slipway deploy -f deploy.yaml)"));
      }
      return cmd_deploy(cf, da);
    };
  });

  // rollback
  RollbackArgs ra;
  auto* rollback = app.add_subcommand(
      "rollback", "Roll an app back to its previous successful release (or --to)");
  rollback->add_option("app", ra.app, "App name")->required();
  rollback->add_option("--env", ra.env, "Environment")->required();
  rollback->add_option("--to", ra.to, "This version instead of the previous successful one");
  rollback->add_option("--role", ra.role, "Only nodes with this role");
  rollback->add_option("--zone", ra.zone, "Only nodes in this zone");
  rollback->add_option("--batch", ra.batch, "Nodes at a time (default: that of the last deploy)");
  rollback->add_option("--max-failures", ra.max_failures, "Failed nodes tolerated")
      ->capture_default_str();
  rollback->add_flag("--detach", ra.detach, "Start it and return at once");
  rollback->add_flag("--dry-run", ra.dry_run,
                     "Only say what it would do: the version it goes back to and the nodes");
  strategy_flags(rollback, ra.how, false);
  client_flags(rollback, cf);
  rollback->callback([&] { action = [&] { return cmd_rollback(cf, ra); }; });

  // watch, abort
  std::string watch_id;
  auto* watch = app.add_subcommand(
      "watch", "Follow a running deploy or plan until it ends (exit code as deploy)");
  watch->add_option("id", watch_id, "Deploy id (12) or plan id (p3)")->required();
  client_flags(watch, cf, false);
  watch->callback([&] { action = [&] { return cmd_watch(cf, watch_id); }; });

  std::string abort_id;
  bool no_rollback = false;
  auto* abort_cmd =
      app.add_subcommand("abort", "Stop a running deploy (or plan) and roll back what it changed");
  abort_cmd->add_option("id", abort_id, "Deploy id (12) or plan id (p3)")->required();
  abort_cmd->add_flag("--no-rollback", no_rollback, "Leave the nodes already changed as they are");
  client_flags(abort_cmd, cf);
  abort_cmd->callback([&] { action = [&] { return cmd_abort(cf, abort_id, !no_rollback); }; });

  // pause, resume, promote
  std::string control_id;
  for (auto [verb, help] :
       {std::pair<const char*, const char*>{"pause",
                                            "Hold a running deploy: nodes in flight finish, no new "
                                            "node starts"},
        {"resume", "Go on with a paused deploy"},
        {"promote",
         "Go on with a deploy waiting after its canaries, or a plan waiting for approval (pN)"}}) {
    auto* sub = app.add_subcommand(verb, help);
    sub->add_option("id", control_id, "Deploy id (12) or plan id (p3)")->required();
    client_flags(sub, cf);
    sub->callback([&, verb = std::string(verb)] {
      action = [&, verb] { return cmd_control(cf, verb, control_id); };
    });
  }

  // freeze, freezes, unfreeze
  FreezeArgs fa;
  auto* freeze = app.add_subcommand(
      "freeze", "Refuse deploys to an environment (or one app in it) until a time");
  freeze->add_option("--env", fa.env, "Environment")->required();
  freeze->add_option("--app", fa.app, "Only this app (default: every app of the environment)");
  freeze
      ->add_option("--until", fa.until,
                   "When it ends: 2026-12-24T18:00:00Z, 2026-12-24T19:00:00+01:00, or from now: "
                   "2h, 3d")
      ->required();
  freeze->add_option("--reason", fa.reason, "Why (shown to whoever tries to deploy)")->required();
  client_flags(freeze, cf);
  freeze->callback([&] { action = [&] { return cmd_freeze(cf, fa); }; });

  std::string freezes_env, freezes_app;
  bool freezes_all = false;
  auto* freezes = app.add_subcommand("freezes", "List the active freezes (--all: every one)");
  freezes->add_option("--env", freezes_env, "Only this environment");
  freezes->add_option("--app", freezes_app, "Only those that cover this app");
  freezes->add_flag("--all", freezes_all, "Also those lifted or over, newest first");
  client_flags(freezes, cf);
  freezes->callback(
      [&] { action = [&] { return cmd_freezes(cf, freezes_env, freezes_app, freezes_all); }; });

  int64_t unfreeze_id = 0;
  std::string unfreeze_env, unfreeze_app;
  auto* unfreeze =
      app.add_subcommand("unfreeze", "Lift a freeze: by id, or those of --env (and --app) exactly");
  unfreeze->add_option("id", unfreeze_id, "Freeze id (see slipway freezes)")
      ->check(CLI::PositiveNumber);
  unfreeze->add_option("--env", unfreeze_env, "Environment");
  unfreeze->add_option("--app", unfreeze_app,
                       "App (default: the freezes of the whole environment)");
  client_flags(unfreeze, cf);
  unfreeze->callback(
      [&] { action = [&] { return cmd_unfreeze(cf, unfreeze_id, unfreeze_env, unfreeze_app); }; });

  // lb set|show|clear
  LbArgs lb_args;
  auto* lb = app.add_subcommand(
      "lb",
      "The load balancer of an environment: drain/undrain commands for apps without their own");
  lb->require_subcommand(1);
  for (auto [verb, help] : {std::pair<const char*, const char*>{"set", "Set the commands"},
                            {"show", "Show them"},
                            {"clear", "Remove them"}}) {
    auto* sub = lb->add_subcommand(verb, help);
    sub->add_option("--env", lb_args.env, "Environment")->required();
    if (std::string_view(verb) == "set") {
      sub->add_option("--drain", lb_args.drain,
                      "Takes $SLIPWAY_TARGET_NODE out of the balancer (/bin/sh -c)");
      sub->add_option("--undrain", lb_args.undrain, "Puts it back once healthy");
      sub->add_option("--on", lb_args.on, "Run them on these nodes (role=lb), not on the node");
      sub->add_option("--timeout", lb_args.timeout, "Time limit of each (default 30s)");
    }
    client_flags(sub, cf);
    sub->callback([&, verb = std::string(verb)] {
      lb_args.verb = verb;
      action = [&] { return cmd_lb(cf, lb_args); };
    });
  }

  // config set|show|unset, secret set|list|unset
  ConfigArgs config_args;
  auto* config = app.add_subcommand("config", "The config of an app in an environment");
  config->require_subcommand(1);
  auto* secret = app.add_subcommand(
      "secret", "The secrets of an app in an environment (encrypted, never shown)");
  secret->require_subcommand(1);
  struct ConfigVerb {
    CLI::App* parent;
    bool is_secret;
    const char* verb;
    const char* help;
    const char* items;  // "" = none
  };
  for (const auto& v :
       {ConfigVerb{config, false, "set", "Set keys: KEY=VALUE...", "KEY=VALUE"},
        ConfigVerb{config, false, "show", "Show them (secrets masked)", ""},
        ConfigVerb{config, false, "unset", "Remove keys", "KEY"},
        ConfigVerb{secret, true, "set", "Set a secret; its value from stdin", "KEY"},
        ConfigVerb{secret, true, "list", "Their names", ""},
        ConfigVerb{secret, true, "unset", "Remove a secret", "KEY"}}) {
    auto* sub = v.parent->add_subcommand(v.verb, v.help);
    sub->add_option("--env", config_args.env, "Environment")->required();
    sub->add_option("--app", config_args.app, "App")->required();
    if (*v.items) {
      auto* items = sub->add_option("keys", config_args.items, v.items)->required();
      if (v.is_secret) items->expected(1);
    }
    client_flags(sub, cf);
    sub->callback([&, v] {
      config_args.verb = v.verb;
      action = [&, v] {
        return v.is_secret ? cmd_secret(cf, config_args) : cmd_config(cf, config_args);
      };
    });
  }

  auto* rotate_key = secret->add_subcommand(
      "rotate-key",
      "Re-seal every secret and notification hook secret under a new key, in one transaction; the "
      "previous key is kept as DATA_DIR/secrets.key.old until the next rotation (admin)");
  client_flags(rotate_key, cf);
  rotate_key->callback([&] { action = [&] { return cmd_secret_rotate_key(cf); }; });

  // token create|list|revoke
  auto* token = app.add_subcommand("token", "API tokens with a role and a scope (admin)");
  token->require_subcommand(1);
  TokenCreateArgs tca;
  auto* token_create = token->add_subcommand(
      "create", "Create a token; prints its secret once (the server keeps only a hash)");
  token_create
      ->add_option("--role", tca.role,
                   "What it may do: viewer (read), publisher (read and push: for CI), "
                   "deployer (also deploy, roll back, run...), admin")
      ->required()
      ->check(CLI::IsMember({"admin", "deployer", "publisher", "viewer"}));
  token_create->add_option("--env", tca.envs, "Only these environments (comma-separated)")
      ->delimiter(',');
  token_create->add_option("--app", tca.apps, "Only these apps (comma-separated)")->delimiter(',');
  token_create->add_option("--ttl", tca.ttl, "Expires after this long (30d, 12h; default never)");
  token_create->add_option("--name", tca.name, "Its name (default: ROLE-RANDOM)");
  client_flags(token_create, cf);
  token_create->callback([&] { action = [&] { return cmd_token_create(cf, tca); }; });
  auto* token_list = token->add_subcommand("list", "List the tokens (never their secrets)");
  client_flags(token_list, cf);
  token_list->callback([&] { action = [&] { return cmd_token_list(cf); }; });
  std::string revoke_ref;
  auto* token_revoke = token->add_subcommand("revoke", "Revoke a token: refused from now on");
  token_revoke->add_option("token", revoke_ref, "Its name or id")->required();
  client_flags(token_revoke, cf);
  token_revoke->callback([&] { action = [&] { return cmd_token_revoke(cf, revoke_ref); }; });

  add_notify_commands(app, cf, action, [](CLI::App* sub, ClientFlags& f) { client_flags(sub, f); });
  add_enrollment_commands(app, *nodes, cf, action,
                          [](CLI::App* sub, ClientFlags& f) { client_flags(sub, f); });

  // audit
  std::string audit_since;
  int audit_limit = 100;
  auto* audit = app.add_subcommand(
      "audit", "The audit log: who changed what, when, from where, and the outcome (admin)");
  audit->add_option("--since", audit_since, "Only entries since: a duration ago (1h) or a time");
  audit->add_option("--limit", audit_limit, "At most this many (the newest)")
      ->capture_default_str();
  client_flags(audit, cf);
  auto* audit_verify = audit->add_subcommand(
      "verify",
      "Check the audit log's HMAC chain: exit 0 when intact, 1 naming the first bad row (admin)");
  client_flags(audit_verify, cf);
  audit_verify->callback([&] { action = [&] { return cmd_audit_verify(cf); }; });
  audit->callback([&] {
    if (audit_verify->parsed()) return;  // its own action
    action = [&] { return cmd_audit(cf, audit_since, audit_limit); };
  });

  // run
  RunArgs run_args;
  auto* run_cmd = app.add_subcommand(
      "run", "Run a command on the nodes of an environment: slipway run --env E -- CMD ARGS...");
  run_cmd->add_option("--env", run_args.env, "Environment")->required();
  run_cmd->add_option("--role", run_args.role, "Only nodes with this role");
  run_cmd->add_option("--zone", run_args.zone, "Only nodes in this zone");
  run_cmd->add_option("--selector", run_args.selector, "More terms: 'tag:team=x zone in (a,b)'");
  run_cmd->add_option("--batch", run_args.batch, "Nodes at a time: N or N% (default: all)");
  run_cmd->add_option("--timeout", run_args.timeout,
                      "Kill the command on a node after this long (default 60s)");
  run_cmd
      ->add_option("command", run_args.argv,
                   "The command and its arguments, after --; run as they are, with no shell")
      ->required();
  client_flags(run_cmd, cf);
  run_cmd->callback([&] { action = [&] { return cmd_run(cf, run_args); }; });

  // history
  std::string history_app, history_env;
  int history_limit = 50;
  auto* history =
      app.add_subcommand("history", "Deploys, plans and runs: who, when, what, how long, outcome");
  history->add_option("app", history_app, "Only this app");
  history->add_option("--env", history_env, "Only this environment");
  history->add_option("--limit", history_limit, "At most this many")->capture_default_str();
  client_flags(history, cf);
  std::string show_id;
  auto* show = history->add_subcommand(
      "show",
      "One deploy, node by node and step by step, one run (rN), node by node, or one plan (pN)");
  show->add_option("id", show_id, "Deploy id (12), run id (r3) or plan id (p2)")->required();
  client_flags(show, cf);
  show->callback([&] { action = [&] { return cmd_history_show(cf, show_id); }; });
  history->callback([&] {
    if (!action) action = [&] { return cmd_history(cf, history_app, history_env, history_limit); };
  });

  // lab
  auto* lab =
      app.add_subcommand("lab", "A local fleet: a server and N agents as processes on loopback");
  lab->require_subcommand(1);
  LabUpArgs la;
  std::string la_roles = "api", la_zones;
  auto* lab_up = lab->add_subcommand("up", "Start a server and N agents");
  lab_up->add_option("--dir", la.dir, "Directory for the lab's files")->required();
  lab_up->add_option("--nodes", la.nodes, "How many agents")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  lab_up->add_option("--env", la.env, "Their environment")->capture_default_str();
  lab_up->add_option("--roles", la_roles, "Their roles, comma-separated")->capture_default_str();
  lab_up->add_option("--zones", la_zones, "Zones, round-robin (a,b) or with counts (a:2,b:3)");
  lab_up->add_option("--first-address", la.first_address, "First loopback address")
      ->capture_default_str();
  lab_up->add_option("--listen", la.listen, "The server's HOST:PORT")->capture_default_str();
  lab_up->add_flag("--attach", la.attach, "Stay in the foreground; Ctrl-C stops the lab");
  lab_up->callback([&] {
    action = [&] {
      la.roles = split(la_roles, ',');
      la.zones = split(la_zones, ',');
      return cmd_lab_up(la);
    };
  });
  std::string lab_dir;
  auto* lab_down = lab->add_subcommand("down", "Stop every process of a lab started with `lab up`");
  lab_down->add_option("--dir", lab_dir, "The lab's directory")->required();
  lab_down->callback([&] { action = [&] { return cmd_lab_down(lab_dir); }; });
  auto* lab_status = lab->add_subcommand("status", "Show the processes of a lab");
  lab_status->add_option("--dir", lab_dir, "The lab's directory")->required();
  lab_status->callback([&] { action = [&] { return cmd_lab_status(lab_dir); }; });

  // demo
  DemoArgs demo_args;
  auto* demo = app.add_subcommand("demo", "Run the guided demo on a local fleet of five agents");
  demo->add_option("--dir", demo_args.dir, "Directory for its files (default: a new one in /tmp)");
  demo->add_flag("--exit-when-done", demo_args.exit_when_done,
                 "Stop everything at the end instead of waiting for Ctrl-C");
  demo->callback([&] { action = [&] { return cmd_demo(demo_args); }; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }
  if (!action) return kExitUsage;
  fill_client_env(cf);
  try {
    return action();
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailed;
  }
}

}  // namespace slipway::cli
