// slipway lb set|show|clear: the load-balancer commands of an environment.
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/duration.h"
#include "common/names.h"

namespace slipway::cli {

namespace {

std::string describe(const json::value& c) {
  if (!c.is_object()) return "-";
  const auto& o = c.as_object();
  std::string s(o.at("command").as_string());
  if (const auto* on = o.if_contains("on"); on && on->is_string() && !on->as_string().empty())
    s += fmt::format("  (on {})", std::string_view(on->as_string()));
  if (const auto* t = o.if_contains("timeout_ms"); t && t->is_int64())
    s += fmt::format("  [timeout {}]", format_duration(Millis(t->as_int64())));
  return s;
}

int print_lb(const ClientFlags& f, const json::value& v) {
  if (f.json()) {
    print_json(v);
    return kExitOk;
  }
  const auto& o = v.as_object();
  std::cout << fmt::format("load balancer of {}\n", std::string_view(o.at("env").as_string()));
  std::cout << fmt::format("  drain    {}\n", describe(o.at("drain")));
  std::cout << fmt::format("  undrain  {}\n", describe(o.at("undrain")));
  std::cout << "  (used for the apps whose slipway.yaml names no drain or undrain of its own)\n";
  return kExitOk;
}

}  // namespace

int cmd_lb(const ClientFlags& f, const LbArgs& a) {
  if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  auto c = make_client(f);
  const std::string path = fmt::format("/api/v1/envs/{}/lb", a.env);
  Result<json::value> r = err(Errc::internal, "");
  if (a.verb == "show") {
    r = c.get(path);
  } else if (a.verb == "clear") {
    r = c.send("DELETE", path, nullptr);
  } else {
    if (a.drain.empty() && a.undrain.empty())
      return fail(err(Errc::invalid_argument, "give --drain, --undrain or both"));
    if (!a.timeout.empty()) {
      if (auto d = parse_duration(a.timeout); !d) return fail(d.error());
    }
    json::object body;
    for (auto [key, command] : {std::pair{"drain", &a.drain}, std::pair{"undrain", &a.undrain}}) {
      if (command->empty()) continue;
      json::object cmd{{"command", *command}, {"on", a.on}};
      if (!a.timeout.empty()) cmd["timeout"] = a.timeout;
      body[key] = std::move(cmd);
    }
    r = c.send("PUT", path, body);
  }
  if (!r) return fail(r.error());
  return print_lb(f, *r);
}

}  // namespace slipway::cli
