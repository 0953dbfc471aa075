#include "common/error.h"

#include <array>
#include <stdexcept>
#include <utility>

namespace slipway {

namespace {
struct ErrcInfo {
  Errc code;
  std::string_view name;
  int http;
  int exit;
};
constexpr std::array<ErrcInfo, 12> kErrcTable{{
    {Errc::invalid_argument, "invalid_argument", 400, kExitUsage},
    {Errc::not_found, "not_found", 404, kExitUsage},
    {Errc::conflict, "conflict", 409, kExitUsage},
    {Errc::unauthenticated, "unauthenticated", 401, kExitUnreachable},
    {Errc::forbidden, "forbidden", 403, kExitUnreachable},
    {Errc::failed_precondition, "failed_precondition", 412, kExitUsage},
    {Errc::too_large, "too_large", 413, kExitUsage},
    {Errc::unavailable, "unavailable", 503, kExitUnreachable},
    {Errc::timeout, "timeout", 504, kExitFailed},
    {Errc::deploy_failed, "deploy_failed", 500, kExitFailed},
    {Errc::io, "io", 500, kExitFailed},
    {Errc::internal, "internal", 500, kExitFailed},
}};

const ErrcInfo& info(Errc code) {
  for (const auto& i : kErrcTable) {
    if (i.code == code) return i;
  }
  return kErrcTable.back();
}
}  // namespace

Error err(Errc code, std::string message) {
  return Error{code, std::move(message)};
}

std::string_view errc_name(Errc code) {
  return info(code).name;
}

Errc errc_from_name(std::string_view name) {
  for (const auto& i : kErrcTable) {
    if (i.name == name) return i.code;
  }
  return Errc::internal;
}

int http_status(Errc code) {
  return info(code).http;
}

Errc errc_from_http_status(int status) {
  switch (status) {
    case 400:
      return Errc::invalid_argument;
    case 401:
      return Errc::unauthenticated;
    case 403:
      return Errc::forbidden;
    case 404:
      return Errc::not_found;
    case 409:
      return Errc::conflict;
    case 412:
      return Errc::failed_precondition;
    case 413:
      return Errc::too_large;
    case 502:
    case 503:
      return Errc::unavailable;
    case 504:
      return Errc::timeout;
    default:
      return Errc::internal;
  }
}

int exit_code(Errc code) {
  return info(code).exit;
}

void throw_exception_from_error(const Error& e, const boost::source_location& /*loc*/) {
  throw std::runtime_error(std::string(errc_name(e.code)) + ": " + e.message);
}

}  // namespace slipway
