// MLflow sink: a write-ahead spool on disk, replayed in order to the server's REST API whenever it answers.
#include "tracking/mlflow_sink.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tracking/spool_file.h"

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using KeyValues = std::vector<std::pair<std::string, std::string>>;

constexpr char kApi[] = "/api/2.0/mlflow/";
constexpr char kSpoolStem[] = "mlflow-spool";
constexpr char kSpoolFile[] = "mlflow-spool.jsonl";
constexpr char kRunIdTag[] = "dptrain.run_id";
constexpr char kVersionTag[] = "dptrain.checkpoint.version";
constexpr char kStoreTag[] = "dptrain.checkpoint.store";
constexpr char kSha256Tag[] = "dptrain.checkpoint.manifest_sha256";
// MLflow reserves the alias "latest" (models:/NAME/latest already means the newest version of any run), so the
// store's `latest` becomes this alias; every other store alias keeps its name.
constexpr char kLatestAlias[] = "latest-checkpoint";
// MLflow's documented log-batch limits and its server's length limits (mlflow/utils/validation.py).
constexpr std::size_t kMetricsPerBatch = 1000;
constexpr std::size_t kParamsOrTagsPerBatch = 100;
// MLflow 2.x's SQL store, given a log-batch of metrics some of which it holds already (a replay), looks for the
// repeats key batch by key batch, 100 metrics' keys at a time, and inserts whatever one key batch did not find:
// a request of over 100 metrics whose last keys are not all its keys is refused. Up to 100 it skips repeats.
constexpr std::size_t kMetricsPerRepeatSafeBatch = 100;
constexpr std::size_t kMaxParamValue = 6000;
constexpr std::size_t kMaxTagValue = 8000;
constexpr std::chrono::seconds kSendBudget{1};

void report(const std::string& message) {
  std::cerr << ("dptrain: metrics: mlflow: " + message + "\n") << std::flush;
}

std::int64_t unix_ms(double seconds) { return std::llround(seconds * 1000.0); }

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

json key_values(const KeyValues& items, std::size_t begin, std::size_t end, std::size_t max_value) {
  json out = json::array();
  for (std::size_t i = begin; i < end; ++i) {
    out.push_back({{"key", items[i].first}, {"value", items[i].second.substr(0, max_value)}});
  }
  return out;
}

// The spool (SpoolFile mlflow-spool.jsonl): line 1 describes the run; each later line is one request (log-batch
// or status) in send order. mlflow-spool.acked holds how many request lines the server has acknowledged.
class Spool {
 public:
  explicit Spool(const std::string& dir) : file_(dir, kSpoolStem) {
    acked_ = std::min(file_.read_acked(), file_.entries());
    saved_acked_ = acked_;
    for (json& line : file_.read_entries(acked_)) pending_.push_back(std::move(line));
  }

  const std::string& path() const { return file_.path(); }
  const json& header() const { return file_.header(); }
  std::deque<json>& pending() { return pending_; }
  const std::deque<json>& pending() const { return pending_; }

  void append(const json& line) {
    const bool header = file_.header().is_null();
    file_.append({line});
    if (!header) pending_.push_back(line);
  }

  // The oldest `lines` pending lines were acknowledged (or rejected for good); persisted by save_acked().
  void pop_acked(std::size_t lines) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(lines));
    acked_ += static_cast<std::int64_t>(lines);
  }

  void save_acked() {
    if (acked_ == saved_acked_) return;
    file_.write_acked(acked_);
    saved_acked_ = acked_;
  }

 private:
  SpoolFile file_;
  std::deque<json> pending_;
  std::int64_t acked_ = 0;
  std::int64_t saved_acked_ = 0;
};

class MlflowSink final : public Sink {
 public:
  MlflowSink(RunInfo run, MlflowOptions options)
      : run_(std::move(run)), options_(std::move(options)), rest_(options_.uri, options_.timeouts), spool_(run_.dir) {
    if (spool_.header().is_null()) {
      spool_.append({{"run", {{"id", run_.id}, {"name", run_.name}, {"params", run_.params}, {"tags", run_.tags}}},
                     {"experiment", options_.experiment}});
    }
    backoff_s_ = options_.retry_min_s;
  }

