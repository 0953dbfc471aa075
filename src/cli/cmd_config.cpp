// slipway config set|show|unset and slipway secret set|list|unset: the per-environment config of
// an app. A secret's value is read from standard input only (without echo on a terminal), never
// from the command line, where other users could see it (ps, shell history).
#include <iostream>

#include <fmt/format.h>
#include <termios.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/config.h"

namespace slipway::cli {

namespace {

std::string scope_path(const ConfigArgs& a, std::string_view what) {
  return fmt::format("/api/v1/envs/{}/apps/{}/{}", a.env, a.app, what);
}

Status check_scope(const ConfigArgs& a) {
  if (auto st = validate_name(NameKind::env, a.env); !st) return st;
  return validate_name(NameKind::app, a.app);
}

int print_changes(const ClientFlags& f, const json::value& v) {
  if (f.json()) {
    print_json(v);
    return kExitOk;
  }
  const auto& o = v.as_object();
  std::vector<std::string> parts;
  if (const auto* ch = o.if_contains("changes"); ch && ch->is_array()) {
    for (const auto& c : ch->as_array()) {
      const auto& co = c.as_object();
      parts.push_back(fmt::format("{} {}", std::string_view(co.at("change").as_string()),
                                  std::string_view(co.at("key").as_string())));
    }
  }
  std::cout << fmt::format("{} in {}: config version {} ({})\n",
                           std::string_view(o.at("app").as_string()),
                           std::string_view(o.at("env").as_string()), o.at("version").as_int64(),
                           parts.empty() ? "nothing changed" : join(parts, ", "));
  return kExitOk;
}

// The secret from standard input: on a terminal, one line typed without echo; otherwise all of
// it (one trailing newline removed).
Result<std::string> read_secret(const std::string& key) {
  std::string value;
  const size_t limit = engine::kMaxConfigValue + 2;
  if (::isatty(STDIN_FILENO)) {
    std::cerr << fmt::format("value of {} (not echoed): ", key) << std::flush;
    termios old{};
    const bool have = ::tcgetattr(STDIN_FILENO, &old) == 0;
    if (have) {
      termios quiet = old;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      (void)::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    std::getline(std::cin, value);
    if (have) (void)::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::cerr << "\n";
  } else {
    char buf[4096];
    while (value.size() <= limit && std::cin.read(buf, sizeof buf).gcount() > 0)
      value.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (value.size() > limit) {
      return err(Errc::too_large,
                 fmt::format("the value of {} is over {} bytes", key, engine::kMaxConfigValue));
    }
    if (!value.empty() && value.back() == '\n') {
      value.pop_back();
      if (!value.empty() && value.back() == '\r') value.pop_back();
    }
  }
  if (value.empty()) {
    return err(Errc::invalid_argument,
               fmt::format("no value for {} on standard input (a secret cannot be empty)", key));
  }
  if (auto st = engine::validate_config_value(key, value); !st) return st.error();
  return value;
}

}  // namespace

int cmd_config(const ClientFlags& f, const ConfigArgs& a) {
  if (auto st = check_scope(a); !st) return fail(st.error());
  auto c = make_client(f);
  if (a.verb == "show") {
    auto r = c.get(scope_path(a, "config"));
    if (!r) return fail(r.error());
    if (f.json()) {
      print_json(*r);
      return kExitOk;
    }
    const auto& o = r->as_object();
    std::cout << fmt::format("config of {} in {}: version {}\n", a.app, a.env,
                             o.at("version").as_int64());
    Table t({"KEY", "VALUE", "UPDATED BY", "UPDATED"});
    for (const auto& e : o.at("config").as_array()) {
      const auto& eo = e.as_object();
      t.row({std::string(eo.at("key").as_string()), std::string(eo.at("value").as_string()),
             std::string(eo.at("updated_by").as_string()),
             std::string(eo.at("updated_at").as_string())});
    }
    t.print(std::cout);
    return kExitOk;
  }
  json::object body;
  if (a.verb == "set") {
    json::object set;
    for (const auto& kv : a.items) {
      const auto eq = kv.find('=');
      if (eq == std::string::npos) {
        return fail(
            err(Errc::invalid_argument, fmt::format("'{}' is not KEY=VALUE", excerpt(kv, 40))));
      }
      const std::string key = kv.substr(0, eq);
      if (auto st = engine::validate_config_key(key); !st) return fail(st.error());
      set[key] = kv.substr(eq + 1);
    }
    body["set"] = std::move(set);
  } else {
    json::array unset;
    for (const auto& key : a.items) {
      if (auto st = engine::validate_config_key(key); !st) return fail(st.error());
      unset.emplace_back(key);
    }
    body["unset"] = std::move(unset);
  }
  auto r = c.send("PATCH", scope_path(a, "config"), body);
  if (!r) return fail(r.error());
  return print_changes(f, *r);
}

int cmd_secret(const ClientFlags& f, const ConfigArgs& a) {
  if (auto st = check_scope(a); !st) return fail(st.error());
  auto c = make_client(f);
  if (a.verb == "list") {
    auto r = c.get(scope_path(a, "secrets"));
    if (!r) return fail(r.error());
    if (f.json()) {
      print_json(*r);
      return kExitOk;
    }
    Table t({"SECRET", "UPDATED BY", "UPDATED"});
    for (const auto& e : r->as_object().at("secrets").as_array()) {
      const auto& eo = e.as_object();
      t.row({std::string(eo.at("key").as_string()), std::string(eo.at("updated_by").as_string()),
             std::string(eo.at("updated_at").as_string())});
    }
    t.print(std::cout);
    return kExitOk;
  }
  const std::string key = a.items.empty() ? std::string() : a.items.front();
  if (auto st = engine::validate_config_key(key); !st) return fail(st.error());
  const std::string path = scope_path(a, "secrets/" + key);
  Result<json::value> r = err(Errc::internal, "");
  if (a.verb == "set") {
    auto value = read_secret(key);
    if (!value) return fail(value.error());
    r = c.send("PUT", path, json::object{{"value", *value}});
    std::fill(value->begin(), value->end(), '\0');
  } else {
    r = c.send("DELETE", path, nullptr);
  }
  if (!r) return fail(r.error());
  return print_changes(f, *r);
}

int cmd_secret_rotate_key(const ClientFlags& f) {
  auto c = make_client(f);
  auto r = c.post("/api/v1/secrets/rotate-key", nullptr);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  const auto& o = r->as_object();
  auto number = [&o](std::string_view k) {
    const auto* v = o.if_contains(k);
    return v && v->is_int64() ? v->as_int64() : 0;
  };
  auto text = [&o](std::string_view k) {
    const auto* v = o.if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  std::cout << paint("✓", Color::green) << " "
            << fmt::format(
                   "rotated the secrets key: {} config secret(s) and {} notification hook "
                   "secret(s) re-sealed in one transaction\n",
                   number("config_secrets"), number("notify_hooks"))
            << fmt::format(
                   "  the server uses the new key now ({}); the previous one is kept as {} "
                   "until the next rotation\n",
                   text("key"), text("old_key"));
  return kExitOk;
}

}  // namespace slipway::cli
