// SQL that takes a database of the current schema back to what version 1 of it was, for the tests
// that check that an old database upgrades. Every migration after the first adds its undo here.
#pragma once

namespace slipway::store {

inline constexpr const char* kBackToSchemaVersion1 =
    "DROP TABLE freezes; ALTER TABLE deploys DROP COLUMN forced_freeze; "  // 2
    "DROP TABLE deploy_log; ALTER TABLE deploys DROP COLUMN options; "     // 3
    "ALTER TABLE deploy_nodes DROP COLUMN canary; "                        // 3
    "DROP TABLE run_nodes; DROP TABLE runs; "                              // 4
    "DROP TABLE quarantines; DROP TABLE desired; "                         // 5
    "DROP TABLE plans; "                                                   // 6
    "DROP TABLE config_versions; DROP TABLE config_entries; "              // 7
    "DROP TABLE audit; DROP TABLE tokens; "                                // 8
    "DROP TABLE node_credentials; "                                        // 9
    "DROP TABLE notify_deliveries; DROP TABLE notify_hooks; "              // 10
    "DROP TABLE environments; DROP TABLE join_tokens; "                    // 11
    "ALTER TABLE artifacts DROP COLUMN claimed_user; "                     // 12
    "PRAGMA user_version = 1";

}  // namespace slipway::store
