#include <gtest/gtest.h>

#include "hyla/util/error.h"
#include "hyla/util/progress.h"

TEST(Progress, HumanUnits) {
  EXPECT_EQ(hyla::human_count(999), "999");
  EXPECT_EQ(hyla::human_count(1500), "1.50K");
  EXPECT_EQ(hyla::human_count(2.5e6), "2.50M");
  EXPECT_EQ(hyla::human_duration(61), "01:01");
  EXPECT_EQ(hyla::human_duration(3661), "1:01:01");
}

TEST(Error, FormatsMessage) {
  try {
    hyla::fail("file {}: tensor {} missing", "a.safetensors", "w");
    FAIL();
  } catch (const hyla::Error& e) {
    EXPECT_STREQ(e.what(), "file a.safetensors: tensor w missing");
  }
}