  std::string name() const override { return "mlflow"; }

  void write(const std::vector<MetricRecord>& records) override {
    json metrics = json::array();
    for (const MetricRecord& record : records) {
      for (const auto& [key, value] : record.values) {
        metrics.push_back({{"key", key}, {"value", json_number(value)}, {"timestamp", unix_ms(record.time)},
                           {"step", record.step}});
        if (metrics.size() == kMetricsPerBatch) {
          spool_.append({{"metrics", std::move(metrics)}});
          metrics = json::array();
        }
      }
    }
    if (!metrics.empty()) spool_.append({{"metrics", std::move(metrics)}});
    pump(false);
  }

  void checkpoint(const PublishedCheckpoint& published) override {
    json line = spooled_checkpoint(published);
    line["registered_model"] = options_.registered_model;
    spool_.append(line);
    pump(false);
  }

  void flush() override { pump(true); }

  void close(const std::string& status) override {
    spool_.append({{"status", status}, {"end_time", now_ms()}});
    replay();
  }

  // Sends everything still spooled now; says what is left, and how to send it later.
  void replay() {
    if (pump(true)) return;
    report(std::to_string(spool_.pending().size()) + " requests are still spooled in " + spool_.path() +
           "; send them with: dptrain runs sync " + run_.dir + " --mlflow " + options_.uri);
  }

  const std::string& mlflow_run_id() const { return run_id_; }
  std::int64_t sent() const { return sent_; }
  std::int64_t still_spooled() const { return static_cast<std::int64_t>(spool_.pending().size()); }

