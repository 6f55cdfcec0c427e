// MetricHub: takes metric records from the training loop without waiting and drains them to sinks on a thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tracking/metric_record.h"
#include "tracking/sink.h"

namespace dpt::tracking {

struct MetricHubOptions {
  // Records waiting for the sinks. A slow sink must never slow training, so beyond this the oldest are dropped.
  std::size_t capacity = 10000;
};

class MetricHub {
 public:
  // Starts one background drain thread; the sinks are only ever called from it.
  MetricHub(RunInfo run, std::vector<std::unique_ptr<Sink>> sinks, MetricHubOptions options = {});
  ~MetricHub();  // if not closed: close("FAILED") while an exception unwinds, else close("FINISHED")
  MetricHub(const MetricHub&) = delete;
  MetricHub& operator=(const MetricHub&) = delete;

  // Never blocks on a sink: if the queue is full the oldest record is dropped and counted.
  void record(MetricRecord record);
  // Queues a published checkpoint for the sinks (Sink::checkpoint), in order with the records; never blocks.
  // Callable from any thread (the checkpointer's background thread included).
  void checkpoint(PublishedCheckpoint published);
  // Waits until everything recorded so far has been written to, and flushed by, every working sink.
  void flush();
  // Writes what is queued within deadline_s, then closes the sinks with `status` ("FINISHED", "FAILED",
  // "KILLED"). Says on stderr what was not written. A sink still busy at the deadline is left to finish on
  // its own thread. Later calls, and record() after close, do nothing (records are counted as dropped).
  void close(const std::string& status, double deadline_s = 10.0);

  const RunInfo& run() const;
  // Sink name -> backend_run_id() of the sinks that have one by now; callable from any thread.
  std::map<std::string, std::string> backend_run_ids() const;
  // Records that never reached the sinks: queue overflow, or recorded after close().
  std::int64_t dropped() const;

 private:
  struct State;
  RunInfo run_;
  std::shared_ptr<State> state_;  // shared with the drain thread, which may outlive the hub after a deadline
  std::thread drain_;
};

}  // namespace dpt::tracking
