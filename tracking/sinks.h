// make_sinks: builds the sinks that the config's tracking.sinks names.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "tracking/metric_record.h"
#include "tracking/sink.h"

namespace dpt::tracking {

// The names make_sinks accepts, in the order they are listed in errors and help.
std::vector<std::string> known_sinks();

// Builds the configured sinks by name ("console", "jsonl"); an unknown or repeated name throws dpt::Error
// listing the known sinks. jsonl goes to run.dir + "/metrics.jsonl". Only call on the rank that logs (rank 0).
std::vector<std::unique_ptr<Sink>> make_sinks(const std::vector<std::string>& names, const RunInfo& run,
                                              std::ostream& console, std::int64_t total_steps);

}  // namespace dpt::tracking
