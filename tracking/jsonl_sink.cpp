// JSONL sink: appends one JSON object per metric record to a file.
#include "tracking/jsonl_sink.h"

#include <string>

#include <nlohmann/json.hpp>

#include "tracking/file_sink.h"

namespace dpt::tracking {
namespace {

class JsonlSink final : public FileSink {
 public:
  explicit JsonlSink(const std::string& path) : FileSink(path, "metrics file", std::ios::out) {}

  std::string name() const override { return "jsonl"; }

  void write(const std::vector<MetricRecord>& records) override {
    for (const MetricRecord& record : records) {
      // ordered_json keeps step, epoch and time first, as a reader scanning the file expects.
      nlohmann::ordered_json line = {
          {"step", record.step}, {"epoch", record.epoch}, {"time", json_number(record.time)}};
      for (const auto& [key, value] : record.values) line[key] = json_number(value);
      out() << line.dump() << '\n';
    }
    check_stream("write to");
  }
};

}  // namespace

std::unique_ptr<Sink> make_jsonl_sink(const std::string& path) { return std::make_unique<JsonlSink>(path); }

}  // namespace dpt::tracking
