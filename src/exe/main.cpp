// slipway: one binary, every part (server, agent, CLI, lab, demo) as a subcommand.
#include "cli/cli.h"

int main(int argc, char** argv) {
  return slipway::cli::run(argc, argv);
}
