// The one grammar for the names users give things.
//
// App names, environments, roles, zones, node names and tag keys may become file names (on the
// agent) and appear in URLs and queries, so they are checked once, here, at every entry point:
// ASCII letters, digits, '.', '_' and '-', starting with a letter or digit, at most 63 characters,
// never "." or "..". Versions allow '+' and '!' as well (SemVer build metadata, PEP 440 epochs) and
// up to 128 characters. Tag values allow ':', '@' and '+' as well, may be empty, may start with
// any allowed character, and have up to 128 characters. '/' is refused everywhere.
#pragma once

#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway {

enum class NameKind { app, env, node, role, zone, tag_key, tag_value, version, stage, token };

std::string_view name_kind_label(NameKind kind);  // "app name", "environment", ...

// Ok, or an invalid_argument error that says which rule the value broke.
Status validate_name(NameKind kind, std::string_view value);

}  // namespace slipway
