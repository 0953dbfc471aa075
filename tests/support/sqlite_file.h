// Direct access to a SQLite database file for end-to-end tests that play someone who can write
// the server's database (its triggers and all): the sqlite3 C API on its own connection.
#pragma once

#include <string>
#include <vector>

struct sqlite3;

namespace slipway::testing {

class SqliteFile {
 public:
  // Opens `path` read-write; throws std::runtime_error when it cannot.
  explicit SqliteFile(const std::string& path);
  ~SqliteFile();
  SqliteFile(const SqliteFile&) = delete;
  SqliteFile& operator=(const SqliteFile&) = delete;

  // Runs SQL (several statements); throws with SQLite's message when it fails.
  void exec(const std::string& sql);
  // The rows of one query, every column as text ("" for NULL); throws when it fails.
  std::vector<std::vector<std::string>> query(const std::string& sql);

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace slipway::testing
