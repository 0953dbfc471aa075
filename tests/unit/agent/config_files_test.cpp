#include "agent/config_files.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "support/temp_dir.h"

namespace slipway::agent {
namespace {

mode_t mode_of(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0) << p;
  return st.st_mode & 0777;
}

TEST(ReleaseTemplates, RenderedNextToThemWithMode0600) {
  testing::TempDir dir;
  ASSERT_TRUE(ensure_dir(dir.path() / "config"));
  ASSERT_TRUE(write_file_atomic(dir.path() / "config/app.conf.tmpl", "db={{ DB }}\n", 0644));
  ASSERT_TRUE(write_file_atomic(dir.path() / "config/other.txt", "{{ NOT_RENDERED }}", 0644));
  auto r = render_release_templates(dir.path(), {{"DB", "pg"}});
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(*r, std::vector<std::string>{"config/app.conf"});
  EXPECT_EQ(read_file(dir.path() / "config/app.conf").value(), "db=pg\n");
  EXPECT_EQ(mode_of(dir.path() / "config/app.conf"), 0600u);
  EXPECT_EQ(read_file(dir.path() / "config/other.txt").value(), "{{ NOT_RENDERED }}");
}

TEST(ReleaseTemplates, NoConfigDirectoryIsNothingToDo) {
  testing::TempDir dir;
  auto r = render_release_templates(dir.path(), {});
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->empty());
}

TEST(ReleaseTemplates, OneBadTemplateWritesNothing) {
  testing::TempDir dir;
  ASSERT_TRUE(ensure_dir(dir.path() / "config"));
  ASSERT_TRUE(write_file_atomic(dir.path() / "config/a.tmpl", "{{ DB }}", 0644));
  ASSERT_TRUE(write_file_atomic(dir.path() / "config/b.tmpl", "x\n{{ MISSING }}", 0644));
  auto r = render_release_templates(dir.path(), {{"DB", "pg"}});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("config/b.tmpl"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("line 2, column 1"), std::string::npos) << r.error().message;
  EXPECT_FALSE(fs::exists(dir.path() / "config/a"));
}

TEST(ReleaseTemplates, SymbolicLinksAreRefused) {
  testing::TempDir dir;
  testing::TempDir outside;
  ASSERT_TRUE(write_file_atomic(outside.path() / "x.tmpl", "{{ DB }}", 0644));
  fs::create_directory_symlink(outside.path(), dir.path() / "config");
  EXPECT_FALSE(render_release_templates(dir.path(), {{"DB", "pg"}}));
  EXPECT_FALSE(fs::exists(outside.path() / "x"));
  fs::remove(dir.path() / "config");
  ASSERT_TRUE(ensure_dir(dir.path() / "config"));
  fs::create_symlink(outside.path() / "x.tmpl", dir.path() / "config/y.tmpl");
  EXPECT_FALSE(render_release_templates(dir.path(), {{"DB", "pg"}}));
}

TEST(ReleaseTemplates, AnOutputLinkIsReplacedNotFollowed) {
  testing::TempDir dir;
  testing::TempDir outside;
  ASSERT_TRUE(ensure_dir(dir.path() / "config"));
  ASSERT_TRUE(write_file_atomic(outside.path() / "victim", "untouched", 0644));
  ASSERT_TRUE(write_file_atomic(dir.path() / "config/app.conf.tmpl", "{{ DB }}", 0644));
  fs::create_symlink(outside.path() / "victim", dir.path() / "config/app.conf");
  ASSERT_TRUE(render_release_templates(dir.path(), {{"DB", "pg"}}));
  EXPECT_EQ(read_file(outside.path() / "victim").value(), "untouched");
  EXPECT_FALSE(fs::is_symlink(dir.path() / "config/app.conf"));
  EXPECT_EQ(read_file(dir.path() / "config/app.conf").value(), "pg");
}

}  // namespace
}  // namespace slipway::agent
