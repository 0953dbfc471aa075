#include "common/names.h"

#include <fmt/format.h>

namespace slipway {

std::string_view name_kind_label(NameKind kind) {
  switch (kind) {
    case NameKind::app:
      return "app name";
    case NameKind::env:
      return "environment";
    case NameKind::node:
      return "node name";
    case NameKind::role:
      return "role";
    case NameKind::zone:
      return "zone";
    case NameKind::tag_key:
      return "tag key";
    case NameKind::tag_value:
      return "tag value";
    case NameKind::version:
      return "version";
    case NameKind::stage:
      return "stage name";
    case NameKind::token:
      return "token name";
  }
  return "name";
}

namespace {
bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string printable(std::string_view v) {
  std::string out;
  for (char c : v.substr(0, 80)) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  if (v.size() > 80) out += "...";
  return out;
}
}  // namespace

Status validate_name(NameKind kind, std::string_view value) {
  const auto label = name_kind_label(kind);
  const size_t max_len = kind == NameKind::version || kind == NameKind::tag_value ? 128 : 63;
  if (value.empty()) {
    if (kind == NameKind::tag_value) return {};
    return err(Errc::invalid_argument, fmt::format("{} must not be empty", label));
  }
  if (value.size() > max_len) {
    return err(Errc::invalid_argument,
               fmt::format("{} '{}' is too long ({} characters, at most {})", label,
                           printable(value), value.size(), max_len));
  }
  if (value == "." || value == "..") {
    return err(Errc::invalid_argument, fmt::format("{} must not be '{}'", label, value));
  }
  if (kind != NameKind::tag_value && !is_alnum(value.front())) {
    return err(Errc::invalid_argument,
               fmt::format("{} '{}' must start with a letter or a digit", label, printable(value)));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    bool ok = is_alnum(c) || c == '.' || c == '_' || c == '-';
    if (kind == NameKind::version) ok = ok || c == '+' || c == '!';
    if (kind == NameKind::tag_value) ok = ok || c == ':' || c == '@' || c == '+';
    if (!ok) {
      return err(Errc::invalid_argument,
                 fmt::format("{} '{}' has a character that is not allowed at position {} (allowed: "
                             "letters, digits, '.', '_', '-'{})",
                             label, printable(value), i + 1,
                             kind == NameKind::version     ? ", '+', '!'"
                             : kind == NameKind::tag_value ? ", ':', '@', '+'"
                                                           : ""));
    }
  }
  if (kind == NameKind::version && value.find("..") != std::string_view::npos) {
    return err(Errc::invalid_argument,
               fmt::format("{} '{}' must not contain '..'", label, printable(value)));
  }
  return {};
}

}  // namespace slipway
