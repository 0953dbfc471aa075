// `slipway agent`: keeps one WebSocket to the server, registers the node, and carries out the
// server's commands through NodeRuntime. Reconnects with exponential backoff and jitter, so it
// rides out server restarts; stops its supervised apps when it is stopped.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/duration.h"

namespace slipway::agent {

struct AgentOptions {
  std::string server;   // http://HOST:PORT or https://HOST:PORT
  std::string token;    // the join token (SECRET or SECRET:sha256:HEX, see net/tls.h)
  std::string ca_cert;  // CA file for an https:// server when the token has no fingerprint
  std::string name;
  std::string env;
  std::vector<std::string> roles;
  std::string zone;
  std::map<std::string, std::string> tags;
  std::filesystem::path root;
  std::string address = "127.0.0.1";  // where its apps listen (SLIPWAY_ADDRESS)
  Millis max_backoff{30'000};
  int job_threads = 4;
  int exec_threads = 4;  // ad-hoc commands (exec) at once; more wait for a free thread
};

// Validates the options (names grammar, URL), then runs until SIGINT/SIGTERM; returns the exit
// code (2 for bad options).
int run_agent(const AgentOptions& opts);

}  // namespace slipway::agent
