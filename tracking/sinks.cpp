// make_sinks: the table from sink names in the config to sink factories.
#include "tracking/sinks.h"

#include <algorithm>
#include <filesystem>

#include "core/check.h"
#include "tracking/console_sink.h"
#include "tracking/jsonl_sink.h"
#include "tracking/mlflow_sink.h"
#include "tracking/prometheus_sink.h"
#include "tracking/tensorboard_sink.h"
#include "tracking/wandb_sink.h"

namespace dpt::tracking {
namespace {

struct SinkFactory {
  const char* name;
  std::unique_ptr<Sink> (*make)(const RunInfo& run, std::ostream& console, std::int64_t total_steps,
                                const Config* config);
  bool every_rank = false;  // built on every rank (per-rank endpoints), not only on rank 0
};

const SinkFactory kFactories[] = {
    {"console", [](const RunInfo&, std::ostream& console, std::int64_t total_steps, const Config*) {
       return make_console_sink(console, total_steps);
     }},
    {"jsonl", [](const RunInfo& run, std::ostream&, std::int64_t, const Config*) {
       return make_jsonl_sink((std::filesystem::path(run.dir) / "metrics.jsonl").string());
     }},
    {"mlflow", [](const RunInfo& run, std::ostream&, std::int64_t, const Config* config) {
       DPT_CHECK(config, "the mlflow sink needs the config (tracking.mlflow.uri, tracking.mlflow.experiment)");
       return make_mlflow_sink(run, mlflow_options(*config));
     }},
    {"tensorboard", [](const RunInfo& run, std::ostream&, std::int64_t, const Config*) {
       return make_tensorboard_sink(run.dir);
     }},
    {"wandb", [](const RunInfo& run, std::ostream&, std::int64_t, const Config* config) {
       DPT_CHECK(config, "the wandb sink needs the config (tracking.wandb.python, tracking.wandb.mode)");
       return make_wandb_sink(run, wandb_options(*config));
     }},
    {"prometheus",
     [](const RunInfo& run, std::ostream&, std::int64_t, const Config* config) -> std::unique_ptr<Sink> {
       DPT_CHECK(config, "the prometheus sink needs the config (tracking.prometheus.port, tracking.prometheus.bind)");
       PrometheusOptions options;
       options.bind = config->get_string("tracking.prometheus.bind");
       options.port = static_cast<int>(config->get_int("tracking.prometheus.port"));
       if (options.port != 0) options.port += run.rank;
       return make_prometheus_sink(run, options);
     },
     true},
};

std::string known_sinks_text() {
  std::string text;
  for (const std::string& name : known_sinks()) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

std::vector<std::string> known_sinks() {
  std::vector<std::string> names;
  for (const SinkFactory& factory : kFactories) names.emplace_back(factory.name);
  return names;
}

std::vector<std::unique_ptr<Sink>> make_sinks(const std::vector<std::string>& names, const RunInfo& run,
                                              std::ostream& console, std::int64_t total_steps,
                                              const Config* config) {
  std::vector<std::unique_ptr<Sink>> sinks;
  for (auto name = names.begin(); name != names.end(); ++name) {
    DPT_CHECK(std::find(names.begin(), name, *name) == name, "metric sink '", *name,
              "' is listed twice in tracking.sinks; list each sink once");
    const auto factory = std::find_if(std::begin(kFactories), std::end(kFactories),
                                      [&](const SinkFactory& f) { return *name == f.name; });
    DPT_CHECK(factory != std::end(kFactories), "unknown metric sink '", *name,
              "' in tracking.sinks; known sinks: ", known_sinks_text());
    if (run.rank == 0 || factory->every_rank) sinks.push_back(factory->make(run, console, total_steps, config));
  }
  return sinks;
}

std::vector<ConfigKey> config_keys() {
  using namespace config_key;
  return {
      text_list("tracking.sinks", {"console", "jsonl", "tensorboard"}, "metric sinks", known_sinks()),
      integer("tracking.log_every", 50, 1, 1e9, "record train metrics every N steps"),
      text_list("tracking.tags", {}, "run tags: \"key=value\" or a bare \"label\" (MLflow tags, manifests)"),
      integer("tracking.prometheus.port", 9400, 0, 65535,
              "prometheus sink: rank r serves /metrics on port + r (0: any free port)"),
      text("tracking.prometheus.bind", "127.0.0.1", "prometheus sink: address to listen on (0.0.0.0: every interface)"),
      text("tracking.mlflow.uri", "",
           "MLflow server of the mlflow sink, e.g. http://127.0.0.1:5000 (empty: $MLFLOW_TRACKING_URI)"),
      text("tracking.mlflow.experiment", "dptrain", "MLflow experiment of the run (created when missing)"),
      text("tracking.mlflow.registered_model", "",
           "MLflow registered model that each checkpoint version becomes a version of (empty: no Model Registry)"),
      text("tracking.wandb.python", "",
           "Python that runs the wandb sink's driver; it must import wandb (empty: " + default_wandb_python() +
               ")"),
      text("tracking.wandb.mode", "offline",
           "wandb sink: offline (files in <run dir>/wandb, uploaded later by `wandb sync`) or online (the W&B "
           "server; API key from WANDB_API_KEY or ~/.netrc)",
           {"offline", "online"}),
      text("tracking.wandb.project", "dptrain", "W&B project of the run"),
      text("tracking.wandb.entity", "", "W&B entity (user or team) of the run (empty: the API key's default)"),
  };
}

}  // namespace dpt::tracking
