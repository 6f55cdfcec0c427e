// make_sinks: builds the sinks that the config's tracking.sinks names.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "core/config.h"
#include "tracking/metric_record.h"
#include "tracking/sink.h"

namespace dpt::tracking {

// The names make_sinks accepts, in the order they are listed in errors and help.
std::vector<std::string> known_sinks();

// tracking.*: the sinks (choices: known_sinks()), how often to log, run tags, each sink's own settings.
std::vector<ConfigKey> config_keys();

// Builds the configured sinks by name ("console", "jsonl", "mlflow", "tensorboard", "wandb", "prometheus"); an
// unknown or repeated name throws dpt::Error listing the known sinks. jsonl goes to run.dir + "/metrics.jsonl",
// tensorboard to run.dir/events.out.tfevents.*. Sinks with settings of their own (mlflow: tracking.mlflow.*, wandb:
// tracking.wandb.*, prometheus: tracking.prometheus.*, listening on port + run.rank) read them from `config` and
// throw when it is null.
// Call on every rank: on run.rank != 0 only the per-rank sinks (prometheus) are built, so the result may be empty.
std::vector<std::unique_ptr<Sink>> make_sinks(const std::vector<std::string>& names, const RunInfo& run,
                                              std::ostream& console, std::int64_t total_steps,
                                              const Config* config = nullptr);

}  // namespace dpt::tracking
