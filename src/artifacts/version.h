// Version ordering for artifact versions.
//
// Two schemes are understood:
//  * SemVer 2.0.0 (https://semver.org/#spec-item-11): MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD];
//    precedence ignores build metadata; numeric identifiers compare numerically and sort before
//    alphanumeric ones; a pre-release sorts before its release; a longer set of pre-release
//    fields wins when all preceding ones are equal.
//  * PEP 440 (https://peps.python.org/pep-0440/): [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local],
//    with the normalisations PEP 440 allows (case, "alpha"/"beta"/"c"/"pre"/"preview",
//    "-"/"_"/"." separators, implicit numbers, "rev"/"r" for post, a leading "v").
//    Order: epoch, release (trailing zeros ignored), then dev < pre < (none) < post, local last.
//
// compare_versions() uses SemVer when both strings are valid SemVer, otherwise PEP 440 when
// both are valid PEP 440, otherwise a "natural" order (digit runs compared as numbers), so that
// any set of strings gets a total, deterministic order.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace slipway::artifacts {

bool is_semver(std::string_view v);
bool is_pep440(std::string_view v);

// < 0 when a sorts before b, 0 when they have equal precedence, > 0 otherwise.
int compare_versions(std::string_view a, std::string_view b);

// Ascending order; versions of equal precedence are ordered by their text, so the result does not
// depend on the input order. compare_versions() chooses its scheme per pair, which is not a strict
// weak order over a set that mixes schemes (for SemVer 1.0.0-1 < 1.0.0, for PEP 440 it is a post
// release above 1.0): sort with this function, not std::sort(compare_versions). It sorts the
// whole set under the first scheme that every element satisfies (SemVer, PEP 440, natural), which
// for a set in one scheme is exactly compare_versions().
void sort_versions(std::vector<std::string>& versions);

// The order sort_versions() would give, as indices into `versions` (for sorting records that
// carry a version: out[0] is the index of the lowest one).
std::vector<size_t> version_order(const std::vector<std::string>& versions);

}  // namespace slipway::artifacts
