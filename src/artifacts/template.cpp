#include "artifacts/template.h"

#include <fmt/format.h>

#include "common/strings.h"

namespace slipway {

namespace {

constexpr size_t kMaxKey = 128;

bool is_name(std::string_view k) {
  if (k.empty() || k.size() > kMaxKey) return false;
  for (size_t i = 0; i < k.size(); ++i) {
    const char c = k[i];
    const bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

Result<std::string> render_template(std::string_view text,
                                    const std::map<std::string, std::string>& vars) {
  if (text.size() > kMaxTemplateInput) {
    return err(Errc::too_large, fmt::format("the template is {} bytes; at most {} are rendered",
                                            text.size(), kMaxTemplateInput));
  }
  std::string out;
  out.reserve(text.size());
  size_t line = 1;
  size_t line_start = 0;
  auto fail = [&](size_t at, std::string what) {
    return err(Errc::invalid_argument,
               fmt::format("line {}, column {}: {}", line, at - line_start + 1, what));
  };
  auto append = [&](std::string_view s) -> bool {
    if (out.size() + s.size() > kMaxTemplateOutput) return false;
    out.append(s);
    return true;
  };
  const Error too_large = err(
      Errc::too_large, fmt::format("the rendered template exceeds {} bytes", kMaxTemplateOutput));
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    const size_t stop = open == std::string_view::npos ? text.size() : open;
    // Copy the plain run, counting its lines.
    for (size_t j = i; j < stop; ++j) {
      if (text[j] == '\n') {
        ++line;
        line_start = j + 1;
      }
    }
    if (!append(text.substr(i, stop - i))) return too_large;
    if (open == std::string_view::npos) break;
    if (text.substr(open, 4) == "{{{{") {
      if (!append("{{")) return too_large;
      i = open + 4;
      continue;
    }
    const size_t body = open + 2;
    const size_t close = text.find("}}", body);
    const size_t eol = text.find('\n', body);
    if (close == std::string_view::npos || (eol != std::string_view::npos && eol < close)) {
      return fail(open,
                  "malformed tag: `{{` without `}}` on the same line (write `{{{{` for a "
                  "literal `{{`)");
    }
    const std::string_view key = trim_blanks(text.substr(body, close - body));
    if (!is_name(key)) {
      return fail(open, fmt::format("malformed tag: '{}' is not a variable name "
                                    "([A-Za-z_][A-Za-z0-9_]*, at most {} characters)",
                                    excerpt(text.substr(body, close - body), 40), kMaxKey));
    }
    const auto it = vars.find(std::string(key));
    if (it == vars.end()) return fail(open, fmt::format("unknown key '{}'", key));
    if (!append(it->second)) return too_large;
    i = close + 2;
  }
  return out;
}

}  // namespace slipway
