// utc_now_text: the current UTC time formatted with strftime, for run ids and manifest timestamps.
#pragma once

#include <string>

namespace dpt {

// e.g. utc_now_text("%Y-%m-%dT%H:%M:%SZ") -> "2026-11-27T05:10:54Z"
std::string utc_now_text(const char* strftime_format);

}  // namespace dpt
