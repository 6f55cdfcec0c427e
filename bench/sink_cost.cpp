// sink_cost: CPU time per metric record of each sink (console, jsonl, tensorboard, prometheus, and mlflow when
// given a server: `sink_cost --mlflow http://127.0.0.1:5000`) against a sink that does nothing, through a
// MetricHub as in training: the load-independent part of the tracking overhead.
#include <time.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "tracking/console_sink.h"
#include "tracking/jsonl_sink.h"
#include "tracking/metric_hub.h"
#include "tracking/mlflow_sink.h"
#include "tracking/prometheus_sink.h"
#include "tracking/tensorboard_sink.h"

namespace {

using namespace dpt::tracking;

class NullSink final : public Sink {
 public:
  std::string name() const override { return "null"; }
  void write(const std::vector<MetricRecord>&) override {}
  void flush() override {}
  void close(const std::string&) override {}
};

// Process CPU time, so that other load on the machine does not count (the drain thread's time does).
double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// CPU microseconds per record for `records` records of 20 values (what the trainer records per log step),
// each written and flushed before the next.
double us_per_record(const std::vector<std::function<std::unique_ptr<Sink>()>>& makers, int records) {
  std::vector<std::unique_ptr<Sink>> sinks;
  for (const auto& make : makers) sinks.push_back(make());
  MetricHub hub(RunInfo{"bench", "", "", {}, {}, 0}, std::move(sinks), MetricHubOptions{static_cast<std::size_t>(records)});
  const double start = cpu_seconds();
  for (int i = 1; i <= records; ++i) {
    MetricRecord record{i, 0, 1764219662.0 + i, {}};
    for (int v = 0; v < 20; ++v) record.values["train/metric_" + std::to_string(v)] = 0.001 * i * v;
    hub.record(std::move(record));
    hub.flush();  // one record per drain, as in training where records come one log step apart
  }
  hub.close("FINISHED", 60);
  return (cpu_seconds() - start) / records * 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mlflow_uri = argc == 3 && std::string(argv[1]) == "--mlflow" ? argv[2] : "";
  if (argc > 1 && mlflow_uri.empty()) {
    std::fprintf(stderr, "usage: sink_cost [--mlflow URL]\n");
    return 2;
  }
  const std::string dir = (std::filesystem::temp_directory_path() / "dptrain_sink_cost").string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::ostringstream console;
  // Every record is one HTTP request when MLflow is measured, so fewer of them.
  const int records = mlflow_uri.empty() ? 2000 : 300;
  const double base = us_per_record({[] { return std::make_unique<NullSink>(); }}, records);
  std::vector<std::pair<std::string, std::function<std::unique_ptr<Sink>()>>> sinks = {
      {"console", [&] { return make_console_sink(console, records); }},
      {"jsonl", [&] { return make_jsonl_sink(dir + "/metrics.jsonl"); }},
      {"tensorboard", [&] { return make_tensorboard_sink(dir); }},
      {"prometheus", [] { return make_prometheus_sink(RunInfo{"bench", "", "", {}, {}, 0}, PrometheusOptions{"127.0.0.1", 0}); }},
  };
  int run = 0;  // a new MLflow run (and spool) for every measurement
  if (!mlflow_uri.empty()) {
    sinks.emplace_back("mlflow", [&] {
      const std::string run_dir = dir + "/mlflow-" + std::to_string(++run);
      std::filesystem::create_directories(run_dir);
      MlflowOptions options;
      options.uri = mlflow_uri;
      options.experiment = "dptrain-sink-cost";
      return make_mlflow_sink(RunInfo{"sink-cost-" + new_run_id(), "sink_cost", run_dir, {}, {}, 0}, options);
    });
  }
  std::printf("%d records of 20 values, each flushed; CPU time per record (process, all threads)\n", records);
  std::printf("%-12s %12s %10s\n", "sink", "us/record", "ratio");
  std::printf("%-12s %12.2f %10.2f\n", "null", base, 1.0);
  std::vector<std::function<std::unique_ptr<Sink>()>> all;
  for (const auto& [name, make] : sinks) {
    const double us = us_per_record({make}, records);
    std::printf("%-12s %12.2f %10.2f\n", name.c_str(), us, us / base);
    all.push_back(make);
  }
  const double us = us_per_record(all, records);
  std::printf("%-12s %12.2f %10.2f\n", mlflow_uri.empty() ? "all four" : "all five", us, us / base);
  std::filesystem::remove_all(dir);
  return 0;
}
