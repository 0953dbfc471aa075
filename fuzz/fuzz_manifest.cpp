// The slipway.yaml parser: any bytes give a manifest or an error, never a crash; a manifest that
// parses survives the JSON round trip the server uses to store it and send it to agents.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "artifacts/manifest.h"

using namespace slipway;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;  // manifests are read with a 1 MiB cap; keep runs fast
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto m = artifacts::parse_manifest(text);
  if (!m) return 0;
  const auto j = artifacts::manifest_to_json(*m);
  auto back = artifacts::manifest_from_json(j);
  if (!back) std::abort();  // what the parser accepts, the server must be able to send
  if (to_json(artifacts::manifest_to_json(*back)) != to_json(j)) std::abort();
  return 0;
}
