#include "support/sqlite_file.h"

#include <stdexcept>

#include <sqlite3.h>

namespace slipway::testing {

SqliteFile::SqliteFile(const std::string& path) : path_(path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    const std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close_v2(db_);
    db_ = nullptr;
    throw std::runtime_error("cannot open " + path + ": " + why);
  }
  sqlite3_busy_timeout(db_, 10'000);
}

SqliteFile::~SqliteFile() {
  if (db_) sqlite3_close_v2(db_);
}

void SqliteFile::exec(const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    const std::string why = msg ? msg : "error";
    sqlite3_free(msg);
    throw std::runtime_error(path_ + ": " + sql.substr(0, 200) + ": " + why);
  }
}

std::vector<std::vector<std::string>> SqliteFile::query(const std::string& sql) {
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) {
    throw std::runtime_error(path_ + ": " + sql.substr(0, 200) + ": " + sqlite3_errmsg(db_));
  }
  std::vector<std::vector<std::string>> rows;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    std::vector<std::string> row;
    for (int c = 0; c < sqlite3_column_count(st); ++c) {
      const auto* p = sqlite3_column_text(st, c);
      row.emplace_back(p ? reinterpret_cast<const char*>(p) : "");
    }
    rows.push_back(std::move(row));
  }
  sqlite3_finalize(st);
  if (rc != SQLITE_DONE) throw std::runtime_error(path_ + ": " + sqlite3_errmsg(db_));
  return rows;
}

}  // namespace slipway::testing
