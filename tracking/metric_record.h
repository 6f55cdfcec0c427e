// MetricRecord and RunInfo: what the trainer hands to the MetricHub, and the run the metrics belong to.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dpt::tracking {

struct MetricRecord {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  double time = 0;                        // unix seconds
  std::map<std::string, double> values;   // "train/loss", "train/samples_per_s", "eval/accuracy", ...
};

// Shared by every sink of a run (and written into checkpoint manifests by the trainer).
struct RunInfo {
  std::string id;
  std::string name;
  std::string dir;
  nlohmann::json params;                    // the resolved config
  std::map<std::string, std::string> tags{};  // from tracking.tags: "key=value", or "label" -> {"label", ""}
  int rank = 0;                             // the rank whose hub this is; per-rank sinks label with it
};

// A run id that sorts by start time and does not collide between runs started in the same second,
// e.g. "20261127-050102-a1b2c3" (UTC time + 6 random hex digits).
std::string new_run_id();

// JSON has no NaN or Infinity: they are written as the strings "NaN", "Infinity", "-Infinity", which Python's
// json module, pandas and MLflow's REST API (protobuf JSON) all read back as floats. number_from_json reverses it.
nlohmann::json json_number(double value);
double number_from_json(const nlohmann::json& value);

// The resolved config one level deep, as MLflow params and W&B's config take it: {"train": {"lr": 0.001}} ->
// {"train.lr": 0.001}; lists and other values stay as they are. A value with no key (params that are not an
// object) is left out: neither takes an empty name.
nlohmann::json flatten_config(const nlohmann::json& params);

// tracking.tags entries to RunInfo::tags: "key=value" -> {key, value}, a bare "label" -> {label, ""}.
// Throws dpt::Error for an empty key ("=value") or a key given twice.
std::map<std::string, std::string> parse_tags(const std::vector<std::string>& entries);

}  // namespace dpt::tracking
