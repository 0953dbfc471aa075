// Durations as users write them: "500ms", "30s", "2m", "1h30m", or a plain number of seconds.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway {

using Millis = std::chrono::milliseconds;

Result<Millis> parse_duration(std::string_view text);

// "350ms", "2.4s", "3m05s", "1h02m".
std::string format_duration(Millis d);

}  // namespace slipway
