// The `slipway` command line: parses arguments and runs one subcommand.
#pragma once

namespace slipway::cli {

// Returns the process exit code (0 ok, 1 failed, 2 bad usage or input, 3 server unreachable or
// token refused).
int run(int argc, char** argv);

}  // namespace slipway::cli
