// PublishedCheckpoint: what the checkpointer tells the tracking sinks about a version it just published.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace dpt {

// Lives in core because checkpoint/ produces it and tracking/ consumes it, and neither depends on the other.
struct PublishedCheckpoint {
  std::string version;           // "v000003"
  std::string store;             // the store's root, absolute
  std::int64_t step = -1;        // -1 when the saved state had no step
  std::string manifest;          // the bytes of the version's manifest.json
  std::string manifest_sha256;
  std::map<std::string, std::string> aliases;  // the store's aliases after the publish: name -> version, "latest" too
};

}  // namespace dpt
