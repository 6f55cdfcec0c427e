// make_sinks: the table from sink names in the config to sink factories.
#include "tracking/sinks.h"

#include <algorithm>
#include <filesystem>

#include "core/check.h"
#include "tracking/console_sink.h"
#include "tracking/jsonl_sink.h"

namespace dpt::tracking {
namespace {

struct SinkFactory {
  const char* name;
  std::unique_ptr<Sink> (*make)(const RunInfo& run, std::ostream& console, std::int64_t total_steps);
};

const SinkFactory kFactories[] = {
    {"console", [](const RunInfo&, std::ostream& console, std::int64_t total_steps) {
       return make_console_sink(console, total_steps);
     }},
    {"jsonl", [](const RunInfo& run, std::ostream&, std::int64_t) {
       return make_jsonl_sink((std::filesystem::path(run.dir) / "metrics.jsonl").string());
     }},
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
                                              std::ostream& console, std::int64_t total_steps) {
  std::vector<std::unique_ptr<Sink>> sinks;
  for (auto name = names.begin(); name != names.end(); ++name) {
    DPT_CHECK(std::find(names.begin(), name, *name) == name, "metric sink '", *name,
              "' is listed twice in tracking.sinks; list each sink once");
    const auto factory = std::find_if(std::begin(kFactories), std::end(kFactories),
                                      [&](const SinkFactory& f) { return *name == f.name; });
    DPT_CHECK(factory != std::end(kFactories), "unknown metric sink '", *name,
              "' in tracking.sinks; known sinks: ", known_sinks_text());
    sinks.push_back(factory->make(run, console, total_steps));
  }
  return sinks;
}

}  // namespace dpt::tracking
