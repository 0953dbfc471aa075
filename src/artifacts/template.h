// The template renderer of config/*.tmpl files in a release (the agent renders them at install).
//
// Syntax: `{{ KEY }}` is replaced by the value of KEY (spaces or tabs around KEY are optional;
// KEY is an environment-variable name, [A-Za-z_][A-Za-z0-9_]*, at most 128 characters).
// `{{{{` is a literal `{{`. Everything else is copied as it is, including single braces and `}}`.
// A tag ends on the same line it starts on.
//
// Errors (invalid_argument, "line L, column C: ..." with 1-based positions of the tag's `{{`):
// a key not in `vars`, a malformed tag (an empty or invalid name, an unclosed tag). Limits:
// text up to kMaxTemplateInput bytes, output up to kMaxTemplateOutput bytes (too_large).
// Error messages never hold a value from `vars`.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway {

inline constexpr size_t kMaxTemplateInput = 1 << 20;
inline constexpr size_t kMaxTemplateOutput = 4 << 20;

Result<std::string> render_template(std::string_view text,
                                    const std::map<std::string, std::string>& vars);

}  // namespace slipway
