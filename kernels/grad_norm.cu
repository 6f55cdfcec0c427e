// CUDA path of grad_norm: one block per piece (one launch over every tensor), a fixed reduction tree per block and
// a one-thread pass over the pieces in order, so the sums are the same bits on every rank and every run.
#include <cuda_runtime.h>

#include "kernels/clip_factor.h"
#include "kernels/grad_norm_cuda.h"

namespace dpt::kernels::cuda {
namespace {

constexpr int kThreads = 256;

struct PieceRow {
  std::int64_t address;
  std::int64_t n;
  std::int64_t tensor;
};

__global__ void piece_stats(const PieceRow* __restrict__ pieces, double* __restrict__ partials) {
  const PieceRow piece = pieces[blockIdx.x];
  const float* x = reinterpret_cast<const float*>(piece.address);
  double sum = 0.0;
  double bad = 0.0;
  for (std::int64_t i = threadIdx.x; i < piece.n; i += kThreads) {
    const float v = x[i];
    sum += static_cast<double>(v) * v;
    bad += isfinite(v) ? 0.0 : 1.0;
  }
  __shared__ double sums[kThreads];
  __shared__ double bads[kThreads];
  sums[threadIdx.x] = sum;
  bads[threadIdx.x] = bad;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) {
      sums[threadIdx.x] += sums[threadIdx.x + half];
      bads[threadIdx.x] += bads[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partials[2 * blockIdx.x] = sums[0];
    partials[2 * blockIdx.x + 1] = bads[0];
  }
}

__global__ void sum_pieces(const PieceRow* __restrict__ pieces, std::int64_t count, std::int64_t tensors,
                           const double* __restrict__ partials, double* __restrict__ stats) {
  for (std::int64_t i = threadIdx.x; i < 2 * (tensors + 1); i += blockDim.x) stats[i] = 0.0;
  __syncthreads();
  if (threadIdx.x != 0) return;
  for (std::int64_t c = 0; c < count; ++c) {
    stats[2 * pieces[c].tensor] += partials[2 * c];
    stats[2 * pieces[c].tensor + 1] += partials[2 * c + 1];
  }
  for (std::int64_t t = 0; t < tensors; ++t) {
    stats[2 * tensors] += stats[2 * t];
    stats[2 * tensors + 1] += stats[2 * t + 1];
  }
}

__global__ void scale_pieces(const PieceRow* __restrict__ pieces, const double* __restrict__ total, double max_norm,
                             double inv_scale) {
  const auto factor = static_cast<float>(clip_factor(total[0], max_norm, inv_scale));
  if (factor == 1.0F) return;
  const PieceRow piece = pieces[blockIdx.x];
  float* x = reinterpret_cast<float*>(piece.address);
  for (std::int64_t i = threadIdx.x; i < piece.n; i += kThreads) x[i] *= factor;
}

}  // namespace

int gradient_stats_f32(const std::int64_t* pieces, std::int64_t count, std::int64_t tensors, double* partials,
                       double* stats, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const auto* rows = reinterpret_cast<const PieceRow*>(pieces);
  if (count > 0) piece_stats<<<static_cast<unsigned>(count), kThreads, 0, s>>>(rows, partials);
  sum_pieces<<<1, kThreads, 0, s>>>(rows, count, tensors, partials, stats);
  return static_cast<int>(cudaGetLastError());
}

int clip_and_unscale_f32(const std::int64_t* pieces, std::int64_t count, const double* total, double max_norm,
                         double inv_scale, void* stream) {
  if (count == 0) return 0;
  scale_pieces<<<static_cast<unsigned>(count), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      reinterpret_cast<const PieceRow*>(pieces), total, max_norm, inv_scale);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace dpt::kernels::cuda
