// JSONL sink: one JSON object per record appended to a file that Python, jq or pandas read directly.
#pragma once

#include <memory>
#include <string>

#include "tracking/sink.h"

namespace dpt::tracking {

// Appends one JSON object per record to `path` (creating parent dirs), e.g.
//   {"step":400,"epoch":1,"time":1764219662.12,"train/loss":0.41,"train/samples_per_s":1834.2}
// NaN / +-Inf are written as the strings "NaN", "Infinity", "-Infinity" so that every line stays valid JSON.
// Lines are buffered until flush() or close().
// Throws dpt::Error naming the path when the file cannot be created or opened.
std::unique_ptr<Sink> make_jsonl_sink(const std::string& path);

}  // namespace dpt::tracking
