// The selector parser: any text gives a selector or an error; a selector's canonical text parses
// to the same selector.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "inventory/selector.h"

using namespace slipway::inventory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto s = Selector::parse(text);
  if (!s) return 0;
  const auto canonical = s->to_string();
  auto again = Selector::parse(canonical);
  if (!again) std::abort();
  if (again->to_string() != canonical) std::abort();
  Node n;
  n.name = "web-1";
  n.env = "production";
  n.roles = {"web", "api"};
  n.zone = "eu-1a";
  n.tags = {{"canary", ""}, {"team", "payments"}};
  if (s->matches(n) != again->matches(n)) std::abort();
  return 0;
}
