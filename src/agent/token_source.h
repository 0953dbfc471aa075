// Where the agent's join token comes from, and keeping it (and any other token) out of what other
// processes on the node can read about the agent:
//   - /proc/PID/cmdline is readable by every user and shows the argument block itself: a token
//     given with --token is overwritten there, in place, once parsed (as PostgreSQL's and MySQL's
//     clients do with a password on their command line);
//   - /proc/PID/environ shows the environment block the process started with, whatever unsetenv
//     does later: SLIPWAY_JOIN_TOKEN and SLIPWAY_TOKEN are overwritten there, then unset, and
//     the values of the other variables are overwritten there too (kept on the heap);
//   - the agent makes itself non-dumpable, so that a process of the same user (an app it runs)
//     can neither read its environ or memory through /proc nor attach a debugger to it.
// None of this protects a file: an app running as the agent's user can read the token file and
// ROOT/agent.credential (docs/security.md says what keeps that from reaching production).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"

namespace slipway::agent {

namespace fs = std::filesystem;

// Overwrites every occurrence of `secret` in argv[1] ... argv[argc - 1] with 'x', in place, and
// returns how many there were. REQUIRES: argv is main()'s (the memory /proc/PID/cmdline shows) or
// other writable memory. An empty secret changes nothing.
size_t wipe_from_arguments(int argc, char** argv, std::string_view secret);

// Takes variable `name` out of this process's environment: returns its value (what getenv gave;
// nullopt when it was not set), after overwriting the value of every `name=` entry with 'x' in
// place and unsetting it. Not thread-safe (like setenv): call it before starting threads.
std::optional<std::string> take_from_environment(const char* name);

// Moves the whole environment out of the block /proc/PID/environ shows: every variable is copied
// to the heap (getenv goes on giving the same values, for OpenSSL's SSL_CERT_FILE and the like),
// then every value in the original block is overwritten with 'x'. Afterwards that file shows the
// names the process started with and no value, whoever may read it (root, or any process when
// the agent is dumpable). Not thread-safe: call it before starting threads.
void hide_environment_block();

// Reads a join token from `file`: its first line, without surrounding blanks. Refused
// (failed_precondition, naming the file and the fix): a file that is not a regular file, that is
// empty or over 4 KiB, that others may read or write (group or other bits, as ssh and the server's
// secrets.key), or that belongs to another user than this one or root. A file owned by root may
// be readable by its group (0640, for a service user in that group), as PostgreSQL allows for its
// key files. Never puts the file's content in an error.
Result<std::string> read_token_file(const fs::path& file);

// The three ways to give the join token; exactly one must be used.
struct JoinTokenSources {
  std::string flag;                // --token TOKEN ("" when not given)
  std::string file;                // --token-file FILE ("" when not given)
  std::optional<std::string> env;  // $SLIPWAY_JOIN_TOKEN, as take_from_environment returned it
};

// The join token from the one source given; invalid_argument naming the sources when none or
// more than one is, an error of read_token_file for a bad file.
Result<std::string> pick_join_token(const JoinTokenSources& sources);

// What `slipway agent` does first, before starting a thread: takes SLIPWAY_JOIN_TOKEN and
// SLIPWAY_TOKEN out of the environment (the agent has no use for an API token), hides the rest of
// the environment block, wipes a --token value from argv, makes the process non-dumpable
// (PR_SET_DUMPABLE 0), and returns the token of the one source given. `flag` and `file` are what
// the options held.
Result<std::string> take_join_token(const std::string& flag, const std::string& file, int argc,
                                    char** argv);

}  // namespace slipway::agent
