// Closest-name suggestions shared by the config schema and every Registry.
#include "core/registry.h"

#include <algorithm>

namespace dpt {
namespace {

std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

}  // namespace

std::string closest_name(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  // Up to 3 edits, and fewer than half the name's letters: "sdg" -> "sgd", but "x" suggests nothing.
  std::size_t best_distance = std::min<std::size_t>(4, name.size() / 2 + 1);
  for (const auto& candidate : candidates) {
    const std::size_t d = edit_distance(name, candidate);
    if (d < best_distance) best_distance = d, best = candidate;
  }
  return best;
}

std::string unknown_name_hint(const std::string& name, const std::vector<std::string>& candidates,
                              const std::string& kind) {
  const std::string best = closest_name(name, candidates);
  if (!best.empty()) return "; did you mean '" + best + "'?";
  std::string known;
  for (const auto& c : candidates) known += (known.empty() ? "" : ", ") + c;
  return "; known " + kind + "s: " + (known.empty() ? "none" : known);
}

}  // namespace dpt
