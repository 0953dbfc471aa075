// Live progress of deploys: the engine's events, kept per deploy while it runs (and a while after)
// and pushed to every WebSocket subscriber of GET /api/v1/deploys/{id}/watch. A subscriber that
// arrives late first gets the events it missed, so a client never sees a partial story.
//
// An event to a subscriber: {"event": {...}, "deploy": {...}}. deploy.started and deploy.finished
// carry the full deploy (every node), node.step only {"id"}, the other events the summary; the
// server closes the stream after deploy.finished. Events that come in a burst (a wave of a
// 10,000-node deploy, the replay for a late subscriber) go out together as one message holding a
// JSON array of them, once the I/O thread has run every handler that was ready: one WebSocket
// write per burst instead of one per event.
#pragma once

#include <map>
#include <memory>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "engine/interfaces.h"

namespace slipway::net {
class WsConnection;
}

namespace slipway::server {

using net::WsConnection;

class ServerContext;

class Watchers final : public engine::EventSink {
 public:
  explicit Watchers(ServerContext& ctx);

  void on_event(const engine::DeployEvent& e, const engine::Deploy& d) override;
  // Sends what was buffered to the subscribers now.
  void flush();
  boost::asio::awaitable<void> serve(std::shared_ptr<WsConnection> conn, engine::DeployId id);
  // Drops the event logs of deploys that finished more than a few minutes ago.
  void expire();

 private:
  struct Log {
    std::vector<std::string>
        messages;  // encoded, in order (the first kMaxLoggedEvents, and the last)
    std::vector<std::string> pending;  // for the subscribers, at the next flush
    bool finished = false;
    TimeMs finished_at = 0;
    std::vector<std::weak_ptr<WsConnection>> subscribers;
  };

  ServerContext& ctx_;
  std::map<engine::DeployId, Log> logs_;
  bool flush_posted_ = false;
};

}  // namespace slipway::server
