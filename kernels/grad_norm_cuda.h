// Host entry points of the CUDA kernels in grad_norm.cu; no CUDA types, so plain C++ can include it.
#pragma once

#include <cstdint>

namespace dpt::kernels::cuda {

// `pieces`: device int64 [count, 3] rows {float address, length, tensor index}, grouped by tensor in order.
// Writes each piece's {sum of squares, non-finite count} to partials ([count, 2]) and their per-tensor sums plus
// the totals to stats ([tensors + 1, 2]), in a fixed order. Returns 0 or the cudaError_t code.
int gradient_stats_f32(const std::int64_t* pieces, std::int64_t count, std::int64_t tensors, double* partials,
                       double* stats, void* stream);

// Multiplies every piece by clip_factor(total[0], max_norm, inv_scale), `total` read on the device.
int clip_and_unscale_f32(const std::int64_t* pieces, std::int64_t count, const double* total, double max_norm,
                         double inv_scale, void* stream);

}  // namespace dpt::kernels::cuda
