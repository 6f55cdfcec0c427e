// Tests of dptrain::tracking: the MetricHub's delivery guarantees, the JSONL file, console lines, make_sinks.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tracking/console_sink.h"
#include "tracking/jsonl_sink.h"
#include "tracking/metric_hub.h"
#include "tracking/sinks.h"

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A gate that a sink waits on; the wait times out so that a hub bug fails the test instead of hanging it.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(3), [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

// What a MemorySink saw; shared with the test because the sink itself belongs to the hub.
struct SinkLog {
  std::mutex mutex;
  std::vector<MetricRecord> records;
  std::vector<std::string> events;  // "step N" per record and "checkpoint vN", in the order the sink saw them
  int writes = 0;
  int flushes = 0;
  std::string closed_with;
  std::shared_ptr<Gate> gate;  // when set, every write waits for it first
  bool throw_on_write = false;

  std::size_t size() {
    std::lock_guard<std::mutex> lock(mutex);
    return records.size();
  }
};

class MemorySink final : public Sink {
 public:
  MemorySink(std::shared_ptr<SinkLog> log, std::string name) : log_(std::move(log)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  void write(const std::vector<MetricRecord>& records) override {
    if (log_->gate) log_->gate->wait();
    std::lock_guard<std::mutex> lock(log_->mutex);
    ++log_->writes;
    if (log_->throw_on_write) throw std::runtime_error("disk on fire");
    log_->records.insert(log_->records.end(), records.begin(), records.end());
    for (const MetricRecord& record : records) log_->events.push_back("step " + std::to_string(record.step));
  }
  void checkpoint(const PublishedCheckpoint& published) override {
    std::lock_guard<std::mutex> lock(log_->mutex);
    log_->events.push_back("checkpoint " + published.version);
  }
  void flush() override {
    std::lock_guard<std::mutex> lock(log_->mutex);
    ++log_->flushes;
  }
  void close(const std::string& status) override {
    std::lock_guard<std::mutex> lock(log_->mutex);
    log_->closed_with = status;
  }

 private:
  std::shared_ptr<SinkLog> log_;
  std::string name_;
};

std::unique_ptr<Sink> memory_sink(const std::shared_ptr<SinkLog>& log, const std::string& name = "memory") {
  return std::make_unique<MemorySink>(log, name);
}

MetricRecord train_record(std::int64_t step, double loss) {
  MetricRecord record;
  record.step = step;
  record.epoch = 1 + step / 100;
  record.time = 1764219662.125 + static_cast<double>(step);
  record.values = {{"train/loss", loss}, {"train/samples_per_s", 1834.25}};
  return record;
}

// A fresh directory per test, removed afterwards.
class TrackingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) / ("dptrain_tracking_" + new_run_id());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
    std::ifstream in(path);
    std::vector<nlohmann::json> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  }

  fs::path dir_;
};

TEST_F(TrackingTest, EveryRecordReachesTheJsonlFileInOrder) {
  const fs::path path = dir_ / "nested" / "run" / "metrics.jsonl";
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(make_jsonl_sink(path.string()));
    MetricHub hub(RunInfo{"id", "name", dir_.string(), {}}, std::move(sinks));
    for (int step = 0; step < 500; ++step) hub.record(train_record(step, 1.0 / (step + 1)));
    hub.close("FINISHED");
    EXPECT_EQ(hub.dropped(), 0);
  }
  const auto lines = read_jsonl(path);
  ASSERT_EQ(lines.size(), 500u);
  for (int step = 0; step < 500; ++step) {
    const auto& line = lines[step];
    const MetricRecord expected = train_record(step, 1.0 / (step + 1));
    EXPECT_EQ(line.at("step").get<std::int64_t>(), expected.step);
    EXPECT_EQ(line.at("epoch").get<std::int64_t>(), expected.epoch);
    EXPECT_DOUBLE_EQ(line.at("time").get<double>(), expected.time);
    EXPECT_DOUBLE_EQ(line.at("train/loss").get<double>(), expected.values.at("train/loss"));
    EXPECT_DOUBLE_EQ(line.at("train/samples_per_s").get<double>(), 1834.25);
    EXPECT_EQ(line.size(), 5u);
  }
}

