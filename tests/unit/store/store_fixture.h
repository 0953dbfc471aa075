// A fresh SQLite store in a temporary directory, opened (schema up to date), for one test.
#pragma once

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "store/store.h"
#include "support/temp_dir.h"

namespace slipway::store {

class FreshStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = make_sqlite_store(path());
    ASSERT_TRUE(store_->open());
  }
  std::string path() const { return (dir_.path() / "slipway.db").string(); }

  slipway::testing::TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace slipway::store
