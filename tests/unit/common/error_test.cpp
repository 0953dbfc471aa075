// Errors as values (common/error.h): every code maps to its documented HTTP status and to the
// CLI's exit code contract (0 ok, 1 failed, 2 bad usage or input, 3 unreachable or refused token).
#include "common/error.h"

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway {
namespace {

struct Expected {
  Errc code;
  const char* name;
  int http;
  int exit;
};

// As documented next to each code in error.h.
const std::vector<Expected> kTable = {
    {Errc::invalid_argument, "invalid_argument", 400, 2},
    {Errc::not_found, "not_found", 404, 2},
    {Errc::conflict, "conflict", 409, 2},
    {Errc::unauthenticated, "unauthenticated", 401, 3},
    {Errc::forbidden, "forbidden", 403, 3},
    {Errc::failed_precondition, "failed_precondition", 412, 2},
    {Errc::too_large, "too_large", 413, 2},
    {Errc::unavailable, "unavailable", 503, 3},
    {Errc::timeout, "timeout", 504, 1},
    {Errc::deploy_failed, "deploy_failed", 500, 1},
    {Errc::io, "io", 500, 1},
    {Errc::internal, "internal", 500, 1},
};

TEST(Errc, ExitCodeConstants) {
  EXPECT_EQ(kExitOk, 0);
  EXPECT_EQ(kExitFailed, 1);
  EXPECT_EQ(kExitUsage, 2);
  EXPECT_EQ(kExitUnreachable, 3);
}

TEST(Errc, EveryCodeHasItsDocumentedStatusAndExitCode) {
  for (const auto& e : kTable) {
    EXPECT_EQ(errc_name(e.code), e.name);
    EXPECT_EQ(http_status(e.code), e.http) << e.name;
    EXPECT_EQ(exit_code(e.code), e.exit) << e.name;
  }
  // The table covers every code (internal is the last enumerator).
  EXPECT_EQ(static_cast<size_t>(Errc::internal) + 1, kTable.size());
}

TEST(Errc, ExitCodesFollowTheContract) {
  for (const auto& e : kTable) {
    const int code = exit_code(e.code);
    EXPECT_NE(code, kExitOk) << e.name << ": an error never exits 0";
    if (e.code == Errc::unavailable || e.code == Errc::unauthenticated ||
        e.code == Errc::forbidden) {
      EXPECT_EQ(code, kExitUnreachable) << e.name;
    } else if (e.code == Errc::invalid_argument || e.code == Errc::not_found ||
               e.code == Errc::conflict || e.code == Errc::failed_precondition ||
               e.code == Errc::too_large) {
      EXPECT_EQ(code, kExitUsage) << e.name;
    } else {
      EXPECT_EQ(code, kExitFailed) << e.name;
    }
  }
}

TEST(Errc, NamesRoundTripAndUnknownNamesAreInternal) {
  std::set<std::string_view> names;
  for (const auto& e : kTable) {
    EXPECT_EQ(errc_from_name(errc_name(e.code)), e.code);
    names.insert(errc_name(e.code));
  }
  EXPECT_EQ(names.size(), kTable.size());
  EXPECT_EQ(errc_from_name(""), Errc::internal);
  EXPECT_EQ(errc_from_name("NOT_FOUND"), Errc::internal);
  EXPECT_EQ(errc_from_name("no_such_code"), Errc::internal);
}

TEST(Errc, HttpStatusesMapBack) {
  for (const auto& e : kTable) {
    if (e.http == 500) continue;  // several codes share 500
    EXPECT_EQ(errc_from_http_status(e.http), e.code) << e.name;
  }
  EXPECT_EQ(errc_from_http_status(500), Errc::internal);
  EXPECT_EQ(errc_from_http_status(502), Errc::unavailable);
  EXPECT_EQ(errc_from_http_status(418), Errc::internal);
  EXPECT_EQ(errc_from_http_status(0), Errc::internal);
}

TEST(Result, ValueOfAnErrorThrowsWithTheMessage) {
  Result<int> r = err(Errc::not_found, "no app 'billing'");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::not_found);
  try {
    (void)r.value();
    FAIL() << "value() of an error must throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "not_found: no app 'billing'");
  }
  Result<int> ok = 5;
  EXPECT_EQ(ok.value(), 5);
  Status st = err(Errc::io, "disk full");
  EXPECT_THROW(st.value(), std::runtime_error);
  Status fine;
  EXPECT_TRUE(fine);
}

}  // namespace
}  // namespace slipway
