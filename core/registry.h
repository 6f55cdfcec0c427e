// Registry<T>: a library's table from names (as a config spells them) to what they build; an unknown name is one
// error line with the closest known name, so every registry in dptrain answers a typo the same way.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"

namespace dpt {

// The candidate closest to `name` by edit distance, if it is close enough to be a likely typo ("" otherwise).
std::string closest_name(const std::string& name, const std::vector<std::string>& candidates);

// "; did you mean 'x'?" when a candidate is close, else "; known <kind>s: a, b, c".
std::string unknown_name_hint(const std::string& name, const std::vector<std::string>& candidates,
                              const std::string& kind);

template <typename T>
class Registry {
 public:
  // `kind` names entries in errors ("optimizer"); `key` is the config key that selects one ("train.optimizer").
  Registry(std::string kind, std::string key) : kind_(std::move(kind)), key_(std::move(key)) {}

  // Registering a name twice is an error: two entries would silently shadow each other.
  void add(const std::string& name, T entry, std::string description = "") {
    DPT_CHECK(!name.empty(), "a ", kind_, " needs a non-empty name");
    DPT_CHECK(!entries_.count(name), kind_, " '", name, "' is already registered: pick another name");
    entries_.emplace(name, Entry{std::move(entry), std::move(description)});
  }

  bool contains(const std::string& name) const { return entries_.count(name) > 0; }

  const T& get(const std::string& name) const {
    const auto it = entries_.find(name);
    DPT_CHECK(it != entries_.end(), "unknown ", kind_, " '", name, "'", key_.empty() ? "" : " (" + key_ + ")",
              unknown_name_hint(name, names(), kind_));
    return it->second.entry;
  }

  // Sorted, as the schema lists them as a key's choices.
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& item : entries_) out.push_back(item.first);
    return out;
  }

  // (name, description) pairs, sorted by name.
  std::vector<std::pair<std::string, std::string>> list() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [name, e] : entries_) out.emplace_back(name, e.description);
    return out;
  }

 private:
  struct Entry {
    T entry;
    std::string description;
  };
  std::string kind_;
  std::string key_;
  std::map<std::string, Entry> entries_;
};

}  // namespace dpt