TEST_F(TrackingTest, JsonlAppendsToAnExistingFileAndPutsStepEpochTimeFirst) {
  const fs::path path = dir_ / "metrics.jsonl";
  for (int run = 0; run < 2; ++run) {
    auto sink = make_jsonl_sink(path.string());
    sink->write({train_record(run, 0.5)});
    sink->close("FINISHED");
  }
  std::ifstream in(path);
  std::string first;
  std::getline(in, first);
  EXPECT_EQ(first.rfind(R"({"step":0,"epoch":1,"time":)", 0), 0u) << first;
  EXPECT_EQ(read_jsonl(path).size(), 2u);
}

TEST_F(TrackingTest, NonFiniteValuesAreWrittenAsValidJson) {
  const fs::path path = dir_ / "metrics.jsonl";
  auto sink = make_jsonl_sink(path.string());
  MetricRecord record;
  record.step = 7;
  record.values = {{"train/loss", std::nan("")},
                   {"train/grad_norm", std::numeric_limits<double>::infinity()},
                   {"train/min", -std::numeric_limits<double>::infinity()},
                   {"train/lr", 0.001}};
  sink->write({record});
  sink->flush();

  const auto lines = read_jsonl(path);  // parse() throws on invalid JSON
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].at("train/loss"), "NaN");
  EXPECT_EQ(lines[0].at("train/grad_norm"), "Infinity");
  EXPECT_EQ(lines[0].at("train/min"), "-Infinity");
  EXPECT_DOUBLE_EQ(lines[0].at("train/lr").get<double>(), 0.001);
  sink->close("FINISHED");
}

TEST_F(TrackingTest, JsonlFlushPutsTheLinesOnDisk) {
  const fs::path path = dir_ / "metrics.jsonl";
  auto sink = make_jsonl_sink(path.string());
  sink->write({train_record(1, 0.5), train_record(2, 0.25)});
  sink->flush();
  EXPECT_EQ(read_jsonl(path).size(), 2u);
  sink->close("FINISHED");
}

TEST_F(TrackingTest, ThrowingSinkIsReportedOnceAndDoesNotStopTheOthers) {
  auto good = std::make_shared<SinkLog>();
  auto bad = std::make_shared<SinkLog>();
  bad->throw_on_write = true;
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(memory_sink(bad, "broken"));
  sinks.push_back(memory_sink(good));
  ::testing::internal::CaptureStderr();
  {
    MetricHub hub(RunInfo{}, std::move(sinks));
    for (int step = 0; step < 20; ++step) {
      hub.record(train_record(step, 0.1));
      if (step % 5 == 0) hub.flush();
    }
    hub.flush();
    EXPECT_EQ(good->size(), 20u);
    hub.close("FINISHED");
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(bad->writes, 1) << "a failed sink must be disabled, not called again";
  EXPECT_EQ(bad->closed_with, "");
  EXPECT_EQ(good->closed_with, "FINISHED");
  EXPECT_NE(err.find("sink 'broken' failed in write"), std::string::npos) << err;
  EXPECT_NE(err.find("disk on fire"), std::string::npos) << err;
  EXPECT_EQ(err.find("broken", err.find("broken") + 1), std::string::npos) << "reported more than once: " << err;
}

// A hub with one MemorySink whose writes wait until the test opens log->gate.
std::unique_ptr<MetricHub> hub_with_gated_sink(const std::shared_ptr<SinkLog>& log) {
  log->gate = std::make_shared<Gate>();
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(memory_sink(log));
  return std::make_unique<MetricHub>(RunInfo{}, std::move(sinks));
}

TEST_F(TrackingTest, FlushWaitsUntilEverySinkHasWrittenAndFlushed) {
  auto log = std::make_shared<SinkLog>();
  auto hub = hub_with_gated_sink(log);
  for (int step = 0; step < 50; ++step) hub->record(train_record(step, 0.1));

  std::thread opener([gate = log->gate] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    gate->open();
  });
  const auto start = Clock::now();
  hub->flush();
  const auto waited = Clock::now() - start;
  opener.join();
  EXPECT_EQ(log->size(), 50u);
  EXPECT_GE(log->flushes, 1);
  EXPECT_GE(waited, std::chrono::milliseconds(150)) << "flush() returned before the sink was done";
}

TEST_F(TrackingTest, CheckpointsReachTheSinksInOrderWithTheRecords) {
  auto log = std::make_shared<SinkLog>();
  auto hub = hub_with_gated_sink(log);
  hub->record(train_record(1, 0.5));  // the sink blocks on it, so what follows is drained as one batch
  PublishedCheckpoint published;
  published.version = "v000001";
  hub->checkpoint(published);
  hub->record(train_record(2, 0.4));
  published.version = "v000002";
  hub->checkpoint(published);
  log->gate->open();
  hub->flush();
  EXPECT_EQ(log->events,
            (std::vector<std::string>{"step 1", "checkpoint v000001", "step 2", "checkpoint v000002"}));
}

