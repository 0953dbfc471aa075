// slipway notify add|list|test|remove|log
#include "cli/cmd_notify.h"

#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/names.h"
#include "common/strings.h"

namespace slipway::cli {

namespace {

struct NotifyAddArgs {
  std::string name;
  std::string kind;    // webhook | slack | email
  std::string target;  // URL or address
  std::vector<std::string> events;
  std::string env;
  std::string app;
  bool secret_stdin = false;
};

std::string field(const json::value& v, std::string_view key) {
  const auto* f = v.is_object() ? v.as_object().if_contains(key) : nullptr;
  if (!f) return "";
  if (f->is_string()) return std::string(f->as_string());
  if (f->is_int64()) return std::to_string(f->as_int64());
  if (f->is_bool()) return f->as_bool() ? "true" : "false";
  return "";
}

std::string events_cell(const json::value& v) {
  std::vector<std::string> out;
  const auto* a = v.is_object() ? v.as_object().if_contains("events") : nullptr;
  if (a && a->is_array()) {
    for (const auto& e : a->as_array()) {
      if (e.is_string()) out.emplace_back(e.as_string());
    }
  }
  return join(out, ",");
}

std::string or_all(const std::string& s) {
  return s.empty() ? "all" : s;
}

// "2026-12-02T04:00:00.000Z" as "2026-12-02 04:00:00".
std::string time_cell(const std::string& t) {
  const TimeMs ms = parse_time(t);
  return ms < 0 ? t : format_time_short(ms);
}

// The webhook's signing secret from standard input (all of it, one trailing newline removed).
Result<std::string> secret_from_stdin() {
  std::string value;
  char buf[512];
  while (value.size() <= 1024 && std::cin.read(buf, sizeof buf).gcount() > 0)
    value.append(buf, static_cast<size_t>(std::cin.gcount()));
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r'))
    value.pop_back();
  if (value.empty()) return err(Errc::invalid_argument, "no secret on standard input");
  if (value.size() > 256) {
    return err(Errc::invalid_argument, "the secret on standard input is over 256 characters");
  }
  return value;
}

int cmd_notify_add(const ClientFlags& f, const NotifyAddArgs& a) {
  if (auto st = validate_name(NameKind::token, a.name); !st) return fail(st.error());
  if (!a.env.empty()) {
    if (auto st = validate_name(NameKind::env, a.env); !st) return fail(st.error());
  }
  if (!a.app.empty()) {
    if (auto st = validate_name(NameKind::app, a.app); !st) return fail(st.error());
  }
  if (a.secret_stdin && a.kind != "webhook") {
    return fail(err(Errc::invalid_argument, "--secret-stdin: only a webhook has a secret"));
  }
  json::array events;
  for (const auto& e : a.events)
    events.emplace_back(e);
  json::object body{{"name", a.name}, {"kind", a.kind}, {"target", a.target}, {"events", events}};
  if (!a.env.empty()) body["env"] = a.env;
  if (!a.app.empty()) body["app"] = a.app;
  if (a.secret_stdin) {
    auto secret = secret_from_stdin();
    if (!secret) return fail(secret.error());
    body["secret"] = *secret;
  }
  auto c = make_client(f);
  auto r = c.post("/api/v1/notify/hooks", body);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  std::cout << paint("✓", Color::green) << " "
            << fmt::format("added {} hook '{}' to {}: {} (environment {}, app {})\n",
                           field(*r, "kind"), field(*r, "name"), field(*r, "target"),
                           events_cell(*r), or_all(field(*r, "env")), or_all(field(*r, "app")));
  if (const std::string secret = field(*r, "secret"); !secret.empty()) {
    std::cout << "signing secret: " << secret << "\n"
              << "  it is shown only this once: the receiver checks X-Slipway-Signature with it "
                 "(docs/notifications.md)\n";
  }
  return kExitOk;
}

int cmd_notify_list(const ClientFlags& f) {
  auto c = make_client(f);
  auto r = c.get("/api/v1/notify/hooks");
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  Table t({"NAME", "KIND", "TARGET", "EVENTS", "ENV", "APP", "CREATED (UTC)", "BY"});
  const auto* list = r->is_object() ? r->as_object().if_contains("hooks") : nullptr;
  if (list && list->is_array()) {
    for (const auto& h : list->as_array()) {
      t.row({field(h, "name"), field(h, "kind"), field(h, "target"), events_cell(h),
             or_all(field(h, "env")), or_all(field(h, "app")), time_cell(field(h, "created_at")),
             field(h, "created_by")});
    }
  }
  if (t.empty()) {
    std::cout << "no notification hooks (slipway notify add --name N webhook URL --events ...)\n";
  } else {
    t.print(std::cout);
  }
  return kExitOk;
}

std::string outcome(const json::value& d) {
  if (field(d, "ok") == "true") return paint("ok " + field(d, "status_code"), Color::green);
  const std::string error = field(d, "error");
  return paint(error.empty() ? "status " + field(d, "status_code") : error, Color::red);
}

int cmd_notify_test(const ClientFlags& f, const std::string& name) {
  if (auto st = validate_name(NameKind::token, name); !st) return fail(st.error());
  auto c = make_client(f);
  auto r = c.post("/api/v1/notify/hooks/" + name + "/test", json::object{});
  if (!r) return fail(r.error());
  const bool ok = field(*r, "ok") == "true";
  if (f.json()) {
    print_json(*r);
  } else if (ok) {
    std::cout << paint("✓", Color::green) << " "
              << fmt::format("test notification delivered to '{}' ({} in {} ms)\n", name,
                             field(*r, "status_code"), field(*r, "duration_ms"));
  } else {
    std::cout << paint("✗", Color::red) << " "
              << fmt::format("test notification to '{}' failed: {} (after {} ms)\n", name,
                             outcome(*r), field(*r, "duration_ms"));
  }
  return ok ? kExitOk : kExitFailed;
}

int cmd_notify_remove(const ClientFlags& f, const std::string& name) {
  if (auto st = validate_name(NameKind::token, name); !st) return fail(st.error());
  auto c = make_client(f);
  auto r = c.send("DELETE", "/api/v1/notify/hooks/" + name, nullptr);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  std::cout << paint("✓", Color::green) << " "
            << fmt::format("removed notification hook '{}'\n", name);
  return kExitOk;
}

int cmd_notify_log(const ClientFlags& f, const std::string& name, int limit) {
  if (!name.empty()) {
    if (auto st = validate_name(NameKind::token, name); !st) return fail(st.error());
  }
  if (limit < 1 || limit > 1000) {
    return fail(err(Errc::invalid_argument, "--limit must be from 1 to 1000"));
  }
  std::string q = fmt::format("/api/v1/notify/deliveries?limit={}", limit);
  if (!name.empty()) q += "&hook=" + name;
  auto c = make_client(f);
  auto r = c.get(q);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  Table t({"AT (UTC)", "HOOK", "EVENT", "DELIVERY", "ATTEMPT", "OUTCOME", "TOOK"});
  const auto* list = r->is_object() ? r->as_object().if_contains("deliveries") : nullptr;
  if (list && list->is_array()) {
    for (const auto& d : list->as_array()) {
      t.row({time_cell(field(d, "at")), field(d, "hook"), field(d, "event"), field(d, "delivery"),
             field(d, "attempt"), outcome(d), field(d, "duration_ms") + " ms"});
    }
  }
  if (t.empty()) {
    std::cout << "no deliveries yet\n";
  } else {
    t.print(std::cout);
  }
  return kExitOk;
}

}  // namespace

void add_notify_commands(CLI::App& app, ClientFlags& cf, std::function<int()>& action,
                         const std::function<void(CLI::App*, ClientFlags&)>& client_flags) {
  auto* notify = app.add_subcommand(
      "notify", "Notifications of deploys and nodes: webhooks, Slack and e-mail (admin)");
  notify->require_subcommand(1);

  auto a = std::make_shared<NotifyAddArgs>();
  auto* add = notify->add_subcommand(
      "add",
      "Add a hook: --name N webhook URL | slack URL | email ADDRESS --events E1,E2 "
      "(a webhook's signing secret is printed once)");
  add->add_option("--name", a->name, "Its name")->required();
  add->add_option("kind", a->kind, "webhook, slack or email")
      ->required()
      ->check(CLI::IsMember({"webhook", "slack", "email"}));
  add->add_option("target", a->target, "The URL (webhook, slack) or the e-mail address")
      ->required();
  add->add_option("--events", a->events,
                  "What to notify: deploy.started, deploy.succeeded, deploy.failed, "
                  "deploy.rolled_back, node.lost, node.quarantined, drift (comma-separated)")
      ->required()
      ->delimiter(',');
  add->add_option("--env", a->env, "Only this environment");
  add->add_option("--app", a->app, "Only this app");
  add->add_flag("--secret-stdin", a->secret_stdin,
                "Read the webhook's signing secret from standard input instead of generating one");
  client_flags(add, cf);
  add->callback([&action, &cf, a] { action = [&cf, a] { return cmd_notify_add(cf, *a); }; });

  auto* list = notify->add_subcommand("list", "List the hooks (never their secrets)");
  client_flags(list, cf);
  list->callback([&action, &cf] { action = [&cf] { return cmd_notify_list(cf); }; });

  auto name = std::make_shared<std::string>();
  auto* test = notify->add_subcommand("test", "Send a test notification to a hook now (one try)");
  test->add_option("name", *name, "The hook")->required();
  client_flags(test, cf);
  test->callback(
      [&action, &cf, name] { action = [&cf, name] { return cmd_notify_test(cf, *name); }; });

  auto* remove = notify->add_subcommand("remove", "Remove a hook (its delivery log stays)");
  remove->add_option("name", *name, "The hook")->required();
  client_flags(remove, cf);
  remove->callback(
      [&action, &cf, name] { action = [&cf, name] { return cmd_notify_remove(cf, *name); }; });

  auto limit = std::make_shared<int>(50);
  auto* log =
      notify->add_subcommand("log", "Delivery attempts, newest first: outcome, status, time");
  log->add_option("name", *name, "Only this hook");
  log->add_option("--limit", *limit, "At most this many")->capture_default_str();
  client_flags(log, cf);
  log->callback([&action, &cf, name, limit] {
    action = [&cf, name, limit] { return cmd_notify_log(cf, *name, *limit); };
  });
}

}  // namespace slipway::cli
