// Sink: where metric records go (console, JSONL file, ...); the MetricHub calls it from its drain thread only.
#pragma once

#include <string>
#include <vector>

#include "core/published_checkpoint.h"
#include "tracking/metric_record.h"

namespace dpt::tracking {

// A sink never throws into the training loop: the hub catches, reports once, and disables it.
// Sinks need not be thread-safe: the hub calls them from one thread.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual std::string name() const = 0;
  virtual void write(const std::vector<MetricRecord>& records) = 0;
  // A checkpoint version was published; in order with the records around it. Most sinks ignore it.
  virtual void checkpoint(const PublishedCheckpoint& /*published*/) {}
  virtual void flush() = 0;
  // The run's id in the sink's own backend (MLflow's run id), once known; "" for sinks without one. Checkpoint
  // manifests record it, so that a version's lineage leads to its runs there.
  virtual std::string backend_run_id() const { return ""; }
  virtual void close(const std::string& status) = 0;  // "FINISHED", "FAILED", "KILLED"
};

}  // namespace dpt::tracking
