// The CLI's table and text helpers (what users and scripts read).
#include "cli/output.h"

#include <sstream>

#include <gtest/gtest.h>

namespace slipway::cli {
namespace {

TEST(Table, ColumnsAreAlignedToTheWidestCellAndLinesHaveNoTrailingSpace) {
  Table t({"NODE", "VERSION"});
  t.row({"node-1", "1.0.0"});
  t.row({"a-much-longer-name", "10.2.3"});
  std::ostringstream out;
  t.print(out);
  // Not on a terminal here: no colour codes.
  EXPECT_EQ(out.str(),
            "NODE                VERSION\n"
            "node-1              1.0.0\n"
            "a-much-longer-name  10.2.3\n");
}

TEST(Table, MissingCellsAreEmptyAndWideCharactersCountOnce) {
  Table t({"A", "B", "C"});
  t.row({"✓", "x"});
  t.row({"abc"});
  std::ostringstream out;
  t.print(out);
  EXPECT_EQ(out.str(),
            "A    B  C\n"
            "✓    x\n"
            "abc\n");
}

TEST(DisplayWidth, IgnoresAnsiEscapesAndCountsUtf8Characters) {
  EXPECT_EQ(display_width("healthy"), 7u);
  EXPECT_EQ(display_width("\033[32mhealthy\033[0m"), 7u);
  EXPECT_EQ(display_width("██░░"), 4u);
  EXPECT_EQ(display_width(""), 0u);
}

TEST(HumanBytes, PicksTheUnit) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1024), "1.0 KiB");
  EXPECT_EQ(human_bytes(206438), "201.6 KiB");
  EXPECT_EQ(human_bytes(5ULL << 30), "5.0 GiB");
}

TEST(IndentLines, IndentsAndKeepsTheLastLines) {
  EXPECT_EQ(indent_lines("a\nb\n", 2), "  a\n  b\n");
  EXPECT_EQ(indent_lines("1\n2\n3\n4", 1, 2), " [... 2 more lines]\n 3\n 4\n");
  EXPECT_EQ(indent_lines("", 4), "");
}

}  // namespace
}  // namespace slipway::cli