 private:
  // Sends the spool in order; true when nothing is left. Between failures it waits (unless forced), so that a
  // dead server costs one refused connection per retry interval, not one per record. Unforced, it stops after
  // kSendBudget so that a long backlog on a slow server does not keep new records from reaching the spool.
  bool pump(bool force) {
    if (spool_.pending().empty()) return true;
    if (broken_ || (!force && Clock::now() < retry_at_)) return false;
    const auto budget_end = Clock::now() + kSendBudget;
    try {
      if (run_id_.empty()) start_run();
      while (!spool_.pending().empty() && (force || Clock::now() < budget_end)) {
        const std::size_t lines = mergeable_lines();
        send_or_skip(lines);
        spool_.pop_acked(lines);
        spool_.save_acked();  // after each request: a crash then resends at most one (MLflow ignores exact repeats)
        ++sent_;
      }
      if (!spool_.pending().empty()) return false;
      if (offline_) report("MLflow server " + options_.uri + " answers again; the spool is replayed");
      offline_ = false;
      backoff_s_ = options_.retry_min_s;
      return true;
    } catch (const MlflowRestError& e) {
      if (e.failure() == MlflowFailure::rejected) {
        broken_ = true;  // the run itself cannot be set up; keep spooling so that `runs sync` can send it later
        report(e.message() + "; records keep going to " + spool_.path());
        return false;
      }
      if (!offline_) {
        report(e.message() + "; records are spooled to " + spool_.path() + " and sent when the server answers");
      }
      offline_ = true;
      retry_at_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(backoff_s_));
      backoff_s_ = std::min(backoff_s_ * 2, options_.retry_max_s);
      return false;
    }
  }

  // How many of the oldest spool lines go in the next request: consecutive metric lines are merged up to the
  // log-batch limit, so that a backlog replays in few requests; any other line goes alone.
  std::size_t mergeable_lines() const {
    const std::deque<json>& pending = spool_.pending();
    if (!pending.front().contains("metrics")) return 1;
    std::size_t metrics = pending.front().at("metrics").size();
    std::size_t lines = 1;
    for (; lines < pending.size() && pending[lines].contains("metrics") &&
           metrics + pending[lines].at("metrics").size() <= kMetricsPerBatch;
         ++lines) {
      metrics += pending[lines].at("metrics").size();
    }
    return lines;
  }

  // Sends the oldest `lines` spool lines; a request the server refuses (HTTP 4xx) is reported and skipped, after
  // metrics refused in large requests were resent in requests MLflow checks for repeats correctly.
  void send_or_skip(std::size_t lines) {
    std::size_t metrics_per_request = kMetricsPerBatch;
    for (;;) {
      try {
        send(lines, metrics_per_request);
        return;
      } catch (const MlflowRestError& e) {
        if (e.failure() != MlflowFailure::rejected) throw;
        if (metrics_per_request > kMetricsPerRepeatSafeBatch && metrics_in(lines) > kMetricsPerRepeatSafeBatch) {
          metrics_per_request = kMetricsPerRepeatSafeBatch;
          continue;
        }
        report("the server rejected a spooled request, which is skipped: " + e.message());
        return;
      }
    }
  }

  std::size_t metrics_in(std::size_t lines) const {
    std::size_t metrics = 0;
    for (std::size_t i = 0; i < lines; ++i) metrics += spool_.pending()[i].value("metrics", json::array()).size();
    return metrics;
  }

  // Sends the oldest `lines` spool lines (several only when they are all metric lines), metrics in requests of at
  // most `metrics_per_request`.
  void send(std::size_t lines, std::size_t metrics_per_request) {
    const std::deque<json>& pending = spool_.pending();
    const json& entry = pending.front();
    if (entry.contains("checkpoint")) {
      send_checkpoint(entry.at("checkpoint"), entry.value("registered_model", ""));
    } else if (!entry.contains("metrics")) {
      rest_.post(std::string(kApi) + "runs/update",
                 {{"run_id", run_id_}, {"status", entry.at("status")}, {"end_time", entry.at("end_time")}});
    } else {
      json metrics = json::array();
      const auto post = [&] {
        rest_.post(std::string(kApi) + "runs/log-batch", {{"run_id", run_id_}, {"metrics", std::move(metrics)}});
        metrics = json::array();
      };
      for (std::size_t i = 0; i < lines; ++i) {
        for (const json& metric : pending[i].at("metrics")) {
          metrics.push_back(metric);
          if (metrics.size() == metrics_per_request) post();
        }
      }
      if (!metrics.empty()) post();
    }
  }

  std::string experiment_id() {
    const std::string& name = options_.experiment;
    for (int attempt = 0; attempt < 2; ++attempt) {
      try {
        const json found = rest_.get(std::string(kApi) + "experiments/get-by-name", {{"experiment_name", name}});
        const json& experiment = found.at("experiment");
        if (experiment.value("lifecycle_stage", "active") == "deleted") {
          throw MlflowRestError(MlflowFailure::rejected, "", "MLflow experiment '" + name +
                                "' is deleted; restore it or set tracking.mlflow.experiment to another name",
                                SourceLocation{__FILE__, __LINE__});
        }
        return experiment.at("experiment_id").get<std::string>();
      } catch (const MlflowRestError& e) {
        if (e.error_code() != "RESOURCE_DOES_NOT_EXIST") throw;
      }
      try {
        return rest_.post(std::string(kApi) + "experiments/create", {{"name", name}})
            .at("experiment_id")
            .get<std::string>();
      } catch (const MlflowRestError& e) {
        if (e.error_code() != "RESOURCE_ALREADY_EXISTS") throw;  // created by another run meanwhile: get it
      }
    }
    throw MlflowRestError(MlflowFailure::unreachable, "",
                          "MLflow experiment '" + name + "' could not be got or created",
                          SourceLocation{__FILE__, __LINE__});
  }

  // Finds the run by its dptrain run id (a resumed run continues its MLflow run) or creates it, then logs the
  // params and tags and uploads the config. Every step is idempotent, so a failure half-way is simply retried.
  void start_run() {
    const std::string experiment = experiment_id();
    const std::string filter = std::string("tags.`") + kRunIdTag + "` = '" + run_.id + "'";
    const json found = rest_.post(std::string(kApi) + "runs/search",
                                  {{"experiment_ids", {experiment}}, {"filter", filter}, {"max_results", 1}});
    json run;
    std::map<std::string, std::string> logged_params;
    if (found.contains("runs") && !found.at("runs").empty()) {
      run = found.at("runs").at(0);
      for (const json& param : run.value("data", json::object()).value("params", json::array())) {
        logged_params[param.at("key").get<std::string>()] = param.value("value", "");
      }
      rest_.post(std::string(kApi) + "runs/update",
                 {{"run_id", run.at("info").at("run_id")}, {"status", "RUNNING"}});
    } else {
      const std::string run_name = run_.name.empty() ? run_.id : run_.name;
      run = rest_.post(std::string(kApi) + "runs/create",
                       {{"experiment_id", experiment},
                        {"run_name", run_name},
                        {"start_time", now_ms()},
                        {"tags", json::array({{{"key", kRunIdTag}, {"value", run_.id}},
                                              {{"key", "mlflow.source.name"}, {"value", "dptrain"}}})}})
                .at("run");
    }
    const std::string run_id = run.at("info").at("run_id").get<std::string>();
    KeyValues params;
    KeyValues tags{{kRunIdTag, run_.id}, {"mlflow.runName", run_.name.empty() ? run_.id : run_.name}};
    tags.insert(tags.end(), run_.tags.begin(), run_.tags.end());
    const json flat = flatten_config(run_.params);
    for (const auto& [key, item] : flat.items()) {
      const std::string value = item.is_string() ? item.get<std::string>() : item.dump();
      const auto logged = logged_params.find(key);
      if (logged == logged_params.end()) {
        params.emplace_back(key, value);
      } else if (logged->second != value.substr(0, kMaxParamValue)) {
        // MLflow params are immutable; a resume with a changed key keeps its new value as a tag.
        tags.emplace_back("dptrain.resumed." + key, value);
      }
    }
    for (std::size_t i = 0; i < std::max(params.size(), tags.size()); i += kParamsOrTagsPerBatch) {
      rest_.post(std::string(kApi) + "runs/log-batch",
                 {{"run_id", run_id},
                  {"params", key_values(params, std::min(i, params.size()),
                                        std::min(i + kParamsOrTagsPerBatch, params.size()), kMaxParamValue)},
                  {"tags", key_values(tags, std::min(i, tags.size()),
                                      std::min(i + kParamsOrTagsPerBatch, tags.size()), kMaxTagValue)}});
    }
    set_artifact_dir(run_id, run.at("info").value("artifact_uri", ""));
    put_artifact("config.json", run_.params.dump(2));
    run_id_ = run_id;
  }

  // The mlflow-artifacts REST proxy (the server's default --serve-artifacts) takes uploads at
  // /api/2.0/mlflow-artifacts/artifacts/<path of the run's artifact_uri>/<file>.
  void set_artifact_dir(const std::string& run_id, const std::string& artifact_uri) {
    const std::string scheme = "mlflow-artifacts:";
    artifact_dir_.clear();
    if (artifact_uri.rfind(scheme, 0) != 0) {
      report("the server keeps run " + run_id + "'s artifacts at '" + artifact_uri + "', not behind its REST " +
             "proxy; config.json and checkpoint manifests are not uploaded (start the server with --serve-artifacts)");
      return;
    }
    std::string path = artifact_uri.substr(scheme.size());
    if (path.rfind("//", 0) == 0) path = path.substr(std::min(path.find('/', 2), path.size()));
    while (!path.empty() && path.front() == '/') path.erase(0, 1);
    artifact_dir_ = "/api/2.0/mlflow-artifacts/artifacts/" + path + "/";
  }

  // Uploads `bytes` as the run's artifact `name` (a PUT overwrites, so a replay is harmless).
  void put_artifact(const std::string& name, const std::string& bytes) {
    if (artifact_dir_.empty()) return;
    try {
      rest_.put(artifact_dir_ + name, bytes);
    } catch (const MlflowRestError& e) {
      if (e.failure() != MlflowFailure::rejected) throw;
      report(name + " is not uploaded: " + e.message());
    }
  }

  // A published checkpoint: its manifest as the artifact checkpoints/<version>/manifest.json; with a registered
  // model, one model version per checkpoint version and the store's aliases as the model's aliases. Each step
  // is idempotent (the version is looked up by its tags before it is created), so a replay after a lost answer
  // or a crash creates nothing twice.
  void send_checkpoint(const json& checkpoint, const std::string& model) {
    const std::string version = checkpoint.at("version").get<std::string>();
    const std::string store = checkpoint.at("store").get<std::string>();
    const std::string sha256 = checkpoint.at("manifest_sha256").get<std::string>();
    put_artifact("checkpoints/" + version + "/manifest.json", checkpoint.at("manifest").get<std::string>());
    if (model.empty()) return;
    if (registered_models_.insert(model).second) {
      try {
        rest_.post(std::string(kApi) + "registered-models/create", {{"name", model}});
      } catch (const MlflowRestError& e) {
        if (e.error_code() != "RESOURCE_ALREADY_EXISTS") {
          registered_models_.erase(model);
          throw;
        }
      }
    }
    std::string model_version = find_model_version(model, store, version, sha256);
    if (model_version.empty()) {
      const KeyValues tags{{kVersionTag, version},
                           {kStoreTag, store},
                           {kSha256Tag, sha256},
                           {"dptrain.checkpoint.step", std::to_string(checkpoint.value("step", std::int64_t{-1}))},
                           {kRunIdTag, run_.id}};
      model_version = rest_.post(std::string(kApi) + "model-versions/create",
                                 {{"name", model},
                                  {"source", "runs:/" + run_id_ + "/checkpoints/" + version},
                                  {"run_id", run_id_},
                                  {"tags", key_values(tags, 0, tags.size(), kMaxTagValue)},
                                  {"description", "dptrain checkpoint " + version + " of " + store}})
                          .at("model_version")
                          .at("version")
                          .get<std::string>();
      model_versions_[model + "\n" + store + "\n" + version] = model_version;
    }
    for (const auto& [alias, target] : checkpoint.value("aliases", std::map<std::string, std::string>{})) {
      const std::string target_version =
          target == version ? model_version : find_model_version(model, store, target, "");
      if (target_version.empty()) continue;  // a version published before the registry was used: not registered
      const std::string name = alias == "latest" ? kLatestAlias : alias;
      std::string& sent = aliases_[model + "\n" + name];
      if (sent == target_version) continue;
      rest_.post(std::string(kApi) + "registered-models/alias",
                 {{"name", model}, {"alias", name}, {"version", target_version}});
      sent = target_version;
    }
  }

  // The model version registered for checkpoint `version` of `store` (with this manifest sha256, unless
  // empty); "" when there is none. A store rebuilt at the same path reuses names, hence the newest match.
  // Found versions are remembered, so that an alias that stays on an old version costs no search per publish.
  std::string find_model_version(const std::string& model, const std::string& store, const std::string& version,
                                 const std::string& sha256) {
    std::string& known = model_versions_[model + "\n" + store + "\n" + version];
    if (!known.empty()) return known;
    const std::string filter = "name = '" + model + "' and tags.`" + kVersionTag + "` = '" + version + "'";
    const json found = rest_.get(std::string(kApi) + "model-versions/search",
                                 {{"filter", filter}, {"max_results", "1000"}});
    std::string newest;
    for (const json& candidate : found.value("model_versions", json::array())) {
      std::map<std::string, std::string> tags;
      for (const json& tag : candidate.value("tags", json::array())) {
        tags[tag.value("key", "")] = tag.value("value", "");
      }
      if (tags[kStoreTag] != store || (!sha256.empty() && tags[kSha256Tag] != sha256)) continue;
      const std::string number = candidate.value("version", "");
      if (newest.empty() || std::stoll(number) > std::stoll(newest)) newest = number;
    }
    known = newest;
    return newest;
  }

  RunInfo run_;
  MlflowOptions options_;
  MlflowRest rest_;
  Spool spool_;
  std::string run_id_;  // MLflow's run id, once the run is set up on the server
  std::string artifact_dir_;  // the REST path of the run's artifacts ("" when the server does not proxy them)
  std::set<std::string> registered_models_;      // got or created by this sink
  std::map<std::string, std::string> aliases_;   // "model\nalias" -> model version this sink set it to
  std::map<std::string, std::string> model_versions_;  // "model\nstore\nversion" -> its model version
  bool offline_ = false;
  bool broken_ = false;
  double backoff_s_ = 1.0;
  Clock::time_point retry_at_{};
  std::int64_t sent_ = 0;
};

