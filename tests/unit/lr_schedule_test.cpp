// LrSchedule: the rate is a function of the samples seen, so any world size at the same position gets the same
// rate; the built-in shapes and the warmup ramp.
#include <gtest/gtest.h>

#include <cmath>

#include "core/check.h"
#include "train/lr_schedule.h"

namespace dpt::train {
namespace {

LrScheduleOptions options(const std::string& name) {
  LrScheduleOptions o;
  o.name = name;
  o.base_lr = 0.1;
  return o;
}

TEST(LrSchedule, CosineGoesFromTheBaseRateToZeroOverTheSamples) {
  const LrSchedule schedule(options("cosine"));
  EXPECT_DOUBLE_EQ(schedule.lr({0, 100, 300}), 0.1);
  EXPECT_NEAR(schedule.lr({150, 100, 300}), 0.05, 1e-12);
  EXPECT_NEAR(schedule.lr({300, 100, 300}), 0.0, 1e-12);
  EXPECT_NEAR(schedule.lr({400, 100, 300}), 0.0, 1e-12);  // past the end it stays at 0
}

TEST(LrSchedule, StepDecaysEveryStepEpochsOfSamples) {
  LrScheduleOptions o = options("step");
  o.gamma = 0.5;
  o.step_epochs = 2;
  const LrSchedule schedule(o);
  EXPECT_DOUBLE_EQ(schedule.lr({199, 100, 1000}), 0.1);
  EXPECT_DOUBLE_EQ(schedule.lr({200, 100, 1000}), 0.05);
  EXPECT_DOUBLE_EQ(schedule.lr({450, 100, 1000}), 0.025);
}

TEST(LrSchedule, WarmupRampsUpLinearlyBeforeTheShape) {
  LrScheduleOptions o = options("constant");
  o.warmup_epochs = 0.5;
  const LrSchedule schedule(o);
  EXPECT_NEAR(schedule.lr({0, 100, 1000}), 0.1 * 1 / 50, 1e-12);
  EXPECT_NEAR(schedule.lr({24, 100, 1000}), 0.1 * 25 / 50, 1e-12);
  EXPECT_DOUBLE_EQ(schedule.lr({49, 100, 1000}), 0.1);
  EXPECT_DOUBLE_EQ(schedule.lr({500, 100, 1000}), 0.1);
}

TEST(LrSchedule, UnknownShapeSuggestsTheClosestName) {
  try {
    LrSchedule schedule(options("cosin"));
    FAIL() << "expected a dpt::Error";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("did you mean 'cosine'"), std::string::npos) << e.message();
  }
}

TEST(LrSchedule, UsersRegisterShapesByName) {
  lr_schedules().add("halved", [](const SchedulePosition&, const LrScheduleOptions&) { return 0.5; });
  EXPECT_DOUBLE_EQ(LrSchedule(options("halved")).lr({0, 1, 1}), 0.05);
  EXPECT_THROW(lr_schedules().add("halved", [](const SchedulePosition&, const LrScheduleOptions&) { return 1.0; }),
               Error);
}

}  // namespace
}  // namespace dpt::train
