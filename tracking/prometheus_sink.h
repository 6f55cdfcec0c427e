// Prometheus sink: this rank's latest metrics on an HTTP /metrics endpoint in the text exposition format.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "tracking/metric_record.h"
#include "tracking/sink.h"

namespace dpt::tracking {

struct PrometheusOptions {
  std::string bind = "127.0.0.1";  // IPv4 address to listen on; "0.0.0.0" for every interface
  int port = 9400;                 // 0: any free port (see PrometheusSink::port)
};

// The latest values of one rank, as Prometheus text exposition format 0.0.4:
//   dptrain_steps_total{run_id="...",rank="0"} 400          (counter: the last recorded step)
//   dptrain_epoch{...} 1                                     (gauge)
//   dptrain_train_loss{...} 0.41                             (gauge per metric: "train/loss" -> train_loss)
//   dptrain_run_info{run_id="...",rank="0",run_name="..."} 1
// Names keep [a-zA-Z0-9_] and turn anything else into '_'. NaN, +Inf and -Inf are written as "NaN", "+Inf",
// "-Inf"; label values escape backslash, double quote and newline.
std::string render_prometheus(const RunInfo& run, std::int64_t step, std::int64_t epoch,
                              const std::map<std::string, double>& latest);

class PrometheusSink : public Sink {
 public:
  // The port actually listened on (differs from options.port only when that was 0).
  virtual int port() const = 0;
};

// Listens on options.bind:options.port at once (a background thread answers GET /metrics; anything else is
// 404) and serves the latest values of every record written to it until close(). Throws dpt::Error naming
// the address when it cannot listen (port in use, bad address).
std::unique_ptr<PrometheusSink> make_prometheus_sink(const RunInfo& run, const PrometheusOptions& options);

}  // namespace dpt::tracking
