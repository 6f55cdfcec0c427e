// Console sink: one progress line per record, for the rank that logs.
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>

#include "tracking/sink.h"

namespace dpt::tracking {

// A train record (has "train/loss"):
//   "step   400/2814 | epoch 1 | loss 0.4123 | 1834 samples/s | ETA 1m18s"
// ("/total" and ETA are left out when total_steps == 0; ETA needs two train records to measure the step rate).
// An eval record (has "eval/accuracy"):
//   "eval  epoch 1 | loss 0.3312 | accuracy 0.8807"
// Any other values in a record follow as "name value", without the "train/" or "eval/" prefix.
std::unique_ptr<Sink> make_console_sink(std::ostream& out, std::int64_t total_steps);

}  // namespace dpt::tracking
