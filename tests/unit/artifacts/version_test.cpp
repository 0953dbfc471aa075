#include "artifacts/version.h"

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace slipway::artifacts {
namespace {

int sgn(int v) {
  return (v > 0) - (v < 0);
}

// Every earlier element is strictly below every later one, in both directions of the comparison.
void ExpectStrictlyAscending(const std::vector<std::string>& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(compare_versions(list[i], list[i]), 0) << list[i];
    for (size_t j = i + 1; j < list.size(); ++j) {
      EXPECT_LT(compare_versions(list[i], list[j]), 0) << list[i] << " < " << list[j];
      EXPECT_GT(compare_versions(list[j], list[i]), 0) << list[j] << " > " << list[i];
    }
  }
}

std::vector<std::string> Shuffled(std::vector<std::string> v, unsigned seed) {
  std::mt19937 rng(seed);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

const std::vector<std::string> kSemverSpecOrder = {
    "1.0.0-alpha",  "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
    "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1",       "1.0.0"};

const std::vector<std::string> kPep440Order = {
    "1.0.dev456",    "1.0a1",         "1.0a2.dev456", "1.0a12.dev456",
    "1.0a12",        "1.0b1.dev456",  "1.0b2",        "1.0b2.post345.dev456",
    "1.0b2.post345", "1.0rc1.dev456", "1.0rc1",       "1.0",
    "1.0+abc.5",     "1.0+abc.7",     "1.0+5",        "1.0.post456.dev34",
    "1.0.post456",   "1.0.15",        "1.1.dev1"};

TEST(SemVer, SpecPrecedenceExample) {
  ExpectStrictlyAscending(kSemverSpecOrder);
}

TEST(SemVer, CoreNumbersCompareNumerically) {
  ExpectStrictlyAscending({"0.0.1", "0.1.0", "0.9.0", "0.10.0", "1.0.0", "1.9.9", "1.10.0", "2.0.0",
                           "10.0.0", "10.0.10"});
}

TEST(SemVer, NumbersBeyondSixtyFourBits) {
  EXPECT_LT(compare_versions("1.0.9999999999999999999", "1.0.99999999999999999999"), 0);
  EXPECT_GT(compare_versions("1.0.0-123456789012345678901234", "1.0.0-99999999999999999999"), 0);
}

TEST(SemVer, PreReleaseIdentifierRules) {
  // Numeric identifiers compare numerically and sort below alphanumeric ones.
  EXPECT_LT(compare_versions("1.0.0-2", "1.0.0-10"), 0);
  EXPECT_LT(compare_versions("1.0.0-999", "1.0.0-a"), 0);
  EXPECT_LT(compare_versions("1.0.0-alpha.999", "1.0.0-alpha.a"), 0);
  // Alphanumeric identifiers compare in ASCII order (upper case before lower case).
  EXPECT_LT(compare_versions("1.0.0-Beta", "1.0.0-alpha"), 0);
  // "alpha-2" is one identifier, compared with "alpha" as text: the longer one wins.
  EXPECT_GT(compare_versions("1.0.0-alpha-2", "1.0.0-alpha.2"), 0);
  EXPECT_GT(compare_versions("1.0.0-alpha-2", "1.0.0-alpha"), 0);
  // A pre-release is below its release but above the previous release.
  EXPECT_LT(compare_versions("1.0.0-rc.1", "1.0.0"), 0);
  EXPECT_GT(compare_versions("1.0.0-rc.1", "0.9.9"), 0);
}

TEST(SemVer, BuildMetadataIsIgnoredForPrecedence) {
  EXPECT_EQ(compare_versions("1.0.0+20130313144700", "1.0.0"), 0);
  EXPECT_EQ(compare_versions("1.0.0-beta+exp.sha.5114f85", "1.0.0-beta+other"), 0);
  EXPECT_LT(compare_versions("1.0.0-beta+zzz", "1.0.0+aaa"), 0);
}

TEST(SemVer, Validity) {
  for (const char* v :
       {"0.0.0", "1.2.3", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-0.3.7", "1.0.0-x.7.z.92",
        "1.0.0-x-y-z.--", "1.0.0+20130313144700", "1.0.0-beta+exp.sha.5114f85",
        "1.0.0+21AF26D3----117B344092BD", "1.0.0+001"}) {
    EXPECT_TRUE(is_semver(v)) << v;
  }
  for (const char* v :
       {"",         "1",      "1.0",          "1.2.3.4",    "01.0.0",     "1.02.0", "1.0.00",
        "1.0.0-01", "1.0.0-", "1.0.0+",       "1.0.0-a..b", "1.0.0+a..b", "v1.0.0", "1.0.0-al$pha",
        "1.0.0 ",   " 1.0.0", "1.0.0-beta_1", "a.b.c",      "-1.0.0",     "1.0.0++"}) {
    EXPECT_FALSE(is_semver(v)) << v;
  }
}

TEST(Pep440, SpecExampleOrder) {
  ExpectStrictlyAscending(kPep440Order);
}

TEST(Pep440, EpochWins) {
  EXPECT_GT(compare_versions("1!0.5", "2.0"), 0);
  EXPECT_LT(compare_versions("2.0", "1!0.5"), 0);
  EXPECT_LT(compare_versions("1!2.0", "2!0.1"), 0);
  EXPECT_EQ(compare_versions("0!1.0", "1.0"), 0);
}

TEST(Pep440, TrailingZerosOfTheReleaseAreIgnored) {
  EXPECT_EQ(compare_versions("1.0", "1.0.0"), 0);
  EXPECT_EQ(compare_versions("1", "1.0.0.0"), 0);
  EXPECT_EQ(compare_versions("1.0rc1", "1.0.0rc1"), 0);
  EXPECT_LT(compare_versions("1.0", "1.0.0.1"), 0);
  EXPECT_LT(compare_versions("1.9", "1.10"), 0);
}

TEST(Pep440, Normalisations) {
  const std::vector<std::pair<std::string, std::string>> same = {
      {"1.0a", "1.0a0"},
      {"1.0alpha1", "1.0a1"},
      {"1.0-alpha-1", "1.0a1"},
      {"1.0.beta.2", "1.0b2"},
      {"1.0_b_2", "1.0b2"},
      {"1.0c1", "1.0rc1"},
      {"1.0pre1", "1.0rc1"},
      {"1.0preview1", "1.0rc1"},
      {"1.0RC1", "1.0rc1"},
      {"1.0-1", "1.0.post1"},
      {"1.0r1", "1.0.post1"},
      {"1.0rev1", "1.0.post1"},
      {"1.0.post", "1.0.post0"},
      {"1.0-post-2", "1.0.post2"},
      {"1.0-dev", "1.0.dev0"},
      {"1.0DEV3", "1.0.dev3"},
      {"v1.0", "1.0"},
      {"V2.1", "2.1"},
      {"1.0+Ubuntu-1", "1.0+ubuntu.1"},
      {"1.0+abc_def", "1.0+abc.def"},
      {"1.01", "1.1"},
  };
  for (const auto& [a, b] : same) {
    EXPECT_TRUE(is_pep440(a)) << a;
    EXPECT_EQ(compare_versions(a, b), 0) << a << " == " << b;
    EXPECT_EQ(compare_versions(b, a), 0) << b << " == " << a;
  }
}

TEST(Pep440, PhasesAndLocals) {
  ExpectStrictlyAscending({"1.0.dev0", "1.0.dev1", "1.0a0", "1.0b0", "1.0rc0", "1.0", "1.0+a",
                           "1.0+a.b", "1.0+a.1", "1.0+b", "1.0+0", "1.0+1.a", "1.0+2", "1.0+10",
                           "1.0.post0", "1.0.post0+local", "1.0.post1"});
  // A bare dev release sorts before every pre-release of the same release; a dev release of a
  // post release sorts between the release and the post release.
  EXPECT_LT(compare_versions("1.0.dev5", "1.0a1.dev1"), 0);
  EXPECT_LT(compare_versions("1.0", "1.0.post1.dev1"), 0);
  EXPECT_LT(compare_versions("1.0.post1.dev1", "1.0.post1"), 0);
}

TEST(Pep440, Validity) {
  for (const char* v : {"1", "1.0", "1!1.0", "v1.0", "1.0a1", "1.0.post1", "1.0.dev1",
                        "1.0a1.post2.dev3+local.7", "2013.10", "1.0-1", "1.0+abc", "1.0.0"}) {
    EXPECT_TRUE(is_pep440(v)) << v;
  }
  for (const char* v :
       {"", "a", "1.0+", "1.0-", "1..0", "1.0.", ".1", "1.0a1b2", "1.0+abc_", "1.0+a..b", "1!",
        "!1.0", "1.0 ", "1.0$", "1.0-beta.x", "1.0.0-alpha.beta", "vv1.0", "1.0+ab+cd"}) {
    EXPECT_FALSE(is_pep440(v)) << v;
  }
}

TEST(Pep440, UsedWhenOnlyOneSideIsSemVer) {
  // "1.0.15" is valid SemVer but "1.1.dev1" is not: both are PEP 440, so PEP 440 decides.
  EXPECT_LT(compare_versions("1.0.15", "1.1.dev1"), 0);
  EXPECT_LT(compare_versions("1.0.0", "1.0.1a1"), 0);
  EXPECT_EQ(compare_versions("1.0.0", "1.0"), 0);
}

TEST(NaturalOrder, ForStringsOfNeitherScheme) {
  EXPECT_FALSE(is_pep440("build-9"));
  EXPECT_LT(compare_versions("build-9", "build-10"), 0);
  EXPECT_LT(compare_versions("release_2023_9_x", "release_2023_10_x"), 0);
  EXPECT_EQ(compare_versions("build-007", "build-7"), 0);
  EXPECT_LT(compare_versions("build", "build-1"), 0);  // a prefix sorts first
  EXPECT_LT(compare_versions("1.0.0", "latest"), 0);   // digits before letters
  EXPECT_LT(compare_versions("abc", "abd"), 0);
  EXPECT_LT(compare_versions("x99999999999999999999999", "x100000000000000000000000"), 0);
}

TEST(CompareVersions, IsAntisymmetricOnAMixedSet) {
  const std::vector<std::string> all = {"1.0.0",     "1.0.0-alpha", "1.0.0-1", "1.0",
                                        "1.0.post1", "1!0.1",       "v1.0.0",  "build-7",
                                        "build-07",  "latest",      "",        "1.0.0+b",
                                        "1.0+b",     "2023.10.01",  "0.0.0-0", "1.0rc1"};
  for (const auto& a : all) {
    for (const auto& b : all) {
      EXPECT_EQ(sgn(compare_versions(a, b)), -sgn(compare_versions(b, a))) << a << " vs " << b;
    }
  }
}

TEST(SortVersions, SemVerSpecOrderFromAnyPermutation) {
  for (unsigned seed = 0; seed < 20; ++seed) {
    auto v = Shuffled(kSemverSpecOrder, seed);
    sort_versions(v);
    EXPECT_EQ(v, kSemverSpecOrder) << "seed " << seed;
  }
}

TEST(SortVersions, Pep440OrderFromAnyPermutation) {
  for (unsigned seed = 0; seed < 20; ++seed) {
    auto v = Shuffled(kPep440Order, seed);
    sort_versions(v);
    EXPECT_EQ(v, kPep440Order) << "seed " << seed;
  }
}

TEST(SortVersions, EqualPrecedenceIsOrderedByText) {
  std::vector<std::string> v = {"1.0.0+b", "1.0.0+a", "1.0.0", "0.9.0"};
  sort_versions(v);
  EXPECT_EQ(v, (std::vector<std::string>{"0.9.0", "1.0.0", "1.0.0+a", "1.0.0+b"}));

  std::vector<std::string> p = {"v1.0", "1.0.0", "1.0", "1", "0.9"};
  sort_versions(p);
  EXPECT_EQ(p, (std::vector<std::string>{"0.9", "1", "1.0", "1.0.0", "v1.0"}));
}

TEST(SortVersions, MixedSetsGetOneDeterministicOrder) {
  // A set whose pairwise comparisons would cycle (SemVer: 1.0.0-1 < 1.0.0; PEP 440: 1.0.0 == 1.0
  // < 1.0.0-1) still sorts to one order, whatever the input order.
  const std::vector<std::string> mixed = {"1.0.0-1", "1.0.0", "1.0", "2.0", "0.5.0", "1.0.0-1"};
  auto expected = mixed;
  sort_versions(expected);
  EXPECT_EQ(expected,
            (std::vector<std::string>{"0.5.0", "1.0", "1.0.0", "1.0.0-1", "1.0.0-1", "2.0"}));
  const std::vector<std::string> junk = {
      "latest", "1.0.0-alpha.beta", "build-10", "build-9", "1.0", "", "2.0.0", "v3"};
  auto junk_sorted = junk;
  sort_versions(junk_sorted);
  EXPECT_EQ(junk_sorted, (std::vector<std::string>{"", "1.0", "1.0.0-alpha.beta", "2.0.0",
                                                   "build-9", "build-10", "latest", "v3"}));
  for (unsigned seed = 0; seed < 30; ++seed) {
    auto v = Shuffled(mixed, seed);
    sort_versions(v);
    EXPECT_EQ(v, expected) << "seed " << seed;
    auto j = Shuffled(junk, seed);
    sort_versions(j);
    EXPECT_EQ(j, junk_sorted) << "seed " << seed;
  }
}

TEST(VersionOrder, IndicesOfTheSortedOrder) {
  const std::vector<std::string> v = {"2.0.0", "1.0.0-rc.1", "1.0.0", "0.1.0"};
  EXPECT_EQ(version_order(v), (std::vector<size_t>{3, 1, 2, 0}));
  EXPECT_TRUE(version_order({}).empty());
}

TEST(SortVersions, EmptyAndSingle) {
  std::vector<std::string> none;
  sort_versions(none);
  EXPECT_TRUE(none.empty());
  std::vector<std::string> one = {"x"};
  sort_versions(one);
  EXPECT_EQ(one, std::vector<std::string>{"x"});
}

}  // namespace
}  // namespace slipway::artifacts
