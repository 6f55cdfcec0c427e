// MLflow sink: per-step metrics, params, tags, status and the config to an MLflow tracking server over REST,
// through an on-disk spool so that a dead or slow server neither blocks nor loses a run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/config.h"
#include "tracking/mlflow_rest.h"
#include "tracking/sink.h"

namespace dpt::tracking {

struct MlflowOptions {
  std::string uri;                    // e.g. "http://127.0.0.1:5000"
  std::string experiment = "dptrain";  // got or created by name
  // Registered model that each published checkpoint version becomes a version of ("" : no Model Registry).
  std::string registered_model;
  MlflowTimeouts timeouts;
  // After a failed request the sink waits this long before trying again (doubling up to the max); records
  // keep going to the spool meanwhile. close() and flush() always try once more.
  double retry_min_s = 1.0;
  double retry_max_s = 30.0;
};

// tracking.mlflow.uri (or $MLFLOW_TRACKING_URI when the key is empty), tracking.mlflow.experiment and
// tracking.mlflow.registered_model.
// Throws dpt::Error when neither names a server.
MlflowOptions mlflow_options(const Config& config);

// Every record goes first to run.dir/mlflow-spool.jsonl (one line per log-batch request, in order) and is then
// sent; run.dir/mlflow-spool.acked counts the lines the server acknowledged. The MLflow run is found by its tag
// dptrain.run_id = run.id (a `--resume` continues it) or created with params = run.params flattened to
// "section.key" and the resolved config uploaded as the artifact config.json. NaN and +-Inf are sent as
// "NaN" / "Infinity" / "-Infinity" (MLflow stores NaN, and stores +-Inf as +-1.7976931348623157e308).
// A published checkpoint (Sink::checkpoint) is spooled too: its manifest becomes the artifact
// checkpoints/<version>/manifest.json; with options.registered_model, the version becomes one model version
// (source runs:/<run>/checkpoints/<version>, tagged with version, step, store and manifest sha256, found again
// by those tags so that a replay creates none twice) and the store's aliases become the model's aliases
// (`latest` as "latest-checkpoint", since MLflow reserves "latest").
// The constructor does no network I/O; an unreachable server is reported once and retried later.
std::unique_ptr<Sink> make_mlflow_sink(const RunInfo& run, const MlflowOptions& options);

struct MlflowSyncReport {
  std::string source;          // "mlflow-spool.jsonl" or "metrics.jsonl"
  std::string mlflow_run_id;   // empty when the server could not be reached
  std::int64_t sent = 0;       // log-batch / status requests acknowledged now
  std::int64_t still_spooled = 0;
};

// `dptrain runs sync`: replays the unacknowledged part of run_dir/mlflow-spool.jsonl to options.uri; a run that
// had no mlflow sink is first spooled from run_dir/metrics.jsonl (run id = the directory name, params from
// run_dir/config.json when present, final status FINISHED). Replaying twice sends nothing twice.
MlflowSyncReport sync_mlflow_run(const std::string& run_dir, const MlflowOptions& options);

}  // namespace dpt::tracking
