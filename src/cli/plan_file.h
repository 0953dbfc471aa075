// The file of `slipway deploy -f deploy.yaml`: a plan of stages run in order (see docs/plans.md).
//
//   app: web          # default for every stage
//   version: 1.4.2    # default (else the newest)
//   env: production
//   stages:
//     - name: migrate
//       app: web-migrator
//       role: migrator
//       strategy: all
//     - name: api
//       role: api
//       strategy: canary
//       batch: 25%
//       approve: true   # after this stage, wait for `slipway promote pN`
//     - name: worker
//       role: worker
//       wait: 5m        # (on a stage that is not the last) after it, wait this long
//
// It becomes the JSON body of POST /api/v1/plans. Everything that can be checked without the
// server is checked here, each error naming the file and line ("deploy.yaml line 12: ..."); the
// server checks everything again.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/json.h"

namespace slipway::cli {

inline constexpr size_t kMaxPlanStages = 20;

// `name` is how errors call the file ("deploy.yaml").
Result<json::object> parse_plan_file(std::string_view yaml_text, std::string_view name);
// Reads and parses the file (at most 1 MiB).
Result<json::object> load_plan_file(const std::filesystem::path& file);

}  // namespace slipway::cli
