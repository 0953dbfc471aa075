// A thin RAII layer over SQLite's C API: a connection and prepared statements with typed binds.
// Errors become Errc::io with SQLite's message. Not thread-safe: one connection per thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/error.h"

struct sqlite3;
struct sqlite3_stmt;

namespace slipway::store {

// A handle on a cached statement. It resets the statement when it goes out of scope, so that a
// read that stopped early (one row of several) does not keep a read transaction open: that would
// pin the write-ahead log, which could then never be checkpointed and reset.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, std::string_view v);
  // Without this, a string literal would bind as bool (pointer to bool beats a conversion to
  // string_view in overload resolution) and be stored as 1.
  Statement& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<int64_t>(v)); }
  Statement& bind(int i, bool v) { return bind(i, static_cast<int64_t>(v ? 1 : 0)); }
  Statement& bind_null(int i);

  // Advances: true when a row is available, false when done; an io error otherwise.
  Result<bool> step();
  Status run();  // steps to the end

  std::string text(int col) const;
  int64_t i64(int col) const;
  bool is_null(int col) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;  // owned by the Database's cache
};

class Database {
 public:
  Database() = default;
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Opens (creating) the file with WAL journaling, foreign keys and a busy timeout.
  Status open(const std::string& path);
  Status exec(std::string_view sql);
  // A cached prepared statement, reset and with its bindings cleared.
  Result<Statement> prepare(const std::string& sql);
  int64_t last_insert_id() const;
  int changes() const;
  // Whether a transaction is open (BEGIN without its COMMIT or ROLLBACK yet).
  bool in_transaction() const;

 private:
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> cache_;
};

}  // namespace slipway::store