// metrics.jsonl lines ({"step":..,"epoch":..,"time":..,"train/loss":..}) back into records.
std::vector<MetricRecord> read_metrics_jsonl(const std::string& path) {
  std::ifstream in(path);
  DPT_CHECK(in, "cannot read ", path, ": ", std::strerror(errno));
  std::vector<MetricRecord> records;
  std::string text;
  while (std::getline(in, text)) {
    const json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (!line.is_object()) continue;
    MetricRecord record;
    record.step = line.value("step", std::int64_t{0});
    record.epoch = line.value("epoch", std::int64_t{0});
    record.time = number_from_json(line.value("time", json(0.0)));
    for (const auto& [key, value] : line.items()) {
      if (key != "step" && key != "epoch" && key != "time") record.values[key] = number_from_json(value);
    }
    records.push_back(std::move(record));
  }
  return records;
}

}  // namespace

MlflowOptions mlflow_options(const Config& config) {
  MlflowOptions options;
  options.uri = config.get_string("tracking.mlflow.uri");
  if (options.uri.empty() && std::getenv("MLFLOW_TRACKING_URI")) options.uri = std::getenv("MLFLOW_TRACKING_URI");
  DPT_CHECK(!options.uri.empty(), "the mlflow sink needs a server: set tracking.mlflow.uri (e.g. --set ",
            "tracking.mlflow.uri=http://127.0.0.1:5000) or MLFLOW_TRACKING_URI");
  options.experiment = config.get_string("tracking.mlflow.experiment");
  options.registered_model = config.get_string("tracking.mlflow.registered_model");
  DPT_CHECK(options.registered_model.find_first_of("'`\\") == std::string::npos,
            "tracking.mlflow.registered_model '", options.registered_model,
            "' contains a quote or backslash, which MLflow's search filters cannot hold; choose another name");
  return options;
}

