// Logging: spdlog, one process-wide logger writing to standard error.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace slipway {

// level: "debug", "info", "warn", "error"; `name` prefixes each line (e.g. "server", "agent web-1").
void init_logging(std::string_view name, std::string_view level);

}  // namespace slipway
