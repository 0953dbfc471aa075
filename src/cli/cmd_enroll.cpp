// slipway join-token create|list|revoke, slipway env list|protect|unprotect,
// slipway nodes move|approve
#include "cli/cmd_enroll.h"

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/names.h"
#include "common/strings.h"

namespace slipway::cli {

namespace {

struct JoinTokenArgs {
  std::string env;
  std::vector<std::string> roles;
  std::string ttl;
  int64_t uses = 0;  // 0 = no limit
  std::string name;
  bool approve = false;
};

struct MoveArgs {
  std::string name;
  std::string env;
  std::vector<std::string> roles;
  bool roles_given = false;
};

// A field as text: strings as they are, numbers and booleans spelled out, "" otherwise.
std::string field(const json::value& v, std::string_view key) {
  const auto* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (!f) return "";
  if (f->is_string()) return std::string(f->as_string());
  if (f->is_int64()) return std::to_string(f->as_int64());
  if (f->is_bool()) return f->as_bool() ? "yes" : "no";
  return "";
}

std::string list_field(const json::value& v, std::string_view key, const char* none) {
  std::vector<std::string> out;
  const auto* a = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (a && a->is_array()) {
    for (const auto& e : a->as_array()) {
      if (e.is_string()) out.emplace_back(e.as_string());
    }
  }
  return out.empty() ? none : join(out, ",");
}

// A time field as "2026-12-02 04:00:00", `none` when it is null.
std::string time_field(const json::value& v, std::string_view key, const char* none) {
  const std::string t = field(v, key);
  if (t.empty()) return none;
  const TimeMs ms = parse_time(t);
  return ms < 0 ? t : format_time_short(ms);
}

json::array names_json(const std::vector<std::string>& names) {
  json::array a;
  for (const auto& n : names)
    a.emplace_back(n);
  return a;
}

// Checks each name; "" entries (`--roles ""`: none) are dropped first.
Status check_names(NameKind kind, std::vector<std::string>& names) {
  std::erase(names, std::string());
  for (const auto& n : names) {
    if (auto st = validate_name(kind, n); !st) return st;
  }
  return {};
}

int print_or(const ClientFlags& f, const Result<json::value>& r,
             const std::function<void(const json::value&)>& print) {
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
  } else {
    print(*r);
  }
  return kExitOk;
}

int cmd_join_token_create(const ClientFlags& f, JoinTokenArgs a) {
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  if (auto st = check_names(NameKind::role, a.roles); !st) return fail(st.error());
  if (!a.name.empty()) {
    if (auto st = validate_name(NameKind::token, a.name); !st) return fail(st.error());
  }
  if (!a.ttl.empty()) {
    if (auto d = parse_duration(a.ttl); !d) return fail(d.error());
  }
  json::object body{{"env", a.env}};
  if (!a.roles.empty()) body["roles"] = names_json(a.roles);
  if (!a.ttl.empty()) body["ttl"] = a.ttl;
  if (a.uses != 0) body["uses"] = a.uses;
  if (!a.name.empty()) body["name"] = a.name;
  if (a.approve) body["approve"] = true;
  auto c = make_client(f);
  return print_or(f, c.post("/api/v1/join-tokens", body), [&](const json::value& r) {
    const std::string roles = list_field(r, "roles", "");
    const std::string max_uses = field(r, "max_uses");
    std::cout << paint("✓", Color::green) << " "
              << fmt::format("created join token '{}' for environment {}{}{}, expires {}{}\n",
                             field(r, "name"), field(r, "env"),
                             roles.empty() ? "" : ", roles " + roles,
                             max_uses == "0" ? "" : ", " + max_uses + " enrollment(s)",
                             time_field(r, "expires_at", "never"),
                             field(r, "approve") == "yes" ? ", nodes wait for approval" : "")
              << field(r, "token") << "\n"
              << "  it is shown only this once (the server keeps only its hash). Start an agent "
                 "with it:\n"
              << fmt::format(
                     "    slipway agent --server {} --token TOKEN --env {}{} --name NAME "
                     "--root DIR\n",
                     f.server, field(r, "env"), roles.empty() ? "" : " --roles " + roles)
              << "  it only enrolls: enrolled nodes keep working after it expires or `slipway "
                 "join-token revoke "
              << field(r, "name") << "`\n";
  });
}

int cmd_join_token_list(const ClientFlags& f) {
  auto c = make_client(f);
  return print_or(f, c.get("/api/v1/join-tokens"), [](const json::value& r) {
    Table t({"NAME", "ENV", "ROLES", "USES", "APPROVE", "CREATED (UTC)", "BY", "EXPIRES (UTC)",
             "LAST USED (UTC)", "STATE"});
    const auto* list = r.is_object() ? r.as_object().if_contains("join_tokens") : nullptr;
    if (list && list->is_array()) {
      for (const auto& v : list->as_array()) {
        const std::string max = field(v, "max_uses");
        const std::string state = field(v, "state");
        t.row({field(v, "name"), field(v, "env"), list_field(v, "roles", "any"),
               max == "0" ? field(v, "uses") : field(v, "uses") + "/" + max, field(v, "approve"),
               time_field(v, "created_at", "-"), field(v, "created_by"),
               time_field(v, "expires_at", "never"), time_field(v, "last_used", "never"),
               state == "active" ? paint(state, Color::green) : state});
      }
    }
    if (t.empty()) {
      std::cout << "no join tokens (the server's default one is DATA_DIR/join.token)\n";
    } else {
      t.print(std::cout);
    }
  });
}

int cmd_join_token_revoke(const ClientFlags& f, const std::string& name) {
  if (auto st = validate_name(NameKind::token, name); !st) return fail(st.error());
  auto c = make_client(f);
  return print_or(f, c.send("DELETE", "/api/v1/join-tokens/" + name, nullptr),
                  [&](const json::value&) {
                    std::cout << paint("✓", Color::green) << " "
                              << fmt::format(
                                     "revoked join token '{}': it enrolls nothing from "
                                     "now on (the nodes it enrolled keep working)\n",
                                     name);
                  });
}

int cmd_env_list(const ClientFlags& f) {
  auto c = make_client(f);
  return print_or(f, c.get("/api/v1/envs"), [](const json::value& r) {
    Table t({"ENV", "PROTECTED", "NODES", "PENDING", "JOIN TOKENS", "CHANGED (UTC)", "BY"});
    const auto* list = r.is_object() ? r.as_object().if_contains("envs") : nullptr;
    if (list && list->is_array()) {
      for (const auto& v : list->as_array()) {
        const bool prot = field(v, "protected") == "yes";
        t.row({field(v, "name"), prot ? paint("protected", Color::yellow) : "no", field(v, "nodes"),
               field(v, "pending"), field(v, "join_tokens"), time_field(v, "changed_at", "-"),
               field(v, "changed_by")});
      }
    }
    if (t.empty()) {
      std::cout << "no environments yet (an environment exists once a node or join token has it)\n";
    } else {
      t.print(std::cout);
    }
  });
}

int cmd_env_protect(const ClientFlags& f, const std::string& env, bool protect) {
  if (auto st = validate_name(NameKind::env, env); !st) return fail(st.error());
  auto c = make_client(f);
  const std::string verb = protect ? "protect" : "unprotect";
  return print_or(f, c.post("/api/v1/envs/" + env + "/" + verb, json::object{}),
                  [&](const json::value&) {
                    std::cout << paint("✓", Color::green) << " "
                              << (protect ? fmt::format("environment {} is protected: it accepts "
                                                        "new nodes only through a join token "
                                                        "scoped to it (slipway join-token create "
                                                        "--env {})\n",
                                                        env, env)
                                          : fmt::format("environment {} is not protected: the "
                                                        "server's default join token enrolls "
                                                        "nodes into it too\n",
                                                        env));
                  });
}

int cmd_nodes_move(const ClientFlags& f, MoveArgs a) {
  if (auto st = validate_name(NameKind::node, a.name); !st) return fail(st.error());
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  if (auto st = check_names(NameKind::role, a.roles); !st) return fail(st.error());
  json::object body{{"env", a.env}};
  if (a.roles_given) body["roles"] = names_json(a.roles);
  auto c = make_client(f);
  return print_or(f, c.post("/api/v1/nodes/" + a.name + "/move", body), [&](const json::value& r) {
    std::cout << paint("✓", Color::green) << " "
              << fmt::format(
                     "node {} is enrolled in {} with roles {} now; its agent was disconnected: "
                     "restart it with {}\n",
                     a.name, field(r, "env"), list_field(r, "roles", "none"),
                     field(r, "restart_with"));
  });
}

int cmd_nodes_approve(const ClientFlags& f, const std::string& name) {
  if (auto st = validate_name(NameKind::node, name); !st) return fail(st.error());
  auto c = make_client(f);
  return print_or(f, c.post("/api/v1/nodes/" + name + "/approve", json::object{}),
                  [&](const json::value& r) {
                    std::cout << paint("✓", Color::green) << " "
                              << fmt::format(
                                     "node {} approved: a node of {} now, it converges "
                                     "to the environment's releases\n",
                                     name, field(r, "env"));
                  });
}

}  // namespace

