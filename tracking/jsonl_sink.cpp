// JSONL sink: appends one JSON object per metric record to a file.
#include "tracking/jsonl_sink.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "core/check.h"

namespace dpt::tracking {
namespace {

// JSON has no NaN or Infinity; these strings are what Python's json module and pandas read back as floats.
nlohmann::ordered_json json_number(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "Infinity" : "-Infinity";
  return value;
}

class JsonlSink final : public Sink {
 public:
  explicit JsonlSink(const std::string& path) : path_(path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    std::error_code error;
    if (!parent.empty()) std::filesystem::create_directories(parent, error);
    DPT_CHECK(!error, "cannot create the directory of metrics file ", path, ": ", error.message(),
              "; choose a writable run.output_dir");
    out_.open(path, std::ios::out | std::ios::app);
    DPT_CHECK(out_.is_open(), "cannot open metrics file ", path, " for appending: ", std::strerror(errno),
              "; choose a writable run.output_dir");
  }

  std::string name() const override { return "jsonl"; }

  void write(const std::vector<MetricRecord>& records) override {
    for (const MetricRecord& record : records) {
      // ordered_json keeps step, epoch and time first, as a reader scanning the file expects.
      nlohmann::ordered_json line = {
          {"step", record.step}, {"epoch", record.epoch}, {"time", json_number(record.time)}};
      for (const auto& [key, value] : record.values) line[key] = json_number(value);
      out_ << line.dump() << '\n';
    }
    check_stream("write to");
  }

  void flush() override {
    out_.flush();
    check_stream("flush");
  }

  void close(const std::string&) override {
    out_.close();
    check_stream("close");
  }

 private:
  void check_stream(const char* what) {
    DPT_CHECK(out_.good(), "could not ", what, " metrics file ", path_, "; check free disk space and permissions");
  }

  std::string path_;
  std::ofstream out_;
};

}  // namespace

std::unique_ptr<Sink> make_jsonl_sink(const std::string& path) { return std::make_unique<JsonlSink>(path); }

}  // namespace dpt::tracking
