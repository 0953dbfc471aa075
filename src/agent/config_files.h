// The files an install writes into a release from the per-environment config: the rendered
// templates (config/*.tmpl -> config/*, mode 0600) and the environment the app was given
// (kept so that a restarted agent starts the app as it was).
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/error.h"

namespace slipway::agent {

inline constexpr size_t kMaxTemplates = 256;

// Renders every regular file config/NAME.tmpl of release directory `dir` with `vars`
// (artifacts/template.h) and writes each next to it as config/NAME, mode 0600, replacing what was
// there. All or nothing: every template is rendered before any file is written. Symbolic links
// (the config directory or a template) are refused. Returns the paths written, relative to `dir`.
// Errors name the template and the line and column, never a value.
Result<std::vector<std::string>> render_release_templates(
    const std::filesystem::path& dir, const std::map<std::string, std::string>& vars);

}  // namespace slipway::agent