TEST_F(TrackingTest, RecordDoesNotWaitForASlowSink) {
  auto log = std::make_shared<SinkLog>();
  log->gate = std::make_shared<Gate>();  // the sink is stuck in write() until the gate opens (or 3 s)
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(memory_sink(log));
  MetricHub hub(RunInfo{}, std::move(sinks));

  const auto start = Clock::now();
  for (int step = 0; step < 1000; ++step) hub.record(train_record(step, 0.1));
  const auto took = Clock::now() - start;
  log->gate->open();
  EXPECT_LT(took, std::chrono::milliseconds(1000)) << "record() waited for the sink";

  hub.flush();
  ASSERT_EQ(log->size(), 1000u);
  for (int step = 0; step < 1000; ++step) EXPECT_EQ(log->records[step].step, step);
  EXPECT_EQ(hub.dropped(), 0);
}

TEST_F(TrackingTest, FullQueueDropsTheOldestAndCountsThem) {
  auto log = std::make_shared<SinkLog>();
  log->gate = std::make_shared<Gate>();
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(memory_sink(log));
  MetricHubOptions options;
  options.capacity = 10;
  MetricHub hub(RunInfo{}, std::move(sinks), options);
  for (int step = 0; step < 100; ++step) hub.record(train_record(step, 0.1));
  log->gate->open();
  hub.flush();

  // The drain thread may have taken a few records before the queue filled; the newest ten always arrive.
  EXPECT_GE(hub.dropped(), 80);
  EXPECT_EQ(static_cast<std::int64_t>(log->size()) + hub.dropped(), 100);
  ASSERT_GE(log->size(), 10u);
  EXPECT_EQ(log->records.back().step, 99);
  EXPECT_EQ(log->records[log->size() - 10].step, 90);

  ::testing::internal::CaptureStderr();
  hub.close("FINISHED");
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find(std::to_string(hub.dropped()) + " records were dropped"), std::string::npos) << err;
}

TEST_F(TrackingTest, CloseGivesUpAtTheDeadlineAndSaysWhatWasNotWritten) {
  auto log = std::make_shared<SinkLog>();
  log->gate = std::make_shared<Gate>();
  std::vector<std::unique_ptr<Sink>> sinks;
  sinks.push_back(memory_sink(log, "stuck"));
  MetricHub hub(RunInfo{}, std::move(sinks));
  for (int step = 0; step < 5; ++step) hub.record(train_record(step, 0.1));

  ::testing::internal::CaptureStderr();
  const auto start = Clock::now();
  hub.close("FAILED", 0.2);
  const auto took = Clock::now() - start;
  const std::string err = ::testing::internal::GetCapturedStderr();
  log->gate->open();  // lets the abandoned drain thread finish

  EXPECT_LT(took, std::chrono::milliseconds(1500));
  EXPECT_NE(err.find("records were not written"), std::string::npos) << err;
  EXPECT_NE(err.find("sink 'stuck'"), std::string::npos) << err;
}

TEST_F(TrackingTest, CloseAndDestructorCloseTheSinksWithTheStatus) {
  auto failed = std::make_shared<SinkLog>();
  auto finished = std::make_shared<SinkLog>();
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(memory_sink(failed));
    MetricHub hub(RunInfo{}, std::move(sinks));
    hub.record(train_record(1, 0.1));
    hub.close("FAILED");
    hub.record(train_record(2, 0.1));
    EXPECT_EQ(hub.dropped(), 1);
  }
  {
    std::vector<std::unique_ptr<Sink>> sinks;
    sinks.push_back(memory_sink(finished));
    MetricHub hub(RunInfo{"abc", "demo", "", {}}, std::move(sinks));
    EXPECT_EQ(hub.run().id, "abc");
    hub.record(train_record(1, 0.1));
  }
  EXPECT_EQ(failed->closed_with, "FAILED");
  EXPECT_EQ(failed->size(), 1u);
  EXPECT_EQ(finished->closed_with, "FINISHED");
  EXPECT_EQ(finished->size(), 1u);
}

