// utc_now_text: strftime over the current UTC time.
#include "core/utc_time.h"

#include <ctime>

namespace dpt {

std::string utc_now_text(const char* strftime_format) {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[64];
  const std::size_t length = std::strftime(buffer, sizeof(buffer), strftime_format, &utc);
  return std::string(buffer, length);
}

}  // namespace dpt
