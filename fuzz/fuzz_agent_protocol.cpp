// The agent protocol decoders, both directions (what the server reads from agents, what agents
// read from the server): any text decodes or is refused; what decodes re-encodes to a message
// that decodes to the same encoding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/agent_protocol.h"

using namespace slipway::protocol;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 256 * 1024) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto a = decode_agent_message(text)) {
    const std::string once = encode(*a);
    auto b = decode_agent_message(once);
    if (!b || encode(*b) != once) std::abort();
  }
  if (auto s = decode_server_message(text)) {
    const std::string once = encode(*s);
    auto b = decode_server_message(once);
    if (!b || encode(*b) != once) std::abort();
  }
  return 0;
}
