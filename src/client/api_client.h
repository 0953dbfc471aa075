// The C++ client of Slipway's HTTP API, used by the CLI, the lab and the demo. Blocking calls.
//
// Errors: a server that cannot be reached is Errc::unavailable; an error answer from the server
// becomes an Error with the server's code and message (so the CLI maps it to an exit code in one
// place).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "common/duration.h"
#include "common/error.h"
#include "common/json.h"
#include "engine/deploy.h"

namespace slipway::client {

struct ClientConfig {
  std::string server;  // http://HOST:PORT
  std::string token;
  std::string ca_cert;  // CA file for https://; empty: the system's store
  std::string user;     // sent as X-Slipway-User, recorded as who did it
  Millis timeout{60'000};
};

class ApiClient {
 public:
  explicit ApiClient(ClientConfig cfg);

  Result<json::value> get(const std::string& path);
  Result<json::value> post(const std::string& path, const json::value& body);
  // Any method (PUT, DELETE, ...); a null body sends none.
  Result<json::value> send(const std::string& method, const std::string& path,
                           const json::value& body);
  // Streams the file as the body of a POST to `path`.
  Result<json::value> upload(const std::string& path, const std::filesystem::path& file,
                             const std::string& sha256);

  // Follows a deploy live until it ends. `on_event` sees every event (the `deploy` argument is the
  // summary sent with it). Reconnects when the stream drops, for up to `reconnect_for`.
  // Returns the final deploy record (with nodes).
  Result<engine::Deploy> watch(
      engine::DeployId id,
      const std::function<void(const engine::DeployEvent&, const json::value& deploy)>& on_event,
      Millis reconnect_for = Millis(60'000));

  const ClientConfig& config() const { return cfg_; }

 private:
  Result<json::value> decode(int status, const std::string& body);

  ClientConfig cfg_;
};

// "USER@HOST" of the person running this process.
std::string default_user();

}  // namespace slipway::client
