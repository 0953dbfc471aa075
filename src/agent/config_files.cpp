#include "agent/config_files.h"

#include <algorithm>

#include <fmt/format.h>

#include "artifacts/template.h"
#include "common/fs.h"

namespace slipway::agent {

Result<std::vector<std::string>> render_release_templates(
    const std::filesystem::path& dir, const std::map<std::string, std::string>& vars) {
  namespace fs = std::filesystem;
  std::vector<std::string> written;
  const fs::path config = dir / "config";
  std::error_code ec;
  const auto st = fs::symlink_status(config, ec);
  if (ec || st.type() == fs::file_type::not_found) return written;
  if (st.type() == fs::file_type::symlink) {
    return err(Errc::invalid_argument,
               "config/ of the release is a symbolic link: templates are not rendered through it");
  }
  if (st.type() != fs::file_type::directory) return written;
  std::vector<std::string> names;
  for (fs::directory_iterator it(config, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= 5 || name.substr(name.size() - 5) != ".tmpl") continue;
    const auto ts = it->symlink_status(ec);
    if (ec) break;
    if (ts.type() == fs::file_type::symlink) {
      return err(Errc::invalid_argument,
                 fmt::format("config/{} is a symbolic link: a template must be a file", name));
    }
    if (ts.type() != fs::file_type::regular) continue;
    names.push_back(name);
    if (names.size() > kMaxTemplates) {
      return err(Errc::too_large,
                 fmt::format("the release has more than {} templates in config/", kMaxTemplates));
    }
  }
  if (ec) return err(Errc::io, fmt::format("cannot list config/: {}", ec.message()));
  std::sort(names.begin(), names.end());
  std::vector<std::pair<fs::path, std::string>> out;
  for (const auto& name : names) {
    auto text = read_file(config / name, kMaxTemplateInput);
    if (!text)
      return err(text.error().code, fmt::format("config/{}: {}", name, text.error().message));
    auto rendered = render_template(*text, vars);
    if (!rendered) {
      return err(rendered.error().code,
                 fmt::format("template config/{}: {}", name, rendered.error().message));
    }
    out.emplace_back(config / name.substr(0, name.size() - 5), std::move(*rendered));
  }
  for (const auto& [path, content] : out) {
    if (auto s = write_file_atomic(path, content, 0600); !s) {
      return err(s.error().code, fmt::format("cannot write config/{}: {}", path.filename().string(),
                                             s.error().message));
    }
    written.push_back("config/" + path.filename().string());
  }
  return written;
}

}  // namespace slipway::agent
