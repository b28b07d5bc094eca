#include <gtest/gtest.h>

#include <algorithm>

#include "hyla/util/error.h"
#include "hyla/util/progress.h"

TEST(Progress, HumanUnits) {
  EXPECT_EQ(hyla::human_count(999), "999");
  EXPECT_EQ(hyla::human_count(1500), "1.50K");
  EXPECT_EQ(hyla::human_count(2.5e6), "2.50M");
  EXPECT_EQ(hyla::human_duration(61), "01:01");
  EXPECT_EQ(hyla::human_duration(3661), "1:01:01");
}

// Without a terminal every draw is its own line: reaching the total and then finishing
// with the same figures (as `hyla ppl` does) prints the final line once.
TEST(Progress, FinalLinePrintedOnceWithoutTerminal) {
  auto lines_of = [](const std::string& s) { return std::count(s.begin(), s.end(), '\n'); };
  testing::internal::CaptureStderr();
  {
    hyla::ProgressBar bar("ppl", 100, "tok");
    bar.update(100, "ppl 3.000");
    bar.finish("ppl 3.000");
  }
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines_of(out), 1) << out;
  // A finish that changes the figures still prints its line.
  testing::internal::CaptureStderr();
  {
    hyla::ProgressBar bar("ppl", 100, "tok");
    bar.update(100, "ppl 3.000");
    bar.finish("ppl 2.990");
  }
  out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(lines_of(out), 2) << out;
  EXPECT_NE(out.find("ppl 2.990"), std::string::npos);
}

TEST(Error, FormatsMessage) {
  try {
    hyla::fail("file {}: tensor {} missing", "a.safetensors", "w");
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_STREQ(e.what(), "file a.safetensors: tensor w missing");
  }
}
