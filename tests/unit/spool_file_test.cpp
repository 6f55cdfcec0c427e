// Tests of SpoolFile, the spool the MLflow and W&B sinks write ahead into: order, reopening, a crash's cut line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tracking/metric_record.h"
#include "tracking/spool_file.h"

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class SpoolFileTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fs::path(::testing::TempDir()) / ("dptrain_spool_" + new_run_id()); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(SpoolFileTest, TheFirstLineIsTheHeaderAndEntriesKeepTheirOrderAcrossReopening) {
  {
    SpoolFile spool(dir_.string(), "test-spool");
    EXPECT_TRUE(spool.header().is_null());
    spool.append({{{"run", {{"id", "r"}}}}, {{"n", 0}}, {{"n", 1}}});
    EXPECT_EQ(spool.entries(), 2);
  }
  SpoolFile spool(dir_.string(), "test-spool");
  EXPECT_EQ(spool.header()["run"]["id"], "r");
  spool.append({{{"n", 2}}});
  EXPECT_EQ(spool.entries(), 3);
  const auto entries = spool.read_entries(1);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0]["n"], 1);
  EXPECT_EQ(entries[1]["n"], 2);
  EXPECT_EQ(spool.path(), (dir_ / "test-spool.jsonl").string());
}

// A crash mid-append leaves a line without its end: it is skipped, and the next line does not join it.
TEST_F(SpoolFileTest, ALineCutShortByACrashIsSkippedAndKeptApartFromTheNext) {
  {
    SpoolFile spool(dir_.string(), "test-spool");
    spool.append({{{"run", {{"id", "r"}}}}, {{"n", 0}}});
  }
  std::ofstream(dir_ / "test-spool.jsonl", std::ios::app) << R"({"n": 1, "cut)";
  SpoolFile spool(dir_.string(), "test-spool");
  EXPECT_EQ(spool.entries(), 1);
  spool.append({{{"n", 2}}});
  const auto entries = spool.read_entries(0);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[1]["n"], 2);
}

TEST_F(SpoolFileTest, AckedCountsWhatTheFirstLineSaysAndIsReplacedWhole) {
  SpoolFile spool(dir_.string(), "test-spool");
  EXPECT_EQ(spool.read_acked(), 0);
  spool.write_acked(5);
  EXPECT_EQ(spool.read_acked(), 5);
  std::ofstream(dir_ / "test-spool.acked") << "7\nopen spool-7\n";  // as the W&B driver writes it
  EXPECT_EQ(spool.read_acked(), 7);
}

TEST_F(SpoolFileTest, ASpoolThatDoesNotDescribeItsRunIsRefused) {
  fs::create_directories(dir_);
  std::ofstream(dir_ / "test-spool.jsonl") << R"({"n": 0})" << '\n';
  EXPECT_THROW(SpoolFile(dir_.string(), "test-spool"), dpt::Error);
}

TEST(FlattenConfig, NestedTablesBecomeDottedKeysAndValuesKeepTheirType) {
  const json flat = flatten_config({{"train", {{"lr", 0.001}, {"epochs", 2}}}, {"data", {{"files", {"a", "b"}}}}});
  EXPECT_EQ(flat, (json{{"train.lr", 0.001}, {"train.epochs", 2}, {"data.files", {"a", "b"}}}));
  EXPECT_EQ(flatten_config(3), json::object());
}

}  // namespace
}  // namespace dpt::tracking
