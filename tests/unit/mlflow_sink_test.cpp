// Tests of the mlflow sink without a server: records are spooled in order and nothing is lost or thrown when the
// server is unreachable; log-batch limits; config errors. tests/integration/mlflow_test.sh uses a real server.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "tracking/sinks.h"
#include "core/error.h"
#include "tracking/mlflow_sink.h"

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;

// A loopback port that nothing listens on: bound to get a free number, then closed, so connecting is refused.
int closed_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t size = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
  close(fd);
  return ntohs(address.sin_port);
}

class MlflowSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("dptrain_mlflow_" + new_run_id());
    run_.id = "run-1";
    run_.dir = dir_.string();
    run_.params = {{"train", {{"lr", 0.001}}}};
    options_.uri = "http://127.0.0.1:" + std::to_string(closed_port());
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<nlohmann::json> spool() const {
    std::ifstream in(dir_ / "mlflow-spool.jsonl");
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  fs::path dir_;
  RunInfo run_;
  MlflowOptions options_;
};

TEST_F(MlflowSinkTest, UnreachableServerSpoolsEveryRecordInOrderWithoutThrowing) {
  auto sink = make_mlflow_sink(run_, options_);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  sink->write({{1, 0, 100.0, {{"train/loss", nan}}}, {2, 0, 101.5, {{"train/loss", inf}}}});
  sink->write({{3, 0, 102.0, {{"train/loss", 0.5}}}});
  sink->flush();
  sink->close("FINISHED");

  const auto lines = spool();
  ASSERT_EQ(lines.size(), 4u);  // the run description, two log-batch requests, the final status
  EXPECT_EQ(lines[0]["run"]["id"], "run-1");
  EXPECT_EQ(lines[0]["run"]["params"]["train"]["lr"], 0.001);
  const auto& first = lines[1]["metrics"];
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(first[0]["value"], "NaN");
  EXPECT_EQ(first[0]["step"], 1);
  EXPECT_EQ(first[0]["timestamp"], 100000);
  EXPECT_EQ(first[1]["value"], "Infinity");
  EXPECT_EQ(first[1]["timestamp"], 101500);
  EXPECT_EQ(lines[2]["metrics"][0]["value"], 0.5);
  EXPECT_EQ(lines[3]["status"], "FINISHED");
  EXPECT_FALSE(fs::exists(dir_ / "mlflow-spool.acked"));  // nothing was acknowledged
}

TEST_F(MlflowSinkTest, ARestartedSinkKeepsTheSpoolAndItsRunDescription) {
  make_mlflow_sink(run_, options_)->write({{1, 0, 1.0, {{"a", 1.0}}}});
  auto again = make_mlflow_sink(run_, options_);
  again->write({{2, 0, 2.0, {{"a", 2.0}}}});
  const auto lines = spool();
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].contains("run"));
  EXPECT_EQ(lines[1]["metrics"][0]["step"], 1);
  EXPECT_EQ(lines[2]["metrics"][0]["step"], 2);
}

TEST_F(MlflowSinkTest, RequestsStayWithinTheLogBatchLimitOf1000Metrics) {
  MetricRecord record{7, 0, 1.0, {}};
  for (int i = 0; i < 2500; ++i) record.values["m" + std::to_string(i)] = i;
  make_mlflow_sink(run_, options_)->write({record});
  const auto lines = spool();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1]["metrics"].size(), 1000u);
  EXPECT_EQ(lines[2]["metrics"].size(), 1000u);
  EXPECT_EQ(lines[3]["metrics"].size(), 500u);
}

TEST_F(MlflowSinkTest, APublishedCheckpointIsSpooledInOrderWithItsManifestAliasesAndModel) {
  options_.registered_model = "fashion";
  auto sink = make_mlflow_sink(run_, options_);
  sink->write({{10, 0, 1.0, {{"train/loss", 0.5}}}});
  PublishedCheckpoint published{"v000001", "/ckpt", 10, "{\"step\": 10}\n", "ab12", {{"latest", "v000001"}}};
  sink->checkpoint(published);
  sink->write({{11, 0, 2.0, {{"train/loss", 0.4}}}});

  const auto lines = spool();
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1]["metrics"][0]["step"], 10);
  const auto& checkpoint = lines[2]["checkpoint"];
  EXPECT_EQ(checkpoint["version"], "v000001");
  EXPECT_EQ(checkpoint["store"], "/ckpt");
  EXPECT_EQ(checkpoint["step"], 10);
  EXPECT_EQ(checkpoint["manifest"], "{\"step\": 10}\n");  // the exact bytes, for the artifact
  EXPECT_EQ(checkpoint["manifest_sha256"], "ab12");
  EXPECT_EQ(checkpoint["aliases"]["latest"], "v000001");
  EXPECT_EQ(lines[2]["registered_model"], "fashion");  // a later `runs sync` registers it the same way
  EXPECT_EQ(lines[3]["metrics"][0]["step"], 11);
}

// A config of the tracking library's keys alone.
Config tracking_config(const std::string& toml, const std::vector<std::string>& overrides = {}) {
  return Config::parse(make_schema({tracking::config_keys()}), toml, overrides);
}

TEST_F(MlflowSinkTest, RegisteredModelNameIsReadAndMustFitASearchFilter) {
  const std::string toml = "[tracking]\nmlflow.uri = \"http://127.0.0.1:5000\"\n";
  EXPECT_EQ(mlflow_options(tracking_config(toml)).registered_model, "");  // off by default
  EXPECT_EQ(mlflow_options(tracking_config(toml, {"tracking.mlflow.registered_model=fashion-cnn"})).registered_model,
            "fashion-cnn");
  EXPECT_THROW(mlflow_options(tracking_config(toml, {"tracking.mlflow.registered_model=it's"})), dpt::Error);
}

TEST_F(MlflowSinkTest, ServerIsRequiredAndMustBeHttp) {
  unsetenv("MLFLOW_TRACKING_URI");
  const Config config = tracking_config("");
  EXPECT_THROW(mlflow_options(config), dpt::Error);
  setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000", 1);
  EXPECT_EQ(mlflow_options(config).uri, "http://127.0.0.1:5000");
  EXPECT_EQ(mlflow_options(config).experiment, "dptrain");
  unsetenv("MLFLOW_TRACKING_URI");
  options_.uri = "127.0.0.1:5000";
  EXPECT_THROW(make_mlflow_sink(run_, options_), dpt::Error);
}

}  // namespace
}  // namespace dpt::tracking