std::unique_ptr<Sink> make_mlflow_sink(const RunInfo& run, const MlflowOptions& options) {
  return std::make_unique<MlflowSink>(run, options);
}

MlflowSyncReport sync_mlflow_run(const std::string& run_dir, const MlflowOptions& options) {
  DPT_CHECK(fs::is_directory(run_dir), "run directory ", run_dir, " does not exist; pass <run.output_dir>/<run-id>");
  const fs::path spool = fs::path(run_dir) / kSpoolFile;
  const fs::path metrics = fs::path(run_dir) / "metrics.jsonl";
  MlflowOptions sync_options = options;
  if (fs::exists(spool)) {
    std::ifstream in(spool);
    std::string first;
    std::getline(in, first);
    const json header = json::parse(first, nullptr, /*allow_exceptions=*/false);
    DPT_CHECK(header.is_object() && header.contains("run"), "MLflow spool ", spool.string(),
              " does not start with a run description; it was not written by dptrain's mlflow sink");
    const json& run = header.at("run");
    if (sync_options.experiment.empty()) sync_options.experiment = header.value("experiment", "dptrain");
    RunInfo info;
    info.id = run.value("id", "");
    info.name = run.value("name", "");
    info.dir = run_dir;
    info.params = run.value("params", json::object());
    info.tags = run.value("tags", std::map<std::string, std::string>{});
    MlflowSink sink(info, sync_options);
    sink.replay();
    return {kSpoolFile, sink.mlflow_run_id(), sink.sent(), sink.still_spooled()};
  }
  DPT_CHECK(fs::exists(metrics), "run directory ", run_dir, " has neither ", kSpoolFile,
            " nor metrics.jsonl: nothing to sync (was it written with tracking.sinks containing jsonl or mlflow?)");
  if (sync_options.experiment.empty()) sync_options.experiment = "dptrain";
  fs::path dir = fs::path(run_dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // "runs/ID/" names the run ID too
  RunInfo info;
  info.id = dir.filename().string();
  info.dir = run_dir;
  info.params = json::object();
  MlflowSink sink(info, sync_options);
  sink.write(read_metrics_jsonl(metrics.string()));
  sink.close("FINISHED");
  return {"metrics.jsonl", sink.mlflow_run_id(), sink.sent(), sink.still_spooled()};
}

}  // namespace dpt::tracking
