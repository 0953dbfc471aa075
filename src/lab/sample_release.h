// Releases of the sample web service (slipway-sample-service), built on the fly for the demo,
// the lab and the tests: a real artifact with a slipway.yaml, like one a CI job would push.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "common/duration.h"
#include "common/error.h"

namespace slipway::lab {

namespace fs = std::filesystem;

struct SampleRelease {
  fs::path out_dir;  // created when missing
  std::string app = "web";
  std::string version;
  fs::path sample_binary;  // the slipway-sample-service executable to ship as bin/server
  // false ships a bug: the start command passes --unhealthy, so /health answers 500 and the
  // release fails its health check.
  bool healthy = true;
  Millis health_timeout{30'000};
  Millis healthy_for{2'000};
  Millis interval{500};
  std::string message;         // one line for CHANGELOG and config/app.conf
  std::string extra_manifest;  // more top-level slipway.yaml keys (drain:, undrain:, ...)
  // The after_install hook (one line, run in the release directory): a test can make a release
  // fail on some nodes only, e.g. "test -x ./bin/server && test ! -e ../../../../broken".
  std::string after_install = "test -x ./bin/server";
  // More files (path inside the release -> content, mode 0644), e.g. config/app.conf.tmpl.
  std::map<std::string, std::string> extra_files;
};

// Writes OUT_DIR/APP-VERSION.tar.gz and returns its path. The archive holds:
//   bin/server        the sample binary (0755)
//   slipway.yaml      start: ./bin/server --address ${SLIPWAY_ADDRESS} --port ${SLIPWAY_PORT}
//                       --version ${SLIPWAY_VERSION} --app ${SLIPWAY_APP} [--unhealthy];
//                     hooks.after_install: test -x ./bin/server (or r.after_install);
//                     health.http: http://${SLIPWAY_ADDRESS}:${SLIPWAY_PORT}/health, with the
//                       timings above
//   VERSION           the version, one line
//   config/app.conf   app, version and message
//   CHANGELOG         "VERSION: message"
// App and version are checked with validate_name
// (invalid_argument); a missing binary is not_found.
Result<fs::path> build_sample_release(const SampleRelease& r);

// The slipway-sample-service executable: $SLIPWAY_SAMPLE_SERVICE when set, else the one next to
// this executable (the directory of /proc/self/exe), else in ../bin from there, else the first
// in PATH. not_found, naming the places looked at, when there is none.
Result<fs::path> find_sample_binary();

}  // namespace slipway::lab
