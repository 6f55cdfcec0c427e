// `dptrain eval`: evaluate_checkpoint, then the results as text, eval.json, confusion.png and metric records.
#include "cli/eval_command.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "checkpoint/durable_file.h"
#include "cli/confusion_png.h"
#include "core/check.h"
#include "core/utc_time.h"
#include "tracking/metric_hub.h"
#include "tracking/sinks.h"
#include "train/evaluation.h"

namespace dpt::cli {
namespace {

namespace fs = std::filesystem;

// Up to this many classes the confusion matrix is printed; beyond, it is in eval.json and confusion.png only.
constexpr std::int64_t kPrintedClasses = 20;

nlohmann::json number_or_null(double value) { return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(); }

nlohmann::json eval_record(const train::CheckpointEval& result, const std::string& run_id) {
  const train::ClassEval& eval = result.eval;
  nlohmann::json samples = nlohmann::json::array();
  nlohmann::json accuracy = nlohmann::json::array();
  nlohmann::json confusion = nlohmann::json::array();
  const std::int64_t classes = eval.has_confusion() ? eval.classes : 0;
  for (std::int64_t label = 0; label < classes; ++label) {
    samples.push_back(eval.class_samples(label));
    accuracy.push_back(number_or_null(eval.class_accuracy(label)));
    const auto row = eval.confusion.begin() + label * eval.classes;
    confusion.push_back(std::vector<std::int64_t>(row, row + eval.classes));
  }
  return {{"run_id", run_id},
          {"created", utc_now_text("%Y-%m-%dT%H:%M:%SZ")},
          {"checkpoint",
           {{"version", result.version},
            {"store", result.store},
            {"manifest_sha256", result.manifest_sha256},
            {"run_id", result.state.value("run_id", std::string())},
            {"step", result.state.value("step", std::int64_t{-1})}}},
          {"test_files", result.test_files},
          {"samples", eval.totals.samples},
          {"loss", number_or_null(eval.totals.loss)},
          {"accuracy", number_or_null(eval.totals.accuracy)},
          {"classes", eval.classes},
          {"class_samples", samples},
          {"class_accuracy", accuracy},
          {"confusion", confusion}};
}

// The per-class table, the confusion matrix beside it up to kPrintedClasses classes; or why there is none.
std::string format_classes(const train::ClassEval& eval) {
  std::ostringstream out;
  if (!eval.has_confusion()) {
    if (eval.classes == 0) return "no per-class results: the loss is not a classification loss\n";
    return "no per-class results: " + std::to_string(eval.classes) + " classes, more than the " +
           std::to_string(train::kMaxConfusionClasses) + " a confusion matrix is gathered for\n";
  }
  out << std::fixed << std::setprecision(4);
  const bool matrix = eval.classes <= kPrintedClasses;
  out << "class  samples  accuracy" << (matrix ? "  predicted as 0.." + std::to_string(eval.classes - 1) : "")
      << "\n";
  for (std::int64_t label = 0; label < eval.classes; ++label) {
    out << std::setw(5) << label << std::setw(9) << eval.class_samples(label) << std::setw(10)
        << eval.class_accuracy(label);
    if (matrix) {
      out << " ";
      for (std::int64_t p = 0; p < eval.classes; ++p) {
        out << " " << std::setw(5) << eval.confusion[static_cast<std::size_t>(label * eval.classes + p)];
      }
    }
    out << "\n";
  }
  return out.str();
}

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// eval/loss and eval/accuracy at the checkpoint's step, then eval/class_accuracy/N of each class with samples.
void record_metrics(const Config& config, const tracking::RunInfo& info, const train::CheckpointEval& result,
                    std::ostream& console) {
  auto sinks = tracking::make_sinks(config.get_strings("tracking.sinks"), info, console, 0, &config);
  if (sinks.empty()) return;
  tracking::MetricHub hub(info, std::move(sinks));
  const std::int64_t step = result.state.value("step", std::int64_t{0});
  const std::int64_t epoch = result.state.value("epoch", std::int64_t{0});
  const train::ClassEval& eval = result.eval;
  std::map<std::string, double> totals = {{"eval/loss", eval.totals.loss}};
  if (eval.classes > 0) totals["eval/accuracy"] = eval.totals.accuracy;
  hub.record({step, epoch, unix_time(), std::move(totals)});
  std::map<std::string, double> classes;
  for (std::int64_t label = 0; eval.has_confusion() && label < eval.classes; ++label) {
    if (eval.class_samples(label) > 0) {
      classes["eval/class_accuracy/" + std::to_string(label)] = eval.class_accuracy(label);
    }
  }
  if (!classes.empty()) hub.record({step, epoch, unix_time(), std::move(classes)});
  hub.close("FINISHED");
}

}  // namespace

std::string format_eval(const train::EvalResult& eval, const std::string& what) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(4);
  if (!std::isnan(eval.accuracy)) out << " | " << what << "accuracy " << eval.accuracy;
  out << " | " << what << "loss " << eval.loss;
  return out.str();
}

void run_eval(Runtime& runtime, const Config& config, const distributed::Backends& backends, const EvalArgs& args) {
  const std::string store = args.store.empty() ? config.get_string("checkpoint.dir") : args.store;
  const train::CheckpointEval result = train::evaluate_checkpoint(config, runtime, backends, store, args.checkpoint);
  if (!runtime.is_main()) return;
  auto& out = runtime.out();
  out << "dptrain: checkpoint " << args.checkpoint << " (" << result.version << " in " << result.store << ") on "
      << config.get_string("data.test") << ": " << result.eval.totals.samples << " samples"
      << format_eval(result.eval.totals, "") << "\n"
      << format_classes(result.eval) << std::flush;

  tracking::RunInfo info{tracking::new_run_id(), config.get_string("run.name"), "", config.to_json(),
                         tracking::parse_tags(config.get_strings("tracking.tags")), 0};
  info.dir = config.get_string("run.output_dir") + "/" + info.id;
  info.tags["dptrain.evaluated_checkpoint"] = result.version + " in " + result.store;
  std::error_code ec;
  fs::create_directories(info.dir, ec);
  DPT_CHECK(!ec, "cannot create the run directory ", info.dir, ": ", ec.message(),
            "; set run.output_dir to a writable directory");
  checkpoint::write_file_atomic(info.dir + "/eval.json", eval_record(result, info.id).dump(2) + "\n");
  const bool png = result.eval.has_confusion();
  if (png) {
    checkpoint::write_file_atomic(info.dir + "/confusion.png",
                                  confusion_matrix_png(result.eval.confusion, result.eval.classes));
  }
  record_metrics(config, info, result, out);
  out << "dptrain: eval run " << info.id << ": " << info.dir << "/eval.json" << (png ? ", " + info.dir + "/confusion.png" : "")
      << std::endl;
}

}  // namespace dpt::cli
