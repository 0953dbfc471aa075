// Delivery metrics (DORA's four) per app and environment, from the deploy history.
#include <charconv>
#include <map>

#include <fmt/format.h>

#include "common/names.h"
#include "engine/delivery_metrics.h"
#include "server/context.h"

namespace slipway::server {

namespace {

constexpr int kMaxDays = 366;
constexpr int kMaxRecords = 100'000;

json::value seconds_or_null(const std::optional<double>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}

// The finished deploys of the window (app and env, when given) with the push time of each
// version, on the database thread.
Result<std::vector<engine::DeliveryRecord>> load_records(store::Store& s, const std::string& app,
                                                         const std::string& env, TimeMs since) {
  store::DeployFilter f;
  f.app = app;
  f.env = env;
  f.since_ms = since;
  f.limit = kMaxRecords;
  f.with_nodes = false;
  auto deploys = s.list_deploys(f);
  if (!deploys) return deploys.error();
  std::map<std::string, std::map<std::string, TimeMs>> pushed;  // app -> version -> time
  std::vector<engine::DeliveryRecord> out;
  out.reserve(deploys->size());
  for (const auto& d : *deploys) {
    auto [it, fresh] = pushed.try_emplace(d.app);
    if (fresh) {
      auto list = s.list_artifacts(d.app);
      if (!list) return list.error();
      for (const auto& a : *list)
        it->second[a.version] = a.created_at;
    }
    const auto v = it->second.find(d.version);
    out.push_back(engine::DeliveryRecord{d.kind, d.state, d.app, d.env, d.version, d.created_at,
                                         d.finished_at, v == it->second.end() ? 0 : v->second});
  }
  return out;
}

}  // namespace

void register_metrics_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;
  ctx.router.add(
      "GET", "/api/v1/metrics/delivery", Access::viewer, "metrics.delivery",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string app = req.query_or("app");
        const std::string env = req.query_or("env");
        if (!app.empty()) {
          if (auto st = validate_name(NameKind::app, app); !st)
            co_return Response::error(st.error());
        }
        if (!env.empty()) {
          if (auto st = validate_name(NameKind::env, env); !st)
            co_return Response::error(st.error());
        }
        int days = 30;
        if (const auto text = req.query_or("days"); !text.empty()) {
          const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), days);
          if (ec != std::errc() || p != text.data() + text.size() || days < 1 || days > kMaxDays) {
            co_return Response::error(
                err(Errc::invalid_argument,
                    fmt::format("days must be a whole number from 1 to {}, not '{}'", kMaxDays,
                                text.substr(0, 32))));
          }
        }
        if (!app.empty() || !env.empty()) {
          if (auto st = authorize(req, env, app); !st) co_return Response::error(st.error());
        }
        const TimeMs now = now_ms();
        // A failed change of the window may be restored after it: everything since its start.
        const TimeMs since = engine::delivery_window_start(now, days);
        auto job = [app, env, since](store::Store& s) { return load_records(s, app, env, since); };
        auto records = co_await c->db_call(job);
        if (!records) co_return Response::error(records.error());
        std::erase_if(*records, [&req](const engine::DeliveryRecord& r) {
          return !in_scope(req.principal, r.env, r.app);
        });
        // Deploys still running in the engine are not finished: the store's copy says running.
        const auto m = engine::delivery_metrics(std::move(*records), now, days);
        json::array series;
        for (const auto& d : m.series) {
          series.push_back(
              json::object{{"day", d.day},
                           {"deploys", d.deploys},
                           {"failures", d.failures},
                           {"lead_time_seconds_median", seconds_or_null(d.lead_time_s)},
                           {"time_to_restore_seconds_median", seconds_or_null(d.restore_s)}});
        }
        json::object summary{{"deploys", m.deploys},
                             {"failures", m.failures},
                             {"unrestored_failures", m.unrestored},
                             {"deploy_frequency_per_day", m.deploys_per_day},
                             {"lead_time_seconds_median", seconds_or_null(m.lead_time_s)},
                             {"change_failure_rate", seconds_or_null(m.change_failure_rate)},
                             {"time_to_restore_seconds_median", seconds_or_null(m.restore_s)}};
        co_return Response::json(
            200, json::object{{"app", app.empty() ? json::value(nullptr) : json::value(app)},
                              {"env", env.empty() ? json::value(nullptr) : json::value(env)},
                              {"days", m.days},
                              {"from", format_time(m.from)},
                              {"to", format_time(m.to)},
                              {"summary", std::move(summary)},
                              {"series", std::move(series)}});
      });
}

}  // namespace slipway::server