void add_enrollment_commands(CLI::App& app, CLI::App& nodes, ClientFlags& cf,
                             std::function<int()>& action,
                             const std::function<void(CLI::App*, ClientFlags&)>& client_flags) {
  auto* jt = app.add_subcommand("join-token",
                                "Join tokens: what enrolls new nodes into one environment (admin)");
  jt->require_subcommand(1);
  auto a = std::make_shared<JoinTokenArgs>();
  auto* create = jt->add_subcommand(
      "create", "Create a join token; prints it once (the server keeps only a hash)");
  create->add_option("--env", a->env, "The environment its nodes join")->required();
  create->add_option("--roles", a->roles, "The only roles its nodes may have (comma-separated)")
      ->delimiter(',');
  create->add_option("--ttl", a->ttl, "It enrolls nothing after this long (24h, 30d)");
  create->add_option("--uses", a->uses, "It enrolls at most this many nodes")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}));
  create->add_option("--name", a->name, "Its name (default: ENV-RANDOM)");
  create->add_flag("--approve", a->approve,
                   "Its nodes wait, sent nothing, until `slipway nodes approve NAME`");
  client_flags(create, cf);
  create->callback(
      [&action, &cf, a] { action = [&cf, a] { return cmd_join_token_create(cf, *a); }; });
  auto* list = jt->add_subcommand("list", "List the join tokens (never their secrets)");
  client_flags(list, cf);
  list->callback([&action, &cf] { action = [&cf] { return cmd_join_token_list(cf); }; });
  auto revoke_name = std::make_shared<std::string>();
  auto* revoke = jt->add_subcommand(
      "revoke", "Revoke a join token: it enrolls nothing more (its nodes keep working)");
  revoke->add_option("name", *revoke_name, "Its name")->required();
  client_flags(revoke, cf);
  revoke->callback([&action, &cf, revoke_name] {
    action = [&cf, revoke_name] { return cmd_join_token_revoke(cf, *revoke_name); };
  });

  auto* env = app.add_subcommand("env", "Environments and their protection");
  env->require_subcommand(1);
  auto* env_list = env->add_subcommand("list", "List the environments and whether protected");
  client_flags(env_list, cf);
  env_list->callback([&action, &cf] { action = [&cf] { return cmd_env_list(cf); }; });
  for (const bool protect : {true, false}) {
    auto env_name = std::make_shared<std::string>();
    auto* sub = env->add_subcommand(
        protect ? "protect" : "unprotect",
        protect ? "New nodes only through a join token scoped to it, never the default one (admin)"
                : "Let the server's default join token enroll nodes into it again (admin)");
    sub->add_option("env", *env_name, "The environment")->required();
    client_flags(sub, cf);
    sub->callback([&action, &cf, env_name, protect] {
      action = [&cf, env_name, protect] { return cmd_env_protect(cf, *env_name, protect); };
    });
  }

  auto m = std::make_shared<MoveArgs>();
  auto* move = nodes.add_subcommand(
      "move",
      "Change the environment (and roles) a node is enrolled in; its agent is disconnected and "
      "must restart with the new --env/--roles (admin)");
  move->add_option("name", m->name, "Node name")->required();
  move->add_option("--env", m->env, "Its environment from now on")->required();
  auto* roles =
      move->add_option("--roles", m->roles, "Its roles from now on (default: as they are)")
          ->delimiter(',');
  client_flags(move, cf);
  move->callback([&action, &cf, m, roles] {
    m->roles_given = roles->count() > 0;
    action = [&cf, m] { return cmd_nodes_move(cf, *m); };
  });
  auto approve_name = std::make_shared<std::string>();
  auto* approve = nodes.add_subcommand(
      "approve",
      "Approve a node waiting for it (nodes --state pending): it becomes a target (admin)");
  approve->add_option("name", *approve_name, "Node name")->required();
  client_flags(approve, cf);
  approve->callback([&action, &cf, approve_name] {
    action = [&cf, approve_name] { return cmd_nodes_approve(cf, *approve_name); };
  });
}

}  // namespace slipway::cli
