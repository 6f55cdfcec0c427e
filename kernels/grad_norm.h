// grad_norm: one pass over every gradient (all buckets at once, as apex's and llm.c's multi-tensor kernels do)
// for each tensor's sum of squares and non-finite count, and one more pass that clips and unscales them.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "kernels/clip_factor.h"

namespace dpt::kernels {

// Row i < T of the result: {sum of squares, non-finite elements} of tensor i, summed in double; row T: the totals.
// float64 [T + 1, 2] on the tensors' device (all float32, contiguous, one device). The sums do not depend on the
// thread count or the launch (fixed chunks, fixed order), so ranks holding the same gradients get the same bits.
// CUDA tensors: launched on `stream` (a cudaStream_t; nullptr: the current stream), no host synchronisation.
at::Tensor gradient_stats(const std::vector<at::Tensor>& tensors, void* stream = nullptr);

// Multiplies every tensor by clip_factor of the total in `stats` (gradient_stats' result, read on the device it
// lives on: no host synchronisation on CUDA). A factor of exactly 1 writes nothing.
void clip_and_unscale(const std::vector<at::Tensor>& tensors, const at::Tensor& stats, double max_norm,
                      double inv_scale, void* stream = nullptr);

// The CPU path over raw floats, also the reference: adds x[i]^2 (in double, eight lanes in a fixed order) to
// *sum_squares and the count of NaN or infinite x[i] to *nonfinite.
void gradient_stats_cpu(const float* x, std::int64_t n, double* sum_squares, std::int64_t* nonfinite);

}  // namespace dpt::kernels
