// A confusion matrix as a PNG heat map (written with zlib; no plotting library needed at run time).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::cli {

// The bytes of an RGB PNG: one square cell per (label, prediction), row = label, column = prediction, its colour
// the cell's share of its row (dark purple 0 to yellow 1, as matplotlib's viridis); class numbers along the left
// and the top and each cell's count inside it, where the cells are large enough. `counts` is row-major,
// classes x classes.
std::string confusion_matrix_png(const std::vector<std::int64_t>& counts, std::int64_t classes);

}  // namespace dpt::cli
