// slipway push, slipway versions
#include <filesystem>
#include <iostream>

#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/output.h"
#include "common/crypto.h"
#include "common/names.h"

namespace slipway::cli {

int cmd_push(const ClientFlags& f, const PushArgs& a) {
  if (auto st = validate_name(NameKind::app, a.app); !st) return fail(st.error());
  if (auto st = validate_name(NameKind::version, a.version); !st) return fail(st.error());
  std::error_code ec;
  if (!std::filesystem::is_regular_file(a.file, ec)) {
    return fail(err(Errc::invalid_argument, fmt::format("{} is not a readable file", a.file)));
  }
  auto sha = sha256_file(a.file);
  if (!sha) return fail(err(Errc::invalid_argument, sha.error().message));
  auto c = make_client(f);
  auto r = c.upload(fmt::format("/api/v1/artifacts/{}/{}", a.app, a.version), a.file, *sha);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  const auto& o = r->as_object();
  const bool existed = o.contains("status") && o.at("status") == "exists";
  const uint64_t size = o.contains("size") ? o.at("size").to_number<uint64_t>() : 0;
  if (existed) {
    std::cout << fmt::format(
        "{} {} is already in the repository with the same content (sha256 {}); "
        "nothing changed\n",
        a.app, a.version, sha->substr(0, 12));
  } else {
    std::cout << fmt::format("pushed {} {} ({}, sha256 {})\n", a.app, a.version, human_bytes(size),
                             sha->substr(0, 12));
  }
  return kExitOk;
}

int cmd_versions(const ClientFlags& f, const std::string& app) {
  if (auto st = validate_name(NameKind::app, app); !st) return fail(st.error());
  auto c = make_client(f);
  auto r = c.get("/api/v1/artifacts/" + app);
  if (!r) return fail(r.error());
  if (f.json()) {
    print_json(*r);
    return kExitOk;
  }
  const auto& o = r->as_object();
  const std::string latest(o.at("latest").as_string());
  Table t({"VERSION", "SHA256", "SIZE", "PUSHED BY", "PUSHED AT"});
  for (const auto& v : o.at("versions").as_array()) {
    const auto& a = v.as_object();
    std::string version(a.at("version").as_string());
    if (version == latest) version += paint(" (latest)", Color::dim);
    t.row({version, std::string(a.at("sha256").as_string()).substr(0, 12),
           human_bytes(a.at("size").to_number<uint64_t>()),
           actor_cell(a.at("pushed_by").as_string(),
                      a.contains("claimed_user") && a.at("claimed_user").is_string()
                          ? std::string_view(a.at("claimed_user").as_string())
                          : std::string_view()),
           std::string(a.at("created_at").as_string()).substr(0, 19)});
  }
  t.print(std::cout);
  return kExitOk;
}

}  // namespace slipway::cli
