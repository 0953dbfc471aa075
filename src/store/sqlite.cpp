#include "store/sqlite.h"

#include <fmt/format.h>
#include <sqlite3.h>

namespace slipway::store {

namespace {
Error sql_error(sqlite3* db, std::string_view what) {
  return err(Errc::io,
             fmt::format("database: {}: {}", what, db ? sqlite3_errmsg(db) : "no connection"));
}
}  // namespace

Statement::~Statement() {
  if (stmt_) sqlite3_reset(stmt_);
}

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    if (stmt_) sqlite3_reset(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    o.stmt_ = nullptr;
  }
  return *this;
}

Statement& Statement::bind(int i, std::string_view v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Statement& Statement::bind(int i, int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Statement& Statement::bind_null(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  if (rc == SQLITE_CONSTRAINT) {
    return err(Errc::conflict, fmt::format("database: {}", sqlite3_errmsg(db_)));
  }
  return sql_error(db_, "step");
}

Status Statement::run() {
  for (;;) {
    auto r = step();
    if (!r) return r.error();
    if (!*r) return {};
  }
}

std::string Statement::text(int col) const {
  const auto* p = sqlite3_column_text(stmt_, col);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

int64_t Statement::i64(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

bool Statement::is_null(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

Database::~Database() {
  for (auto& [sql, stmt] : cache_)
    sqlite3_finalize(stmt);
  if (db_) sqlite3_close_v2(db_);
}

Status Database::open(const std::string& path) {
  const int rc =
      sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return sql_error(db_, "cannot open " + path);
  sqlite3_busy_timeout(db_, 5000);
  // WAL: readers never block the writer; synchronous=NORMAL in WAL mode loses nothing when the
  // process is killed (only an OS crash can lose the last transactions).
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL",
                             "PRAGMA foreign_keys=ON", "PRAGMA temp_store=MEMORY"}) {
    if (auto st = exec(pragma); !st) return st;
  }
  return {};
}

Status Database::exec(std::string_view sql) {
  char* msg = nullptr;
  const std::string s(sql);
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    Error e = err(Errc::io, fmt::format("database: {}", msg ? msg : "error"));
    sqlite3_free(msg);
    return e;
  }
  return {};
}

Result<Statement> Database::prepare(const std::string& sql) {
  auto it = cache_.find(sql);
  sqlite3_stmt* stmt = nullptr;
  if (it == cache_.end()) {
    if (sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()),
                           SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      return sql_error(db_, "prepare");
    }
    cache_.emplace(sql, stmt);
  } else {
    stmt = it->second;
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
  return Statement(db_, stmt);
}

int64_t Database::last_insert_id() const {
  return sqlite3_last_insert_rowid(db_);
}
bool Database::in_transaction() const {
  return sqlite3_get_autocommit(db_) == 0;
}

int Database::changes() const {
  return sqlite3_changes(db_);
}

}  // namespace slipway::store
