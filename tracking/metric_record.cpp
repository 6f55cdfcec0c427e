// new_run_id: run ids that sort by start time and do not collide within a second; parse_tags; NaN-safe JSON numbers;
// the config flattened for trackers.
#include "tracking/metric_record.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <random>

#include "core/check.h"
#include "core/utc_time.h"

namespace dpt::tracking {

std::string new_run_id() {
  const std::string stamp = utc_now_text("%Y%m%d-%H%M%S");
  std::random_device entropy;
  const unsigned suffix = std::uniform_int_distribution<unsigned>(0, 0xffffff)(entropy);
  char id[48];
  std::snprintf(id, sizeof(id), "%s-%06x", stamp.c_str(), suffix);
  return id;
}

nlohmann::json json_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return value;
}

double number_from_json(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  const std::string text = value.is_string() ? value.get<std::string>() : "";
  if (text == "Infinity") return std::numeric_limits<double>::infinity();
  if (text == "-Infinity") return -std::numeric_limits<double>::infinity();
  return std::numeric_limits<double>::quiet_NaN();  // "NaN", and anything that is not a number
}

namespace {

void flatten_into(const nlohmann::json& value, const std::string& prefix, nlohmann::json& out) {
  if (value.is_object()) {
    for (const auto& [key, item] : value.items()) flatten_into(item, prefix.empty() ? key : prefix + "." + key, out);
  } else if (!prefix.empty()) {
    out[prefix] = value;
  }
}

}  // namespace

nlohmann::json flatten_config(const nlohmann::json& params) {
  nlohmann::json out = nlohmann::json::object();
  flatten_into(params, "", out);
  return out;
}

std::map<std::string, std::string> parse_tags(const std::vector<std::string>& entries) {
  std::map<std::string, std::string> tags;
  for (const std::string& entry : entries) {
    const std::size_t eq = entry.find('=');
    const std::string key = entry.substr(0, eq);
    DPT_CHECK(!key.empty(), "tracking.tags entry '", entry, "' has no key; write \"key=value\" or a bare \"label\"");
    DPT_CHECK(tags.count(key) == 0, "tracking.tags names '", key, "' twice; give each tag once");
    tags[key] = eq == std::string::npos ? "" : entry.substr(eq + 1);
  }
  return tags;
}

}  // namespace dpt::tracking
