#include "server/watchers.h"

#include <spdlog/spdlog.h>

#include "net/ws_connection.h"
#include "server/context.h"

namespace slipway::server {

namespace {
constexpr size_t kMaxLoggedEvents = 20'000;
constexpr TimeMs kKeepFinishedMs = 10 * 60'000;

// How much of the deploy goes with an event: every node at the start and the end, the summary
// (counts, which walk every node) when a node or a batch finishes, and only the id with a step,
// the most frequent event, whose counts cannot have changed.
enum class Detail { id, summary, full };

Detail detail_for(const std::string& kind) {
  if (kind == "deploy.started" || kind == "deploy.finished") return Detail::full;
  if (kind == "node.step") return Detail::id;
  return Detail::summary;
}

std::string encode(const engine::DeployEvent& e, const engine::Deploy& d, Detail detail) {
  const json::value deploy = detail == Detail::id ? json::value(json::object{{"id", d.id}})
                                                  : engine::to_json(d, detail == Detail::full);
  return to_json(json::object{{"event", engine::to_json(e)}, {"deploy", deploy}});
}
// Events messages[from, to) as one WebSocket message: the event itself, or an array of them.
std::string batch_of(const std::vector<std::string>& messages, size_t from, size_t to) {
  if (to - from == 1) return messages[from];
  size_t size = 2;
  for (size_t i = from; i < to; ++i)
    size += messages[i].size() + 1;
  std::string out;
  out.reserve(size);
  out += '[';
  for (size_t i = from; i < to; ++i) {
    if (i > from) out += ',';
    out += messages[i];
  }
  out += ']';
  return out;
}

// A replay in messages of at most this many bytes.
constexpr size_t kMaxBatchBytes = 1 << 20;

void send_in_batches(WsConnection& conn, const std::vector<std::string>& messages, size_t from,
                     size_t to) {
  while (from < to) {
    size_t end = from;
    size_t bytes = 0;
    while (end < to && (end == from || bytes + messages[end].size() < kMaxBatchBytes))
      bytes += messages[end++].size();
    conn.send(batch_of(messages, from, end));
    from = end;
  }
}

}  // namespace

Watchers::Watchers(ServerContext& ctx) : ctx_(ctx) {}

void Watchers::on_event(const engine::DeployEvent& e, const engine::Deploy& d) {
  const bool final = e.kind == "deploy.finished";
  Log& log = logs_[e.deploy];
  std::string msg = encode(e, d, detail_for(e.kind));
  if (!log.subscribers.empty()) log.pending.push_back(msg);
  if (log.messages.size() < kMaxLoggedEvents || final) log.messages.push_back(std::move(msg));
  if (final) {
    log.finished = true;
    log.finished_at = e.at;
  }
  if (!flush_posted_) {
    flush_posted_ = true;
    asio::post(ctx_.ioc, [this] { flush(); });
  }
}

void Watchers::flush() {
  flush_posted_ = false;
  for (auto& [id, log] : logs_) {
    if (!log.pending.empty()) {
      for (auto& w : log.subscribers) {
        if (auto conn = w.lock()) send_in_batches(*conn, log.pending, 0, log.pending.size());
      }
      log.pending.clear();
    }
    if (log.finished && !log.subscribers.empty()) {
      for (auto& w : log.subscribers) {
        if (auto conn = w.lock()) conn->close("deploy finished");
      }
      log.subscribers.clear();
    }
  }
}

asio::awaitable<void> Watchers::serve(std::shared_ptr<WsConnection> conn, engine::DeployId id) {
  auto it = logs_.find(id);
  if (it == logs_.end()) {
    // Not run by this server process (or long finished): the stored record is the whole story.
    auto job0 = [id](store::Store& s) { return s.get_deploy(id); };
    auto d = co_await ctx_.db_call(job0);
    if (!d || !*d) {
      conn->send(to_json(json::object{
          {"error", json::object{{"code", "not_found"},
                                 {"message", fmt::format("there is no deploy #{}", id)}}}}));
      conn->close("not found");
      co_return;
    }
    engine::DeployEvent e;
    e.deploy = id;
    e.kind = engine::is_terminal((*d)->state) ? "deploy.finished" : "deploy.unknown";
    e.status = std::string(engine::deploy_state_name((*d)->state));
    e.message = (*d)->reason;
    e.at = (*d)->finished_at;
    conn->send(encode(e, **d, Detail::full));
    conn->close("deploy finished");
    co_return;
  }
  // The others get what is buffered for them first, so that the log below is all there is.
  flush();
  send_in_batches(*conn, it->second.messages, 0, it->second.messages.size());
  if (it->second.finished) {
    conn->close("deploy finished");
    co_return;
  }
  it->second.subscribers.push_back(conn);
  // Wait for the peer to go away (or for the close after deploy.finished).
  while (conn->is_open()) {
    auto r = co_await conn->read();
    if (!r) break;
  }
}

void Watchers::expire() {
  const TimeMs now = now_ms();
  for (auto it = logs_.begin(); it != logs_.end();) {
    if (it->second.finished && now - it->second.finished_at > kKeepFinishedMs) {
      it = logs_.erase(it);
    } else {
      auto& subs = it->second.subscribers;
      std::erase_if(subs, [](const auto& w) { return w.expired(); });
      ++it;
    }
  }
}

}  // namespace slipway::server
