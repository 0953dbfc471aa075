// Errors as values across module boundaries.
//
// Every fallible call that crosses a module boundary returns Result<T>: either a value or an
// Error{code, message}. The code is one of a small closed set (Errc); the mapping from a code to an
// HTTP status (server side) and to a process exit code (CLI side) lives in error.cpp and nowhere
// else. Messages are complete sentences for a human: what was wrong and where.
#pragma once

#include <string>
#include <string_view>

#include <boost/system/result.hpp>

namespace slipway {

enum class Errc {
  invalid_argument,     // the caller's input is malformed (400, exit 2)
  not_found,            // the thing named does not exist (404, exit 2)
  conflict,             // it exists already / another operation holds it (409, exit 2)
  unauthenticated,      // no token or a wrong one (401, exit 3)
  forbidden,            // the token may not do this (403, exit 3)
  failed_precondition,  // the request is well-formed but cannot be done now (412, exit 2)
  too_large,            // a body or an archive is over a limit (413, exit 2)
  unavailable,          // the peer cannot be reached (503, exit 3)
  timeout,              // an operation ran out of time (504, exit 1)
  deploy_failed,        // a deploy ended without every node healthy (exit 1)
  io,                   // a local file system or process error (500, exit 1)
  internal,             // a bug: should never happen (500, exit 1)
};

struct Error {
  Errc code = Errc::internal;
  std::string message;
};

template <class T>
using Result = boost::system::result<T, Error>;
using Status = boost::system::result<void, Error>;

// Short constructors, so that `return err(Errc::not_found, "...")` reads like a sentence.
Error err(Errc code, std::string message);

std::string_view errc_name(Errc code);       // "not_found", ...
Errc errc_from_name(std::string_view name);  // unknown names map to internal

int http_status(Errc code);
Errc errc_from_http_status(int status);
int exit_code(Errc code);

// Exit codes of the CLI (a contract with CI scripts).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnreachable = 3;

// Called by Result<T>::value() on an error: throws std::runtime_error with the message.
[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

}  // namespace slipway
