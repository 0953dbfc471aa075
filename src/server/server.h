// `slipway server`: the artifact repository, the inventory, the deploy engine and the HTTP and
// WebSocket API, in one asynchronous process.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "common/duration.h"

namespace slipway::server {

struct ServerOptions {
  std::filesystem::path data_dir;
  std::string listen = "127.0.0.1:7700";
  Millis heartbeat{5'000};           // how often agents send heartbeats
  Millis lost_after{15'000};         // an agent silent this long is lost
  Millis node_timeout{15 * 60'000};  // a node with no result for a deploy step this long fails
  uint64_t max_artifact_bytes = 4ULL << 30;
  int keep_releases = 5;
  int worker_threads = 2;  // hashing and archive inspection
};

// Runs until SIGINT or SIGTERM; returns the process exit code.
int run_server(const ServerOptions& opts);

}  // namespace slipway::server
