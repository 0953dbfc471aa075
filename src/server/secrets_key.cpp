// The secrets key's life (context.h: load_secrets_key, register_secret_key_routes): loaded at
// start, finishing or discarding a rotation that a stop interrupted, and rotated by `slipway secret
// rotate-key` (POST /api/v1/secrets/rotate-key).
//
// Files in DATA_DIR: secrets.key (the key in use), secrets.key.old (the key before the last
// rotation, kept until the next one), secrets.key.new (only while a rotation runs, or after a stop
// interrupted one). A rotation runs whole on the database thread, where every value is sealed and
// opened, so no request seals with a key the database no longer uses:
//   1. a new random key is written to secrets.key.new (O_EXCL|O_NOFOLLOW, 0600) and fsynced, and
//      the directory too;
//   2. ONE transaction re-seals every config secret and every notification hook's credential
//      (opened with the key in use, sealed with the new one) and the key check (meta
//      "secrets/key_check": a known text sealed with the key the database's values are sealed
//      with);
//   3. the server uses the new key (ServerContext::secret_key);
//   4. secrets.key.old becomes a hard link to secrets.key, then secrets.key.new is renamed over
//      secrets.key (atomically), and the directory is fsynced. secrets.key exists at every step.
// At start, a secrets.key.new left behind means a rotation was interrupted: when the database's key
// check opens with it, the transaction committed and step 4 is done now; otherwise it did not and
// the file is discarded.
#include <cerrno>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "server/context.h"

namespace slipway::server {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kCheckText = "slipway secrets key check";
constexpr std::string_view kCheckPlace = "meta/secrets_key_check";
constexpr const char* kCheckMeta = "secrets/key_check";

fs::path key_file(const fs::path& data) {
  return data / "secrets.key";
}
fs::path new_key_file(const fs::path& data) {
  return data / "secrets.key.new";
}
fs::path old_key_file(const fs::path& data) {
  return data / "secrets.key.old";
}

Error io_error(std::string_view what, const fs::path& p, int e) {
  return err(Errc::io, fmt::format("cannot {} {}: {}", what, p.string(), std::strerror(e)));
}

// Removes `p`; a file that is not there is fine.
Status remove_file(const fs::path& p) {
  if (::unlink(p.c_str()) != 0 && errno != ENOENT) return io_error("remove", p, errno);
  return {};
}

bool opens_check(const SecretKey& key, const std::optional<std::string>& check) {
  if (!check) return false;
  auto text = key.open(*check, kCheckPlace);
  return text && *text == kCheckText;
}

// Step 4 of a rotation; idempotent, so that a start can finish what a stop interrupted.
Status install_new_key(const fs::path& data) {
  if (auto st = remove_file(old_key_file(data)); !st) return st;
  if (::link(key_file(data).c_str(), old_key_file(data).c_str()) != 0 && errno != ENOENT) {
    return io_error("keep the previous key as", old_key_file(data), errno);
  }
  if (::rename(new_key_file(data).c_str(), key_file(data).c_str()) != 0) {
    return io_error("put the new key in place of", key_file(data), errno);
  }
  return sync_dir(data);
}

std::string place_of(const store::SealedValue& v) {
  return v.kind == store::SealedValue::Kind::config ? config_secret_place(v.env, v.app, v.key)
                                                    : notify_secret_place(v.hook);
}

std::string describe(const store::SealedValue& v) {
  return v.kind == store::SealedValue::Kind::config
             ? fmt::format("the secret {} of {} in {}", v.key, v.app, v.env)
             : fmt::format("the secret of notification hook '{}'", v.hook);
}

struct Rotated {
  int64_t config_secrets = 0;
  int64_t notify_hooks = 0;
};

// Every sealed value opened with `key` and sealed with `next` (in memory only).
Result<Rotated> reseal(std::vector<store::SealedValue>& values, const SecretKey& key,
                       const SecretKey& next) {
  Rotated out;
  for (auto& v : values) {
    const std::string place = place_of(v);
    auto plain = key.open(v.sealed, place);
    if (!plain) {
      return err(Errc::failed_precondition,
                 fmt::format("{} does not open with the secrets key in use ({}): set it again (or "
                             "remove it), then rotate; nothing was changed",
                             describe(v), plain.error().message));
    }
    v.sealed = next.seal(*plain, place);
    std::fill(plain->begin(), plain->end(), '\0');
    ++(v.kind == store::SealedValue::Kind::config ? out.config_secrets : out.notify_hooks);
  }
  return out;
}

// Steps 2 and 3: the transaction, then the key in use. The database thread runs its jobs in a
// transaction of its own (DbExecutor): what came before is committed first, so that this
// transaction holds the rotation alone and is committed (or rolled back) whole here.
Result<Rotated> commit_rotation(store::Store& s, SecretKey& key, const SecretKey& next) {
  if (auto st = s.commit_now(); !st) return st.error();
  auto values = s.list_sealed_values();
  if (!values) return values.error();
  auto rotated = reseal(*values, key, next);
  if (!rotated) return rotated.error();
  const std::map<std::string, std::string> check{{kCheckMeta, next.seal(kCheckText, kCheckPlace)}};
  if (auto st = s.replace_sealed_values(*values, check); !st) return st.error();
  if (auto st = s.commit_now(); !st) return st.error();
  key = next;
  return rotated;
}

// A whole rotation, on the database thread.
Result<Rotated> rotate(store::Store& s, const fs::path& data, SecretKey& key) {
  const fs::path fresh = new_key_file(data);
  if (auto st = remove_file(fresh); !st) return st.error();
  const SecretKey next = SecretKey::random();
  if (auto st = next.write_file(fresh, "new secrets key"); !st) return st.error();
  if (auto st = sync_dir(data); !st) {
    (void)remove_file(fresh);
    return st.error();
  }
  auto rotated = commit_rotation(s, key, next);
  if (!rotated) {
    (void)remove_file(fresh);
    return rotated.error();
  }
  if (auto st = install_new_key(data); !st) {
    return err(Errc::io,
               fmt::format("the secrets were re-sealed with the new key, which the server uses "
                           "now, but the key file could not be put in place ({}); the next start "
                           "finishes it from {}: do not remove that file",
                           st.error().message, fresh.string()));
  }
  return rotated;
}

// A secrets.key.new left by an interrupted rotation: put in place when the database's values are
// sealed with it (the transaction committed), else removed.
Status settle_new_key(const fs::path& data, const std::optional<std::string>& check) {
  const fs::path fresh = new_key_file(data);
  auto next = SecretKey::load(fresh, "new secrets key");
  if (next && !*next) return {};
  if (next && opens_check(**next, check)) {
    if (auto st = install_new_key(data); !st) return st;
    spdlog::warn(
        "finished the rotation of the secrets key that a stop interrupted: {} is the new "
        "key, {} the previous one",
        key_file(data).string(), old_key_file(data).string());
    return {};
  }
  // Unreadable (written partly before a stop) or not the database's key: the rotation it belongs
  // to never committed.
  if (auto st = remove_file(fresh); !st) return st;
  spdlog::warn("discarded {}: the key rotation it belonged to did not complete ({})",
               fresh.string(),
               next ? "the database's secrets are not sealed with it" : next.error().message);
  return {};
}

}  // namespace

