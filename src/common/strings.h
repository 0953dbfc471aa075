// Small string helpers that the standard library lacks.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace slipway {

std::vector<std::string> split(std::string_view s, char sep, bool skip_empty = true);
std::string join(const std::vector<std::string>& parts, std::string_view sep);
std::string_view trim(std::string_view s);
std::string to_lower(std::string_view s);
// Text from outside (a key, a value, a path) to quote in an error message: its first `max` bytes,
// "..." after when cut, every byte that is not printable ASCII shown as '?'.
std::string excerpt(std::string_view s, size_t max = 64);
// The last `max_bytes` of `s` (fewer when that would split a UTF-8 character), prefixed with a
// note when cut (for captured process output).
std::string tail_bytes(std::string_view s, size_t max_bytes);
// `s` with every ill-formed UTF-8 sequence (a stray byte, a truncated or overlong sequence, a
// surrogate) replaced by U+FFFD, one per maximal invalid subpart; valid text is unchanged. For
// bytes that must travel as JSON text (process output).
std::string valid_utf8(std::string_view s);
// Replaces ${NAME} by vars(NAME) where the lookup succeeds; leaves other text untouched.
template <class Lookup>
std::string expand_vars(std::string_view s, Lookup&& lookup) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      const size_t end = s.find('}', i + 2);
      if (end != std::string_view::npos) {
        const std::string name(s.substr(i + 2, end - i - 2));
        if (const auto* v = lookup(name)) {
          out += *v;
          i = end + 1;
          continue;
        }
      }
    }
    out += s[i++];
  }
  return out;
}

}  // namespace slipway
