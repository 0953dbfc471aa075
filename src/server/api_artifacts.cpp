// Artifact repository routes: push, list, show, download (with Range).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "artifacts/archive.h"
#include "artifacts/manifest.h"
#include "artifacts/version.h"
#include "common/crypto.h"
#include "common/fs.h"
#include "common/names.h"
#include "server/context.h"
#include "server/http.h"

namespace slipway::server {

namespace {

json::value artifact_json(const store::ArtifactRecord& a, bool with_manifest) {
  json::object o{{"app", a.app},
                 {"version", a.version},
                 {"sha256", a.sha256},
                 {"size", a.size},
                 {"pushed_by", a.pushed_by},
                 {"created_at", format_time(a.created_at)},
                 {"claimed_user", a.claimed_user}};
  if (with_manifest) {
    auto m = parse_json(a.manifest_json, "stored manifest");
    o["manifest"] = m ? *m : json::value(nullptr);
  }
  return o;
}

std::string_view entry_type_name(artifacts::EntryType t) {
  switch (t) {
    case artifacts::EntryType::file:
      return "file";
    case artifacts::EntryType::directory:
      return "directory";
    case artifacts::EntryType::symlink:
      return "symlink";
    case artifacts::EntryType::hardlink:
      return "hardlink";
    default:
      return "special";
  }
}

// At most this many paths in each list of a diff (the counts are always whole).
constexpr size_t kMaxDiffPaths = 2000;

json::value diff_json(const std::string& app, const std::string& from, const std::string& to,
                      const artifacts::ReleaseDiff& d) {
  const auto entry = [](const artifacts::ListedEntry& e) {
    return json::object{{"path", e.path}, {"type", entry_type_name(e.type)}, {"size", e.size}};
  };
  json::array added;
  json::array removed;
  json::array changed;
  for (size_t i = 0; i < d.added.size() && i < kMaxDiffPaths; ++i)
    added.push_back(entry(d.added[i]));
  for (size_t i = 0; i < d.removed.size() && i < kMaxDiffPaths; ++i)
    removed.push_back(entry(d.removed[i]));
  for (size_t i = 0; i < d.changed.size() && i < kMaxDiffPaths; ++i) {
    const auto& [a, b] = d.changed[i];
    std::string what = a.type != b.type                                         ? "type"
                       : a.sha256 != b.sha256 || a.link_target != b.link_target ? "content"
                                                                                : "mode";
    json::object o{{"path", b.path},
                   {"type", entry_type_name(b.type)},
                   {"from_size", a.size},
                   {"to_size", b.size},
                   {"change", std::move(what)}};
    if (a.mode != b.mode) {
      o["from_mode"] = fmt::format("{:04o}", a.mode);
      o["to_mode"] = fmt::format("{:04o}", b.mode);
    }
    changed.push_back(std::move(o));
  }
  return json::object{
      {"app", app},
      {"from", from.empty() ? json::value(nullptr) : json::value(from)},
      {"to", to},
      {"added", std::move(added)},
      {"removed", std::move(removed)},
      {"changed", std::move(changed)},
      {"added_count", d.added.size()},
      {"removed_count", d.removed.size()},
      {"changed_count", d.changed.size()},
      {"unchanged", d.unchanged},
      {"truncated", d.added.size() > kMaxDiffPaths || d.removed.size() > kMaxDiffPaths ||
                        d.changed.size() > kMaxDiffPaths}};
}

Response serve_blob(ServerContext& ctx, const Request& req, const std::string& sha256,
                    const std::string& filename) {
  auto size = ctx.blobs.size_of(sha256);
  if (!size) {
    return Response::error(err(Errc::not_found, fmt::format("no artifact with sha256 {}", sha256)));
  }
  Response r;
  r.content_type = "application/gzip";
  r.headers["etag"] = "\"" + sha256 + "\"";
  r.headers["accept-ranges"] = "bytes";
  r.headers["x-slipway-sha256"] = sha256;
  if (!filename.empty())
    r.headers["content-disposition"] = "attachment; filename=\"" + filename + "\"";
  uint64_t start = 0;
  uint64_t end = *size ? *size - 1 : 0;
  bool unsatisfiable = false;
  auto range = req.headers.find("range");
  const bool ranged =
      range != req.headers.end() && parse_range(range->second, *size, start, end, unsatisfiable);
  if (ranged && unsatisfiable) {
    Response e =
        Response::error(err(Errc::invalid_argument, "the requested range is not satisfiable"));
    e.status = 416;
    e.headers["content-range"] = fmt::format("bytes */{}", *size);
    return e;
  }
  if (ranged) {
    r.status = 206;
    r.headers["content-range"] = fmt::format("bytes {}-{}/{}", start, end, *size);
  }
  r.file =
      Response::FileRange{ctx.blobs.path_of(sha256).string(), start, *size ? end - start + 1 : 0};
  return r;
}

struct Inspected {
  std::string sha256;
  uint64_t size = 0;
  artifacts::Manifest manifest;
};

Result<Inspected> inspect_upload(const std::string& file, const std::string& scratch) {
  Inspected out;
  std::error_code ec;
  out.size = std::filesystem::file_size(file, ec);
  if (ec || out.size == 0) return err(Errc::invalid_argument, "the artifact is empty");
  auto sha = sha256_file(file);
  if (!sha) return sha.error();
  out.sha256 = *sha;
  // Unpack it once here, with the agents' own rules, so that an archive every node would refuse
  // (a hostile entry, a bomb, a damaged stream) fails the push instead of every deploy; the
  // manifest is then read from what was unpacked (one decompression, not two).
  const std::filesystem::path probe = std::filesystem::path(scratch) / ("check-" + random_hex(8));
  auto extracted = artifacts::extract_archive(file, probe);
  if (!extracted) {
    if (extracted.error().code == Errc::too_large) {
      return err(Errc::too_large,
                 "the artifact would not unpack on the nodes: " + extracted.error().message);
    }
    return err(Errc::invalid_argument,
               "the artifact is not a readable .tar.gz archive, or holds an entry the nodes would "
               "refuse: " +
                   extracted.error().message);
  }
  const auto manifest_path = probe / "slipway.yaml";
  Result<std::string> text = err(Errc::not_found, "");
  if (std::filesystem::symlink_status(manifest_path, ec).type() ==
      std::filesystem::file_type::regular) {
    text = read_file(manifest_path, 1 << 20);
  }
  std::filesystem::remove_all(probe, ec);
  if (!text) {
    if (text.error().code == Errc::not_found) {
      return err(
          Errc::invalid_argument,
          "the artifact has no slipway.yaml at its root: every artifact must say how its app "
          "starts (see docs/manifest.md)");
    }
    return err(Errc::invalid_argument, "cannot read slipway.yaml: " + text.error().message);
  }
  auto m = artifacts::parse_manifest(*text);
  if (!m) return m.error();
  out.manifest = std::move(*m);
  return out;
}

Status check_app_version(const std::string& app, const std::string& version) {
  if (auto st = validate_name(NameKind::app, app); !st) return st;
  if (!version.empty()) {
    if (auto st = validate_name(NameKind::version, version); !st) return st;
  }
  return {};
}

// What a push must pass before its body is read: a valid app and version, and a token that may
// push this app (authorize_push).
Status admit_push(Request& req) {
  const std::string app = req.param("app");
  if (auto st = check_app_version(app, req.param("version")); !st) return st;
  req.audit_target = "app=" + app;
  return authorize_push(req.principal, app);
}

}  // namespace

void register_artifact_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;

