#include "cli/output.h"

#include <algorithm>
#include <cstdlib>
#include <ostream>

#include <fmt/format.h>
#include <unistd.h>

#include "common/strings.h"

namespace slipway::cli {

bool stdout_is_tty() {
  return ::isatty(STDOUT_FILENO) == 1;
}

bool use_color() {
  static const bool on = [] {
    const char* term = std::getenv("TERM");
    return stdout_is_tty() && std::getenv("NO_COLOR") == nullptr && term != nullptr &&
           std::string_view(term) != "dumb";
  }();
  return on;
}

std::string paint(const std::string& s, Color c) {
  if (!use_color() || c == Color::none) return s;
  const char* code = "";
  switch (c) {
    case Color::green:
      code = "32";
      break;
    case Color::red:
      code = "31";
      break;
    case Color::yellow:
      code = "33";
      break;
    case Color::dim:
      code = "2";
      break;
    case Color::bold:
      code = "1";
      break;
    case Color::cyan:
      code = "36";
      break;
    case Color::none:
      break;
  }
  return fmt::format("\033[{}m{}\033[0m", code, s);
}

size_t display_width(const std::string& s) {
  size_t w = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x1b) {  // skip an ANSI escape: ESC [ ... letter
      while (i < s.size() && !std::isalpha(static_cast<unsigned char>(s[i])))
        ++i;
      continue;
    }
    if ((c & 0xC0) != 0x80) ++w;  // count UTF-8 lead bytes only
  }
  return w;
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> width(headers_.size(), 0);
  for (size_t i = 0; i < headers_.size(); ++i)
    width[i] = display_width(headers_[i]);
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], display_width(r[i]));
  }
  auto line = [&](const std::vector<std::string>& cells, bool header) {
    std::string s;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < cells.size() ? cells[i] : "";
      const bool last = i + 1 == width.size();
      s += header ? paint(cell, Color::bold) : cell;
      if (!last) s += std::string(width[i] - display_width(cell) + 2, ' ');
    }
    while (!s.empty() && s.back() == ' ')
      s.pop_back();
    out << s << '\n';
  };
  line(headers_, true);
  for (const auto& r : rows_)
    line(r, false);
}

std::string actor_cell(std::string_view actor, std::string_view claimed_user) {
  if (claimed_user.empty() || claimed_user == actor) return std::string(actor);
  return fmt::format("{} (claims {})", actor, claimed_user);
}

std::string human_bytes(uint64_t n) {
  if (n < 1024) return fmt::format("{} B", n);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n) / 1024;
  int u = 0;
  while (v >= 1024 && u < 3) {
    v /= 1024;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string indent_lines(const std::string& text, int indent, size_t max_lines) {
  auto lines = split(text, '\n', true);
  std::string out;
  const size_t start = lines.size() > max_lines ? lines.size() - max_lines : 0;
  if (start > 0) out += std::string(indent, ' ') + fmt::format("[... {} more lines]\n", start);
  for (size_t i = start; i < lines.size(); ++i)
    out += std::string(indent, ' ') + lines[i] + "\n";
  return out;
}

}  // namespace slipway::cli
