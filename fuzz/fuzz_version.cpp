// The version parsers and comparator: no crash on any input, and compare_versions is a
// consistent comparison (reflexive, antisymmetric) on the two halves of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "artifacts/version.h"

using namespace slipway::artifacts;

namespace {
int sign(int v) {
  return (v > 0) - (v < 0);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // "a\nb\nc": versions to compare and sort.
  std::vector<std::string> vs;
  size_t start = 0;
  while (start <= text.size() && vs.size() < 16) {
    const size_t nl = text.find('\n', start);
    const size_t end = nl == std::string_view::npos ? text.size() : nl;
    vs.emplace_back(text.substr(start, end - start));
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }
  for (const auto& v : vs) {
    (void)is_semver(v);
    (void)is_pep440(v);
    if (compare_versions(v, v) != 0) std::abort();
  }
  for (size_t i = 0; i + 1 < vs.size(); ++i) {
    if (sign(compare_versions(vs[i], vs[i + 1])) != -sign(compare_versions(vs[i + 1], vs[i]))) {
      std::abort();
    }
  }
  auto sorted = vs;
  sort_versions(sorted);
  auto reversed = std::vector<std::string>(vs.rbegin(), vs.rend());
  sort_versions(reversed);
  if (sorted != reversed) std::abort();  // the order does not depend on the input order
  const auto order = version_order(vs);
  if (order.size() != vs.size()) std::abort();
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] >= vs.size() || vs[order[i]] != sorted[i]) std::abort();
  }
  return 0;
}
