#include "agent/token_source.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/strings.h"

extern char** environ;

namespace slipway::agent {

namespace {

constexpr size_t kMaxTokenFileBytes = 4096;

void overwrite(char* p, size_t n) {
  // Stores through a volatile pointer: the bytes are read by the kernel, never by this program,
  // so the compiler must not drop them as dead.
  volatile char* v = p;
  for (size_t i = 0; i < n; ++i)
    v[i] = 'x';
}

Error token_file_error(const fs::path& file, std::string_view why, std::string_view fix) {
  return err(Errc::failed_precondition,
             fmt::format("the join token file {} {}: {}", file.string(), why, fix));
}

// The permission rule of read_token_file, on the file's stat.
Status check_token_file(const fs::path& file, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) {
    return token_file_error(file, "is not a regular file", "give the file that holds the token");
  }
  const uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    return token_file_error(file, fmt::format("belongs to user id {}", st.st_uid),
                            fmt::format("it must belong to this user (id {}) or to root", me));
  }
  const unsigned mode = st.st_mode & 0777;
  // Root's file may be shared with the agent's group (root:GROUP 0640), nobody else's.
  const unsigned refused = st.st_uid == 0 && me != 0 ? 037 : 077;
  if ((mode & refused) != 0) {
    return token_file_error(file, fmt::format("has mode {:04o}, open to other users", mode),
                            fmt::format("chmod 600 {}{}", file.string(),
                                        me == 0 ? "" : " (or 640 for a file of root)"));
  }
  return {};
}

// The content of the open token file `fd`, once its kind, owner, mode and size are checked.
Result<std::string> read_checked(int fd, const fs::path& file) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return err(Errc::io, fmt::format("cannot stat {}: {}", file.string(), std::strerror(errno)));
  }
  if (auto ok = check_token_file(file, st); !ok) return ok.error();
  std::string text(kMaxTokenFileBytes + 1, '\0');
  size_t total = 0;
  while (total < text.size()) {
    const ssize_t got = ::read(fd, text.data() + total, text.size() - total);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return err(Errc::io, fmt::format("cannot read {}: {}", file.string(), std::strerror(errno)));
    }
    if (got == 0) break;
    total += static_cast<size_t>(got);
  }
  if (total > kMaxTokenFileBytes) {
    overwrite(text.data(), total);
    return token_file_error(file, "is larger than 4 KiB", "it must hold the token only");
  }
  text.resize(total);
  return text;
}

}  // namespace

size_t wipe_from_arguments(int argc, char** argv, std::string_view secret) {
  if (secret.empty()) return 0;
  size_t wiped = 0;
  for (int i = 1; i < argc && argv[i] != nullptr; ++i) {
    char* arg = argv[i];
    const size_t len = std::strlen(arg);
    for (size_t at = std::string_view(arg, len).find(secret); at != std::string_view::npos;
         at = std::string_view(arg, len).find(secret, at + secret.size())) {
      overwrite(arg + at, secret.size());
      ++wiped;
    }
  }
  return wiped;
}

std::optional<std::string> take_from_environment(const char* name) {
  std::optional<std::string> value;
  const size_t n = std::strlen(name);
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, name, n) != 0 || (*e)[n] != '=') continue;
    char* v = *e + n + 1;
    if (!value) value = std::string(v);  // the first, as getenv
    overwrite(v, std::strlen(v));
  }
  if (value) ::unsetenv(name);
  return value;
}

void hide_environment_block() {
  std::vector<char*> block;
  std::vector<std::pair<std::string, std::string>> vars;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr || eq == *e) continue;  // not a variable getenv could find
    block.push_back(*e);
    vars.emplace_back(std::string(*e, static_cast<size_t>(eq - *e)), std::string(eq + 1));
  }
  // setenv copies: afterwards no entry of environ points into the block any more.
  ::clearenv();
  for (const auto& [name, value] : vars)
    (void)::setenv(name.c_str(), value.c_str(), /*overwrite=*/0);  // the first wins, as getenv
  for (char* entry : block) {
    char* value = std::strchr(entry, '=') + 1;
    overwrite(value, std::strlen(value));
  }
}

Result<std::string> read_token_file(const fs::path& file) {
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    return err(
        errno == ENOENT ? Errc::not_found : Errc::io,
        fmt::format("cannot open the join token file {}: {}", file.string(), std::strerror(errno)));
  }
  auto text = read_checked(fd, file);
  ::close(fd);
  if (!text) return text.error();
  std::string token(trim(std::string_view(*text).substr(0, text->find('\n'))));
  overwrite(text->data(), text->size());
  if (token.empty()) {
    return token_file_error(file, "holds no token on its first line",
                            "write the server's DATA/join.token into it");
  }
  return token;
}

Result<std::string> pick_join_token(const JoinTokenSources& s) {
  std::vector<std::string> given;
  if (!s.flag.empty()) given.emplace_back("--token");
  if (!s.file.empty()) given.emplace_back("--token-file");
  if (s.env) given.emplace_back("$SLIPWAY_JOIN_TOKEN");
  if (given.empty()) {
    return err(Errc::invalid_argument,
               "the join token is required: --token-file FILE (or $SLIPWAY_JOIN_TOKEN, or "
               "--token TOKEN), FILE holding the server's DATA/join.token");
  }
  if (given.size() > 1) {
    return err(Errc::invalid_argument,
               fmt::format("the join token is given {} times ({}): give it one way only",
                           given.size(), join(given, ", ")));
  }
  if (!s.file.empty()) return read_token_file(s.file);
  if (s.env && s.env->empty()) {
    return err(Errc::invalid_argument, "$SLIPWAY_JOIN_TOKEN is set but empty");
  }
  return s.env ? *s.env : s.flag;
}

Result<std::string> take_join_token(const std::string& flag, const std::string& file, int argc,
                                    char** argv) {
  JoinTokenSources sources{
      .flag = flag, .file = file, .env = take_from_environment("SLIPWAY_JOIN_TOKEN")};
  (void)take_from_environment("SLIPWAY_TOKEN");
  hide_environment_block();
  wipe_from_arguments(argc, argv, flag);
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) {
    return err(Errc::io,
               fmt::format("cannot make the agent non-dumpable: {}", std::strerror(errno)));
  }
  return pick_join_token(sources);
}

}  // namespace slipway::agent