TEST(ConsoleSinkTest, TrainLinesShowProgressRateAndEta) {
  std::ostringstream out;
  auto sink = make_console_sink(out, 1000);
  MetricRecord first = train_record(100, 0.5);
  first.epoch = 1;
  first.time = 5000;
  MetricRecord second = first;
  second.step = 200;
  second.time = 5010;  // 10 steps/s, 800 steps left
  second.values = {{"train/loss", 0.4123}, {"train/samples_per_s", 1834.2}, {"train/lr", 0.001},
                   {"train/grad_norm", 1.5}};  // not a console value
  sink->write({first, second});

  std::istringstream lines(out.str());
  std::string line1, line2;
  std::getline(lines, line1);
  std::getline(lines, line2);
  EXPECT_EQ(line1, "step   100/1000 | epoch 1 | loss 0.5000 | 1834 samples/s");
  EXPECT_EQ(line2, "step   200/1000 | epoch 1 | loss 0.4123 | 1834 samples/s | lr 0.001 | ETA 1m20s");
}

TEST(ConsoleSinkTest, WithoutTotalStepsThereIsNoTotalAndNoEta) {
  std::ostringstream out;
  auto sink = make_console_sink(out, 0);
  MetricRecord record = train_record(400, 0.4123);
  record.epoch = 1;
  MetricRecord later = record;
  later.step = 500;
  later.time += 10;
  sink->write({record, later});
  EXPECT_EQ(out.str(),
            "step   400 | epoch 1 | loss 0.4123 | 1834 samples/s\n"
            "step   500 | epoch 1 | loss 0.4123 | 1834 samples/s\n");
}

TEST(ConsoleSinkTest, EvalLine) {
  std::ostringstream out;
  auto sink = make_console_sink(out, 2814);
  MetricRecord record;
  record.epoch = 1;
  record.values = {{"eval/loss", 0.3312}, {"eval/accuracy", 0.8807}};
  sink->write({record});
  EXPECT_EQ(out.str(), "eval  epoch 1 | loss 0.3312 | accuracy 0.8807\n");
}

TEST(ConsoleSinkTest, RecordsWithoutLossOrAccuracyAreNotPrinted) {
  std::ostringstream out;
  auto sink = make_console_sink(out, 10);
  MetricRecord record;
  record.step = 10;
  record.values = {{"checkpoint/stall_s", 0.2}};
  sink->write({record});
  EXPECT_EQ(out.str(), "");
}

TEST_F(TrackingTest, MakeSinksBuildsConsoleAndJsonlInTheRunDir) {
  std::ostringstream console;
  RunInfo run{"id", "name", (dir_ / "run").string(), {}};
  auto sinks = make_sinks({"console", "jsonl"}, run, console, 10);
  ASSERT_EQ(sinks.size(), 2u);
  EXPECT_EQ(sinks[0]->name(), "console");
  EXPECT_EQ(sinks[1]->name(), "jsonl");
  EXPECT_TRUE(fs::exists(dir_ / "run" / "metrics.jsonl"));
  EXPECT_EQ(known_sinks(),
            (std::vector<std::string>{"console", "jsonl", "mlflow", "tensorboard", "wandb", "prometheus"}));
}

TEST_F(TrackingTest, UnknownOrRepeatedSinkNameIsAnErrorListingKnownSinks) {
  std::ostringstream console;
  const RunInfo run{"id", "name", dir_.string(), {}};
  try {
    make_sinks({"console", "mlfow"}, run, console, 10);
    FAIL() << "unknown sink accepted";
  } catch (const dpt::Error& e) {
    EXPECT_NE(e.message().find("unknown metric sink 'mlfow'"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("console, jsonl"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_sinks({"console", "console"}, run, console, 10), dpt::Error);
}

TEST_F(TrackingTest, UnwritableJsonlPathIsAnErrorNamingThePath) {
  const fs::path file = dir_ / "not_a_dir";
  std::ofstream(file) << "x";
  for (const fs::path& path : {file / "metrics.jsonl", dir_}) {
    try {
      make_jsonl_sink(path.string());
      FAIL() << "opened " << path;
    } catch (const dpt::Error& e) {
      EXPECT_NE(e.message().find(path.string()), std::string::npos) << e.what();
    }
  }
}

TEST(RunIdTest, SortsByUtcTimeAndEndsInRandomHex) {
  const std::string id = new_run_id();
  const std::regex format("20[0-9]{2}[01][0-9][0-3][0-9]-[0-2][0-9][0-5][0-9][0-6][0-9]-[0-9a-f]{6}");
  EXPECT_TRUE(std::regex_match(id, format)) << id;
  EXPECT_NE(new_run_id(), new_run_id());
}

}  // namespace
}  // namespace dpt::tracking
