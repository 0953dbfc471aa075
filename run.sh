#!/bin/sh
# Slipway's two commands:
#   ./run.sh demo   set up everything (Debian packages, configure, build) and run `slipway demo`
#   ./run.sh test   set up everything and run the whole test suite
# Both are safe to run again: packages already installed are not reinstalled, builds are
# incremental.
set -eu
cd "$(dirname "$0")"

PACKAGES="g++ cmake ninja-build pkg-config ccache git ca-certificates
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libsqlite3-dev libarchive-dev libssl-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libfmt-dev libgtest-dev libgmock-dev libsodium-dev
  procps curl python3 libcurl4-openssl-dev"
# The peers the benchmarks compare Slipway with (bench/): the test suite smoke-runs every
# benchmark, so `test` installs them too. Their services are started by the benchmarks on
# loopback only, with their own configuration files.
BENCH_PACKAGES="nginx-light openssh-server openssh-client ansible capistrano"
# What end-to-end tests run besides Slipway: HAProxy in front of the lab's nodes, drained and
# enabled through its admin socket with socat (tests/support/haproxy.h). The tests start their own
# HAProxy on loopback; Debian's haproxy service is never started (policy-rc.d below).
# The fuzz targets (fuzz/) are built with Debian's clang and its libFuzzer runtime.
# E-mail notifications are tested against a real SMTP server on loopback: aiosmtpd
# (tests/e2e/notify_test.cpp starts its own). The web console's browser test drives Debian's
# chromium (web/tests).
TEST_PACKAGES="haproxy socat clang libclang-rt-14-dev python3-aiosmtpd chromium"

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

setup_packages() {
  missing=""
  for p in $PACKAGES ${1:-}; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing="$missing $p"
    fi
  done
  if [ -n "$missing" ]; then
    echo "==> installing Debian packages:$missing"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # Debian starts a service (sshd on port 22, nginx on port 80, haproxy) when its package is
    # installed; the benchmarks and tests start their own on loopback, so policy-rc.d (Debian's
    # switch for this, as in container images) keeps the packages' services from starting during
    # the install.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
      as_root chmod 755 "$policy"
    fi
    status=0
    # shellcheck disable=SC2086
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      $missing || status=$?
    if [ -n "$policy" ]; then as_root rm -f "$policy"; fi
    [ "$status" = 0 ] || exit "$status"
  fi
}

# The web console (web/) is built with npm. Debian's nodejs and npm when npm is missing; never
# Debian's npm over a node that is there already (a nodesource nodejs ships its own npm and
# conflicts with Debian's npm package).
setup_node() {
  if command -v npm >/dev/null 2>&1; then return; fi
  if command -v node >/dev/null 2>&1; then
    echo "==> node is installed but npm is not: the web console will not be built" >&2
    return
  fi
  echo "==> installing Debian packages: nodejs npm"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    nodejs npm
}

build() {
  setup_node
  BUILD_DIR=${SLIPWAY_BUILD_DIR:-build}
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    echo "==> configuring ($BUILD_DIR)"
    cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
  fi
  echo "==> building"
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

# The libFuzzer targets, in a build directory of their own, compiled with clang and the
# sanitizers (the main build above is gcc and untouched by this).
build_fuzz() {
  FUZZ_DIR=${SLIPWAY_FUZZ_BUILD_DIR:-build-fuzz}
  if [ ! -f "$FUZZ_DIR/build.ninja" ]; then
    echo "==> configuring the fuzz targets ($FUZZ_DIR)"
    cmake -S . -B "$FUZZ_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIPWAY_FUZZ=ON \
      -DCMAKE_CXX_COMPILER=clang++
  fi
  echo "==> building the fuzz targets"
  cmake --build "$FUZZ_DIR" -j "$(nproc)"
}

# The sanitizer build (CMake option SLIPWAY_SANITIZE: AddressSanitizer and
# UndefinedBehaviorSanitizer, any report fatal), in a build directory of its own: the unit and
# end-to-end tests run against it, so that a use after free or a data race on the heap in the
# server, the agent or the CLI fails the suite instead of passing by luck.
build_asan() {
  ASAN_DIR=${SLIPWAY_ASAN_BUILD_DIR:-build-asan}
  if [ ! -f "$ASAN_DIR/build.ninja" ]; then
    echo "==> configuring the sanitizer build ($ASAN_DIR)"
    cmake -S . -B "$ASAN_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLIPWAY_SANITIZE=ON
  fi
  echo "==> building with AddressSanitizer and UndefinedBehaviorSanitizer"
  cmake --build "$ASAN_DIR" -j "$(nproc)"
}

cmd=${1:-}
case "$cmd" in
  demo)
    shift
    setup_packages
    build
    exec "${SLIPWAY_BUILD_DIR:-build}/slipway" demo "$@"
    ;;
  test)
    shift
    setup_packages "$BENCH_PACKAGES $TEST_PACKAGES"
    build
    build_fuzz
    echo "==> running the tests"
    status=0
    (cd "${SLIPWAY_BUILD_DIR:-build}" && ctest --output-on-failure -j "$(nproc)" --timeout 600 "$@") ||
      status=$?
    # Each fuzz target for a few seconds over its seed corpus (fuzz/corpus/<target>).
    echo "==> running the fuzz targets"
    (cd "$FUZZ_DIR" && ctest --output-on-failure -j "$(nproc)") || status=1
    exit "$status"
    ;;
  build)
    setup_packages
    build
    ;;
  *)
    echo "usage: ./run.sh demo | test | build" >&2
    exit 2
    ;;
esac