Status load_secrets_key(ServerContext& ctx, store::Store& s) {
  const fs::path& data = ctx.opts.data_dir;
  auto check = s.get_meta(kCheckMeta);
  if (!check) return check.error();
  if (auto st = settle_new_key(data, *check); !st) return st;
  auto key = SecretKey::load_or_create(key_file(data));
  if (!key) return key.error();
  if (!*check) {
    if (auto st = s.set_meta(kCheckMeta, key->seal(kCheckText, kCheckPlace)); !st) return st;
  } else if (!opens_check(*key, *check)) {
    spdlog::warn(
        "{} is not the key this database's secrets are sealed with (was it replaced?): "
        "they will not open, and deploys that need them fail, until the right key is back "
        "({} holds the key before the last rotation)",
        key_file(data).string(), old_key_file(data).string());
  }
  ctx.secret_key = std::move(*key);
  return {};
}

void register_secret_key_routes(ServerContext& ctx) {
  ServerContext* c = &ctx;
  ctx.router.add("POST", "/api/v1/secrets/rotate-key", Access::admin, "secret.rotate_key",
                 [c](Request& req) -> asio::awaitable<Response> {
                   if (auto st = expect_empty_body(req, "rotate-key request"); !st)
                     co_return Response::error(st.error());
                   auto job = [c](store::Store& s) {
                     return rotate(s, c->opts.data_dir, *c->secret_key);
                   };
                   auto rotated = co_await c->db_call(job);
                   if (!rotated) co_return Response::error(rotated.error());
                   spdlog::info(
                       "secrets key rotated by {}: {} config secret(s) and {} notification hook "
                       "secret(s) re-sealed; the previous key is kept in {}",
                       req.actor, rotated->config_secrets, rotated->notify_hooks,
                       old_key_file(c->opts.data_dir).string());
                   co_return Response::json(
                       200, json::object{{"config_secrets", rotated->config_secrets},
                                         {"notify_hooks", rotated->notify_hooks},
                                         {"key", key_file(c->opts.data_dir).string()},
                                         {"old_key", old_key_file(c->opts.data_dir).string()}});
                 });
}

}  // namespace slipway::server
