// Helpers shared by the engine's records (deploy.cpp, run.cpp): enum <-> name tables and times
// read back from their JSON text.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/json.h"

namespace slipway::engine::detail {

// The enum value whose name (its index in `names`) is `s`.
template <class E, size_t N>
std::optional<E> from_name(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i) {
    if (names[i] == s) return static_cast<E>(i);
  }
  return std::nullopt;
}

// A time field as format_time writes it; 0 when absent, empty or not a time.
inline TimeMs time_field(JsonReader& r, std::string_view key) {
  auto s = r.opt_str(key);
  if (!s || s->empty()) return 0;
  const TimeMs t = parse_time(*s);
  return t < 0 ? 0 : t;
}

}  // namespace slipway::engine::detail
