#include "common/strings.h"

#include <cctype>

namespace slipway {

std::vector<std::string> split(std::string_view s, char sep, bool skip_empty) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) end = s.size();
    auto part = s.substr(start, end - start);
    if (!part.empty() || !skip_empty) out.emplace_back(part);
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string tail_bytes(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  return "[... " + std::to_string(s.size() - max_bytes) + " bytes cut ...]\n" +
         std::string(s.substr(s.size() - max_bytes));
}

}  // namespace slipway
