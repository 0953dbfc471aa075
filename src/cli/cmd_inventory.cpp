// slipway nodes, slipway status
#include <iostream>
#include <set>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/freeze.h"

namespace slipway::cli {

namespace {

std::string str(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::string roles_of(const json::object& n) {
  std::vector<std::string> roles;
  for (const auto& r : n.at("roles").as_array())
    roles.emplace_back(r.as_string());
  return roles.empty() ? "-" : join(roles, ",");
}

bool flag(const json::object& o, const char* key) {
  const auto* v = o.if_contains(key);
  return v && v->is_bool() && v->as_bool();
}

// "alive", "lost", "pending" (waiting for approval), and "QUARANTINED" after either.
std::string state_cell(const json::object& n) {
  const std::string state = str(n, "state");
  std::string cell = state == "alive"     ? paint(state, Color::green)
                     : state == "pending" ? paint(state, Color::yellow)
                                          : paint(state, Color::red);
  if (flag(n, "quarantined")) cell += " " + paint("QUARANTINED", Color::red);
  return cell;
}

// One line per quarantined node, after a table: why, since when, how to lift it.
void print_quarantined(const json::array& nodes) {
  bool first = true;
  for (const auto& v : nodes) {
    const auto& n = v.as_object();
    if (!flag(n, "quarantined")) continue;
    if (first) std::cout << "\n";
    first = false;
    std::cout << paint("quarantined:", Color::red) << " "
              << fmt::format("{} since {}: {} (lift with: slipway nodes release {})\n",
                             str(n, "name"), str(n, "quarantined_at").substr(0, 19),
                             str(n, "quarantine_reason"), str(n, "name"));
  }
}

std::string query(std::initializer_list<std::pair<const char*, std::string>> kv) {
  std::string q;
  for (const auto& [k, v] : kv) {
    if (v.empty()) continue;
    q += (q.empty() ? "?" : "&") + std::string(k) + "=" + v;
  }
  return q;
}

}  // namespace

int cmd_nodes(const ClientFlags& f, const std::string& env, const std::string& state) {
  if (!env.empty()) {
    if (auto st = validate_name(NameKind::env, env); !st) return fail(st.error());
  }
  if (!state.empty() && state != "alive" && state != "lost" && state != "revoked" &&
      state != "pending") {
    return fail(err(Errc::invalid_argument, "--state must be alive, lost, revoked or pending"));
  }
  auto c = make_client(f);
  auto r = c.get("/api/v1/nodes" + query({{"env", env}, {"state", state}}));
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  Table t({"NAME", "ENV", "ROLES", "ZONE", "ADDRESS", "STATE", "LAST SEEN", "APPS"});
  for (const auto& v : r->as_object().at("nodes").as_array()) {
    const auto& n = v.as_object();
    std::vector<std::string> apps;
    for (const auto& [name, a] : n.at("apps").as_object()) {
      apps.push_back(fmt::format("{} {}", std::string_view(name), str(a.as_object(), "version")));
    }
    const std::string zone = str(n, "zone");
    t.row({str(n, "name"), str(n, "env"), roles_of(n), zone.empty() ? "-" : zone, str(n, "address"),
           state_cell(n), str(n, "last_seen").substr(0, 19).replace(10, 1, " "),
           apps.empty() ? "-" : join(apps, ", ")});
  }
  if (t.empty()) {
    std::cout << "no nodes" << (env.empty() ? "" : " in " + env) << "\n";
    return kExitOk;
  }
  t.print(std::cout);
  print_quarantined(r->as_object().at("nodes").as_array());
  for (const auto& v : r->as_object().at("nodes").as_array()) {
    if (flag(v.as_object(), "pending")) {
      std::cout << paint("pending:", Color::yellow) << " "
                << fmt::format(
                       "{} waits for approval; it is sent nothing until `slipway nodes "
                       "approve {}`\n",
                       str(v.as_object(), "name"), str(v.as_object(), "name"));
    }
  }
  return kExitOk;
}

int cmd_nodes_release(const ClientFlags& f, const std::string& name) {
  if (auto st = validate_name(NameKind::node, name); !st) return fail(st.error());
  auto c = make_client(f);
  auto r = c.post("/api/v1/nodes/" + name + "/release", json::object{});
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  std::cout << fmt::format(
      "node {} released from quarantine: it is a target again and converges to its desired "
      "release\n",
      name);
  return kExitOk;
}

int cmd_nodes_revoke(const ClientFlags& f, const std::string& name) {
  if (auto st = validate_name(NameKind::node, name); !st) return fail(st.error());
  auto c = make_client(f);
  auto r = c.post("/api/v1/nodes/" + name + "/revoke", json::object{});
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  std::cout << fmt::format(
      "node {} revoked: its agent is disconnected and the name {} can never connect again.\n"
      "To bring the machine back, stop its agent, remove ROOT/agent.credential, and start it "
      "under a new --name.\n",
      name, name);
  return kExitOk;
}

int cmd_status(const ClientFlags& f, const std::string& env, const std::string& app) {
  if (!env.empty()) {
    if (auto st = validate_name(NameKind::env, env); !st) return fail(st.error());
  }
  if (!app.empty()) {
    if (auto st = validate_name(NameKind::app, app); !st) return fail(st.error());
  }
  auto c = make_client(f);
  auto r = c.get("/api/v1/status" + query({{"env", env}, {"app", app}}));
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  const auto& nodes = r->as_object().at("nodes").as_array();
  std::set<std::string> apps;
  for (const auto& v : nodes) {
    for (const auto& [name, a] : v.as_object().at("apps").as_object())
      apps.emplace(name);
    if (const auto* d = v.as_object().if_contains("desired"); d && d->is_object()) {
      for (const auto& [name, version] : d->as_object())
        apps.emplace(name);
    }
  }
  std::vector<std::string> headers = {"NODE", "ENV", "ROLES", "ZONE", "STATE"};
  for (const auto& a : apps)
    headers.push_back(a);
  Table t(headers);
  for (const auto& v : nodes) {
    const auto& n = v.as_object();
    const std::string zone = str(n, "zone");
    std::vector<std::string> row = {str(n, "name"), str(n, "env"), roles_of(n),
                                    zone.empty() ? "-" : zone, state_cell(n)};
    const auto* desired = n.if_contains("desired");
    for (const auto& a : apps) {
      const auto* want =
          desired && desired->is_object() ? desired->as_object().if_contains(a) : nullptr;
      const std::string wanted = want && want->is_string() ? std::string(want->as_string()) : "";
      const auto* av = n.at("apps").as_object().if_contains(a);
      std::string cell = "-";
      std::string version;
      if (av) {
        const auto& ao = av->as_object();
        version = str(ao, "version");
        const bool healthy = ao.at("healthy").as_bool();
        if (!version.empty()) {
          cell = version + " " +
                 (healthy ? paint("healthy", Color::green) : paint("unhealthy", Color::red));
        }
      }
      // Drift: something other than the desired release.
      if (!wanted.empty() && wanted != version)
        cell += " " + paint("DRIFT (wants " + wanted + ")", Color::yellow);
      row.push_back(std::move(cell));
    }
    t.row(std::move(row));
  }
  if (t.empty()) {
    std::cout << "no nodes" << (env.empty() ? "" : " in " + env) << "\n";
  } else {
    t.print(std::cout);
  }
  print_quarantined(nodes);
  const auto& running = r->as_object().at("running").as_array();
  for (const auto& d : running) {
    const auto& o = d.as_object();
    std::cout << fmt::format("\nrunning: deploy #{} of {} {} to {} ({} of {} nodes healthy)\n",
                             o.at("id").as_int64(), str(o, "app"), str(o, "version"), str(o, "env"),
                             o.at("healthy_count").as_int64(), o.at("node_count").as_int64());
  }
  // The freezes in force there (a server that does not know freezes answers 404: nothing shown).
  auto fr = c.get("/api/v1/freezes" + query({{"env", env}, {"app", app}}));
  const auto* freezes = fr && fr->is_object() ? fr->as_object().if_contains("freezes") : nullptr;
  if (freezes && freezes->is_array() && !freezes->as_array().empty()) {
    std::cout << "\n";
    for (const auto& v : freezes->as_array()) {
      if (auto fz = engine::freeze_from_json(v)) {
        std::cout << paint("frozen:", Color::yellow) << " " << fz->describe() << "\n";
      }
    }
  }
  return kExitOk;
}

}  // namespace slipway::cli
