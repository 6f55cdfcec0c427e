// new_run_id: run ids that sort by start time and do not collide within a second.
#include "tracking/metric_record.h"

#include <cstdio>
#include <random>

#include "core/utc_time.h"

namespace dpt::tracking {

std::string new_run_id() {
  const std::string stamp = utc_now_text("%Y%m%d-%H%M%S");
  std::random_device entropy;
  const unsigned suffix = std::uniform_int_distribution<unsigned>(0, 0xffffff)(entropy);
  char id[48];
  std::snprintf(id, sizeof(id), "%s-%06x", stamp.c_str(), suffix);
  return id;
}

}  // namespace dpt::tracking
