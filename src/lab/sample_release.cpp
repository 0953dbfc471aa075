#include "lab/sample_release.h"

#include <cstdlib>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

#include "artifacts/archive.h"
#include "common/fs.h"
#include "common/names.h"
#include "common/strings.h"
#include "lab/lab.h"

namespace slipway::lab {

namespace {

constexpr std::string_view kSampleName = "slipway-sample-service";
constexpr size_t kMaxBinaryBytes = 512ULL << 20;

bool is_executable_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// The message on one line, so that it cannot break the files it goes into.
std::string one_line(std::string_view s) {
  std::string out;
  for (char c : s)
    out += (c == '\n' || c == '\r') ? ' ' : c;
  return std::string(trim(out));
}

std::string manifest_text(const SampleRelease& r) {
  // Durations in plain milliseconds: the one unit every duration parser reads back exactly.
  return fmt::format(
             "# {app} {version}: the Slipway sample web service.\n"
             "start: ./bin/server --address ${{SLIPWAY_ADDRESS}} --port ${{SLIPWAY_PORT}}"
             " --version ${{SLIPWAY_VERSION}} --app ${{SLIPWAY_APP}}{unhealthy}\n"
             "hooks:\n"
             "  after_install: {after_install}\n"
             "health:\n"
             "  http: http://${{SLIPWAY_ADDRESS}}:${{SLIPWAY_PORT}}/health\n"
             "  timeout: {timeout}ms\n"
             "  healthy_for: {healthy_for}ms\n"
             "  interval: {interval}ms\n",
             fmt::arg("app", r.app), fmt::arg("version", r.version),
             fmt::arg("unhealthy", r.healthy ? "" : " --unhealthy"),
             fmt::arg("timeout", r.health_timeout.count()),
             fmt::arg("healthy_for", r.healthy_for.count()),
             fmt::arg("interval", r.interval.count()),
             fmt::arg("after_install", one_line(r.after_install))) +
         r.extra_manifest;
}

}  // namespace

Result<fs::path> build_sample_release(const SampleRelease& r) {
  if (auto s = validate_name(NameKind::app, r.app); !s) return s.error();
  if (auto s = validate_name(NameKind::version, r.version); !s) return s.error();
  if (r.out_dir.empty()) return err(Errc::invalid_argument, "the output directory is empty");
  if (r.health_timeout.count() <= 0 || r.healthy_for.count() < 0 || r.interval.count() <= 0) {
    return err(Errc::invalid_argument, "health timings must be positive (healthy_for may be zero)");
  }
  if (r.sample_binary.empty()) {
    return err(Errc::invalid_argument, "no sample binary was given");
  }
  if (!is_executable_file(r.sample_binary)) {
    return err(Errc::not_found, fmt::format("the sample binary {} does not exist or is not "
                                            "executable",
                                            r.sample_binary.string()));
  }
  auto binary = read_file(r.sample_binary, kMaxBinaryBytes);
  if (!binary) return binary.error();
  if (auto s = ensure_dir(r.out_dir); !s) return s.error();

  const std::string message = one_line(r.message);
  std::vector<artifacts::ArchiveEntry> entries;
  auto dir = [&](std::string path) {
    artifacts::ArchiveEntry e;
    e.path = std::move(path);
    e.type = artifacts::EntryType::directory;
    e.mode = 0755;
    entries.push_back(std::move(e));
  };
  auto file = [&](std::string path, std::string content, unsigned mode) {
    artifacts::ArchiveEntry e;
    e.path = std::move(path);
    e.content = std::move(content);
    e.mode = mode;
    entries.push_back(std::move(e));
  };
  file("slipway.yaml", manifest_text(r), 0644);
  file("VERSION", r.version + "\n", 0644);
  file("CHANGELOG", message.empty() ? r.version + "\n" : r.version + ": " + message + "\n", 0644);
  dir("bin");
  file("bin/server", std::move(*binary), 0755);
  dir("config");
  file("config/app.conf",
       fmt::format("# {} {}\napp = {}\nversion = {}\nmessage = {}\n", r.app, r.version, r.app,
                   r.version, message),
       0644);
  for (const auto& [path, content] : r.extra_files)
    file(path, content, 0644);

  const fs::path out = r.out_dir / fmt::format("{}-{}.tar.gz", r.app, r.version);
  if (auto s = artifacts::write_tar_gz(out, entries); !s) return s.error();
  return out;
}

Result<fs::path> find_sample_binary() {
  std::vector<fs::path> looked;
  if (const char* env = std::getenv("SLIPWAY_SAMPLE_SERVICE"); env != nullptr && *env != '\0') {
    if (is_executable_file(env)) return fs::path(env);
    return err(Errc::not_found,
               fmt::format("SLIPWAY_SAMPLE_SERVICE is {}, which is not an executable file", env));
  }
  if (auto self = self_executable()) {
    const fs::path here = self->parent_path();
    for (const fs::path& p : {here / kSampleName, here.parent_path() / "bin" / kSampleName}) {
      if (is_executable_file(p)) return p.lexically_normal();
      looked.push_back(p.lexically_normal());
    }
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    for (const auto& d : split(path, ':')) {
      const fs::path p = fs::path(d) / kSampleName;
      if (is_executable_file(p)) return p;
    }
    looked.emplace_back("$PATH");
  }
  std::vector<std::string> names;
  for (const auto& p : looked)
    names.push_back(p.string());
  return err(Errc::not_found,
             fmt::format("cannot find {} (looked in {}); build it with `ninja {}` or set "
                         "SLIPWAY_SAMPLE_SERVICE to its path",
                         kSampleName, join(names, ", "), kSampleName));
}

}  // namespace slipway::lab
