// How the CLI prints: aligned tables, sizes and durations for humans, colour only on a terminal
// (and never with NO_COLOR set).
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace slipway::cli {

bool stdout_is_tty();
bool use_color();

enum class Color { none, green, red, yellow, dim, bold, cyan };
std::string paint(const std::string& s, Color c);

// Columns sized to their widest cell (display width, UTF-8 aware).
class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

std::string human_bytes(uint64_t n);
// Who did something, for a table: the actor (a token's name), and the user the client claimed to
// be when it named another one: "ci (claims alice@laptop)".
std::string actor_cell(std::string_view actor, std::string_view claimed_user);
// Display width of UTF-8 text without ANSI escapes.
size_t display_width(const std::string& s);
// Indents every line of `text` by `indent` spaces, keeping at most `max_lines` (the last ones).
std::string indent_lines(const std::string& text, int indent, size_t max_lines = 12);

}  // namespace slipway::cli
