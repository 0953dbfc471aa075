// The config template renderer (config/*.tmpl): any text and variables render or are refused,
// never crash; rendering is deterministic.
//
// Input: "NAME=VALUE\n..." lines up to an empty line, then the template text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>

#include "artifacts/template.h"

namespace slipway::artifacts {}  // namespace slipway::artifacts
using namespace slipway;
using namespace slipway::artifacts;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 64 * 1024) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  std::map<std::string, std::string> vars;
  while (!rest.empty()) {
    const size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty()) break;
    const size_t eq = line.find('=');
    vars[std::string(line.substr(0, eq))] =
        eq == std::string_view::npos ? std::string() : std::string(line.substr(eq + 1));
  }
  auto a = render_template(rest, vars);
  auto b = render_template(rest, vars);
  if (a.has_value() != b.has_value()) std::abort();
  if (a && *a != *b) std::abort();
  return 0;
}
