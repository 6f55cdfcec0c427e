// MetricRecord and RunInfo: what the trainer hands to the MetricHub, and the run the metrics belong to.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace dpt::tracking {

struct MetricRecord {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  double time = 0;                        // unix seconds
  std::map<std::string, double> values;   // "train/loss", "train/samples_per_s", "eval/accuracy", ...
};

struct RunInfo {
  std::string id;
  std::string name;
  std::string dir;
  nlohmann::json params;
};

// A run id that sorts by start time and does not collide between runs started in the same second,
// e.g. "20261127-050102-a1b2c3" (UTC time + 6 random hex digits).
std::string new_run_id();

}  // namespace dpt::tracking
