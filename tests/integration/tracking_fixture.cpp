// Writes NaN, +Inf and -Inf (and a finite value) through the TensorBoard and Prometheus sinks, then keeps the
// Prometheus endpoint up so that a real Prometheus can scrape it. Usage: tracking_fixture DIR PORT SECONDS
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <thread>

#include "tracking/prometheus_sink.h"
#include "tracking/tensorboard_sink.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: tracking_fixture DIR PORT SECONDS\n";
    return 2;
  }
  using namespace dpt::tracking;
  const double inf = std::numeric_limits<double>::infinity();
  RunInfo run{"fixture", "special values", argv[1], {}, {}, 0};
  auto tensorboard = make_tensorboard_sink(argv[1]);
  auto prometheus = make_prometheus_sink(run, PrometheusOptions{"127.0.0.1", std::atoi(argv[2])});
  std::vector<MetricRecord> records;
  for (std::int64_t step = 1; step <= 3; ++step) {
    records.push_back(MetricRecord{step, 0, 1764219662.0 + static_cast<double>(step),
                                   {{"special/nan", std::numeric_limits<double>::quiet_NaN()},
                                    {"special/pos_inf", inf},
                                    {"special/neg_inf", -inf},
                                    {"special/finite", 0.5 * static_cast<double>(step)}}});
  }
  tensorboard->write(records);
  tensorboard->close("FINISHED");
  prometheus->write(records);
  std::cout << "ready" << std::endl;
  // Bounded: the test stops it by PID long before this, but it never outlives a forgotten test.
  std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(argv[3])));
  prometheus->close("FINISHED");
  return 0;
}