  // A push is a release decision (a pushed version is deployable everywhere): publishers and
  // deployers valid in every environment, checked before the body is read (admit_push).
  ctx.router.add_upload(
      "POST", "/api/v1/artifacts/{app}/{version}", Access::publisher, "artifact.push", admit_push,
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string app = req.param("app");
        const std::string version = req.param("version");
        if (auto st = admit_push(req); !st) co_return Response::error(st.error());
        const std::string file = req.body_file;
        const std::string scratch = (c->blobs.root() / "tmp").string();
        auto job0 = [file, scratch] { return inspect_upload(file, scratch); };
        auto inspected = co_await c->work_call(job0);
        if (!inspected) co_return Response::error(inspected.error());
        auto expected = req.headers.find("x-slipway-sha256");
        if (expected != req.headers.end() && expected->second != inspected->sha256) {
          co_return Response::error(
              err(Errc::invalid_argument,
                  fmt::format("the upload was damaged: its sha256 is {}, the client computed {}",
                              inspected->sha256, expected->second)));
        }
        auto job1 = [app, version](store::Store& s) { return s.get_artifact(app, version); };
        auto existing = co_await c->db_call(job1);
        if (!existing) co_return Response::error(existing.error());
        if (*existing) {
          const auto& e = **existing;
          if (e.sha256 == inspected->sha256) {
            auto r = Response::json(200, artifact_json(e, false));
            r.headers["x-slipway-status"] = "exists";
            co_return r;
          }
          co_return Response::error(err(
              Errc::conflict,
              fmt::format("{} {} already exists with different content (sha256 {}, pushed by {} at "
                          "{}; this upload has sha256 {}). Versions are immutable: push it as a "
                          "new version",
                          app, version, e.sha256.substr(0, 12), e.pushed_by,
                          format_time_short(e.created_at), inspected->sha256.substr(0, 12))));
        }
        const std::string sha = inspected->sha256;
        auto job2 = [c, file, sha] { return c->blobs.commit(file, sha); };
        auto committed = co_await c->work_call(job2);
        if (!committed) co_return Response::error(committed.error());
        store::ArtifactRecord rec;
        rec.app = app;
        rec.version = version;
        rec.sha256 = sha;
        rec.size = inspected->size;
        rec.manifest_json = to_json(artifacts::manifest_to_json(inspected->manifest));
        rec.pushed_by = req.actor;
        rec.claimed_user = req.claimed_user;
        rec.created_at = now_ms();
        auto job3 = [rec](store::Store& s) -> Result<store::ArtifactRecord> {
          if (auto st = s.insert_artifact(rec); !st) {
            // Lost a race with an identical push: fine when the bytes are the same.
            auto again = s.get_artifact(rec.app, rec.version);
            if (again && *again && (*again)->sha256 == rec.sha256) return **again;
            return st.error();
          }
          return rec;
        };
        auto inserted = co_await c->db_call(job3);
        if (!inserted) co_return Response::error(inserted.error());
        spdlog::info("pushed {} {} ({} bytes, sha256 {}) by {}", app, version, rec.size,
                     sha.substr(0, 12), req.actor);
        co_return Response::json(201, artifact_json(*inserted, true));
      });

  ctx.router.add(
      "GET", "/api/v1/artifacts", Access::viewer, "artifact.list",
      [c](Request& req) -> asio::awaitable<Response> {
        auto job4 = [](store::Store& s) -> Result<json::array> {
          auto names = s.list_apps();
          if (!names) return names.error();
          json::array out;
          for (const auto& app : *names) {
            auto list = s.list_artifacts(app);
            if (!list) return list.error();
            std::vector<std::string> versions;
            for (const auto& a : *list)
              versions.push_back(a.version);
            artifacts::sort_versions(versions);
            out.push_back(json::object{{"app", app},
                                       {"versions", static_cast<int64_t>(versions.size())},
                                       {"latest", versions.empty() ? "" : versions.back()}});
          }
          return out;
        };
        auto apps = co_await c->db_call(job4);
        if (!apps) co_return Response::error(apps.error());
        json::array visible;  // those in the token's scope
        for (auto& a : *apps) {
          if (in_scope(req.principal, "", a.as_object().at("app").as_string())) {
            visible.push_back(std::move(a));
          }
        }
        co_return Response::json(200, json::object{{"apps", std::move(visible)}});
      });

  ctx.router.add(
      "GET", "/api/v1/artifacts/{app}", Access::viewer, "artifact.versions",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string app = req.param("app");
        if (auto st = check_app_version(app, ""); !st) co_return Response::error(st.error());
        if (auto st = authorize(req, "", app); !st) co_return Response::error(st.error());
        auto job5 = [app](store::Store& s) { return s.list_artifacts(app); };
        auto list = co_await c->db_call(job5);
        if (!list) co_return Response::error(list.error());
        if (list->empty()) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("no versions of {} have been pushed", app)));
        }
        std::vector<std::string> names;
        for (const auto& a : *list)
          names.push_back(a.version);
        json::array versions;
        for (size_t i : artifacts::version_order(names)) {
          versions.push_back(artifact_json((*list)[i], false));
        }
        const std::string latest(versions.back().as_object().at("version").as_string());
        co_return Response::json(
            200, json::object{{"app", app}, {"latest", latest}, {"versions", std::move(versions)}});
      });

  ctx.router.add(
      "GET", "/api/v1/artifacts/{app}/{version}", Access::viewer, "artifact.show",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string app = req.param("app");
        const std::string version = req.param("version");
        if (auto st = check_app_version(app, version); !st) co_return Response::error(st.error());
        if (auto st = authorize(req, "", app); !st) co_return Response::error(st.error());
        auto job6 = [app, version](store::Store& s) { return s.get_artifact(app, version); };
        auto a = co_await c->db_call(job6);
        if (!a) co_return Response::error(a.error());
        if (!*a) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("{} {} is not in the repository", app, version)));
        }
        co_return Response::json(200, artifact_json(**a, true));
      });

  // What changed in a release: its files against those of another version (default: the one
  // before it in version order), read from both archives on the worker pool.
  ctx.router.add(
      "GET", "/api/v1/artifacts/{app}/{version}/diff", Access::viewer, "artifact.diff",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string app = req.param("app");
        const std::string version = req.param("version");
        std::string from = req.query_or("from");
        if (auto st = check_app_version(app, version); !st) co_return Response::error(st.error());
        if (!from.empty()) {
          if (auto st = check_app_version(app, from); !st) co_return Response::error(st.error());
        }
        if (auto st = authorize(req, "", app); !st) co_return Response::error(st.error());
        auto job8 = [app](store::Store& s) { return s.list_artifacts(app); };
        auto list = co_await c->db_call(job8);
        if (!list) co_return Response::error(list.error());
        std::vector<std::string> names;
        for (const auto& a : *list)
          names.push_back(a.version);
        const auto order = artifacts::version_order(names);
        const store::ArtifactRecord* to_rec = nullptr;
        const store::ArtifactRecord* from_rec = nullptr;
        for (size_t k = 0; k < order.size(); ++k) {
          const auto& a = (*list)[order[k]];
          if (a.version == version) {
            to_rec = &a;
            if (from.empty() && k > 0) from_rec = &(*list)[order[k - 1]];
          }
          if (!from.empty() && a.version == from) from_rec = &a;
        }
        for (const auto& [want, rec] : {std::pair{version, to_rec}, std::pair{from, from_rec}}) {
          if (!want.empty() && !rec) {
            co_return Response::error(
                err(Errc::not_found, fmt::format("{} {} is not in the repository", app, want)));
          }
        }
        const std::string from_version = from_rec ? from_rec->version : "";
        auto job9 = [to_path = c->blobs.path_of(to_rec->sha256),
                     from_path =
                         from_rec ? c->blobs.path_of(from_rec->sha256)
                                  : std::filesystem::path()]() -> Result<artifacts::ReleaseDiff> {
          auto to_list = artifacts::list_archive(to_path);
          if (!to_list) return to_list.error();
          std::vector<artifacts::ListedEntry> from_list;
          if (!from_path.empty()) {
            auto l = artifacts::list_archive(from_path);
            if (!l) return l.error();
            from_list = std::move(*l);
          }
          return artifacts::diff_listings(from_list, *to_list);
        };
        auto diff = co_await c->work_call(job9);
        if (!diff) co_return Response::error(diff.error());
        co_return Response::json(200, diff_json(app, from_version, version, *diff));
      });

  ctx.router.add(
      "GET", "/api/v1/artifacts/{app}/{version}/download", Access::viewer, "artifact.download",
      [c](Request& req) -> asio::awaitable<Response> {
        const std::string app = req.param("app");
        const std::string version = req.param("version");
        if (auto st = check_app_version(app, version); !st) co_return Response::error(st.error());
        if (auto st = authorize(req, "", app); !st) co_return Response::error(st.error());
        auto job7 = [app, version](store::Store& s) { return s.get_artifact(app, version); };
        auto a = co_await c->db_call(job7);
        if (!a) co_return Response::error(a.error());
        if (!*a) {
          co_return Response::error(
              err(Errc::not_found, fmt::format("{} {} is not in the repository", app, version)));
        }
        co_return serve_blob(*c, req, (*a)->sha256, fmt::format("{}-{}.tar.gz", app, version));
      },
      RouteKind::download);

  ctx.router.add(
      "GET", "/api/v1/blobs/{sha256}", Access::agent, "blob.download",
      [c](Request& req) -> asio::awaitable<Response> {
        // A join token only enrolls: an enrolled agent downloads with its node's credential.
        if (!req.principal.join_token.empty()) {
          co_return Response::error(
              err(Errc::forbidden,
                  "a join token only enrolls a node: an enrolled agent downloads with its node "
                  "credential"));
        }
        const std::string sha = req.param("sha256");
        if (!is_sha256_hex(sha)) {
          co_return Response::error(
              err(Errc::invalid_argument, "not a sha256 digest (64 lower-case hex digits)"));
        }
        co_return serve_blob(*c, req, sha, "");
      },
      RouteKind::download);
}

}  // namespace slipway::server
