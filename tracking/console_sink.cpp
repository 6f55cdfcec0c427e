// Console sink: formats train and eval records as one progress line each.
#include "tracking/console_sink.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace dpt::tracking {
namespace {

std::string printf_double(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof(text), format, value);
  return text;
}

// "42s", "1m18s", "2h05m": coarse enough to read at a glance.
std::string duration_text(double seconds) {
  const auto total = static_cast<long long>(std::llround(seconds));
  char text[48];
  if (total < 60) {
    std::snprintf(text, sizeof(text), "%llds", total);
  } else if (total < 3600) {
    std::snprintf(text, sizeof(text), "%lldm%02llds", total / 60, total % 60);
  } else {
    std::snprintf(text, sizeof(text), "%lldh%02lldm", total / 3600, (total % 3600) / 60);
  }
  return text;
}

// The parts of one line, joined by " | ". The console shows the few values a person watches; every value
// goes to the file and server sinks.
class Line {
 public:
  explicit Line(const MetricRecord& record) : record_(record) {}

  void add(const std::string& part) {
    if (!text_.empty()) text_ += " | ";
    text_ += part;
  }
  // Adds "<label> <value>" (or "<value><suffix>" when label is empty) if the record has `key`.
  void add_value(const std::string& key, const std::string& label, const char* format,
                 const std::string& suffix = "") {
    const auto it = record_.values.find(key);
    if (it == record_.values.end()) return;
    add((label.empty() ? "" : label + " ") + printf_double(format, it->second) + suffix);
  }
  const std::string& text() const { return text_; }

 private:
  const MetricRecord& record_;
  std::string text_;
};

class ConsoleSink final : public Sink {
 public:
  ConsoleSink(std::ostream& out, std::int64_t total_steps) : out_(out), total_steps_(total_steps) {}

  std::string name() const override { return "console"; }

  void write(const std::vector<MetricRecord>& records) override {
    std::string text;
    for (const MetricRecord& record : records) {
      // Other records (checkpoint stalls and the like) are for the file and server sinks only.
      if (record.values.count("train/loss") || record.values.count("eval/accuracy")) text += format(record) + "\n";
    }
    // One insertion per batch keeps lines whole if the trainer prints to the same stream.
    out_ << text << std::flush;
  }

  void flush() override { out_.flush(); }
  void close(const std::string&) override { out_.flush(); }

 private:
  std::string format(const MetricRecord& record) {
    Line line(record);
    if (!record.values.count("train/loss")) {
      line.add("eval  epoch " + std::to_string(record.epoch));
      line.add_value("eval/loss", "loss", "%.4f");
      line.add_value("eval/accuracy", "accuracy", "%.4f");
      return line.text();
    }
    line.add(step_text(record.step));
    line.add("epoch " + std::to_string(record.epoch));
    line.add_value("train/loss", "loss", "%.4f");
    line.add_value("train/samples_per_s", "", "%.0f", " samples/s");
    line.add_value("train/lr", "lr", "%.3g");
    const std::string eta = eta_text(record);
    if (!eta.empty()) line.add("ETA " + eta);
    return line.text();
  }

  std::string step_text(std::int64_t step) const {
    const std::string total = total_steps_ > 0 ? std::to_string(total_steps_) : "";
    const int width = std::max<int>(5, static_cast<int>(total.size()));
    char text[64];
    std::snprintf(text, sizeof(text), "step %*lld", width, static_cast<long long>(step));
    return total.empty() ? text : std::string(text) + "/" + total;
  }

  // The rate is averaged from the first train record this sink saw, so that time spent in evals and
  // checkpoints between train records is part of the estimate, as it will be of the remaining time.
  std::string eta_text(const MetricRecord& record) {
    if (!have_first_) {
      have_first_ = true;
      first_step_ = record.step;
      first_time_ = record.time;
      return "";
    }
    const double elapsed = record.time - first_time_;
    const auto steps = record.step - first_step_;
    if (total_steps_ <= 0 || elapsed <= 0 || steps <= 0) return "";
    const double remaining_steps = static_cast<double>(std::max<std::int64_t>(total_steps_ - record.step, 0));
    return duration_text(remaining_steps * elapsed / static_cast<double>(steps));
  }

  std::ostream& out_;
  std::int64_t total_steps_;
  bool have_first_ = false;
  std::int64_t first_step_ = 0;
  double first_time_ = 0;
};

}  // namespace

std::unique_ptr<Sink> make_console_sink(std::ostream& out, std::int64_t total_steps) {
  return std::make_unique<ConsoleSink>(out, total_steps);
}

}  // namespace dpt::tracking
