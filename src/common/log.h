// Logging: spdlog, one process-wide logger writing to standard error.
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace slipway {

// level: "debug", "info", "warn", "error"; `name` prefixes each line (e.g. "server", "agent
// web-1").
void init_logging(std::string_view name, std::string_view level);

}  // namespace slipway
