// CPU path and reference of grad_norm, the chunking both paths share, and the device dispatch of the host API.
#include "kernels/grad_norm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "kernels/cuda_dispatch.h"
#include "kernels/scale_copy.h"
#ifdef DPTRAIN_HAS_CUDA
#include "kernels/cuda_stream.h"
#include "kernels/grad_norm_cuda.h"
#endif

namespace dpt::kernels {
namespace {

// 256 KiB of floats: a piece large enough to stream, small enough to spread one large layer over the threads
// (CPU) or the multiprocessors (CUDA: one block per piece).
constexpr std::int64_t kChunk = 65536;

struct Piece {
  std::int64_t tensor;
  float* data;
  std::int64_t n;
};

std::vector<Piece> pieces_of(const std::vector<at::Tensor>& tensors) {
  std::vector<Piece> pieces;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const at::Tensor& x = tensors[t];
    DPT_CHECK(x.scalar_type() == at::kFloat && x.is_contiguous() && x.device() == tensors.front().device(),
              "grad_norm: every tensor must be a contiguous float32 tensor on one device (tensor ", t, " is ",
              x.toString(), " on ", x.device().str(), ")");
    auto* data = x.data_ptr<float>();
    for (std::int64_t begin = 0; begin < x.numel(); begin += kChunk) {
      pieces.push_back({static_cast<std::int64_t>(t), data + begin, std::min(kChunk, x.numel() - begin)});
    }
  }
  return pieces;
}

#ifdef DPTRAIN_HAS_CUDA
// The pieces as the CUDA kernels read them: {address, length, tensor} per piece, copied to the device.
at::Tensor device_pieces(const std::vector<Piece>& pieces, const at::Device& device) {
  at::Tensor table = at::empty({static_cast<std::int64_t>(pieces.size()), 3}, at::kLong);
  auto* row = table.data_ptr<std::int64_t>();
  for (const Piece& p : pieces) {
    *row++ = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(p.data));
    *row++ = p.n;
    *row++ = p.tensor;
  }
  return table.to(device);
}
#endif

}  // namespace

void gradient_stats_cpu(const float* x, std::int64_t n, double* sum_squares, std::int64_t* nonfinite) {
  double lane[8] = {};
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; ++j) {
      const double v = x[i + j];
      lane[j] += v * v;
    }
  }
  for (; i < n; ++i) {
    const double v = x[i];
    lane[i & 7] += v * v;
  }
  const double sum = ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  *sum_squares += sum;
  // The squares of finite floats sum to a finite double (at most n x 1.2e77), so a non-finite sum is the only
  // sign of a NaN or infinity: the count costs a second pass only then.
  if (!std::isfinite(sum)) {
    std::int64_t bad = 0;
    for (std::int64_t k = 0; k < n; ++k) bad += std::isfinite(x[k]) ? 0 : 1;
    *nonfinite += bad;
  }
}

at::Tensor gradient_stats(const std::vector<at::Tensor>& tensors, void* stream) {
  const auto count = static_cast<std::int64_t>(tensors.size());
  const std::vector<Piece> pieces = pieces_of(tensors);
  const at::Device device = tensors.empty() ? at::Device(at::kCPU) : tensors.front().device();
  if (device.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
    at::Tensor stats = at::empty({count + 1, 2}, at::TensorOptions().dtype(at::kDouble).device(device));
    at::Tensor partials = at::empty({static_cast<std::int64_t>(pieces.size()), 2}, stats.options());
    const at::Tensor table = device_pieces(pieces, device);
    check_launch(cuda::gradient_stats_f32(table.data_ptr<std::int64_t>(), static_cast<std::int64_t>(pieces.size()),
                                          count, partials.data_ptr<double>(), stats.data_ptr<double>(),
                                          stream ? stream : current_cuda_stream(device.index())),
                 "gradient_stats");
    return stats;
#else
    static_cast<void>(stream);
    no_cuda_kernels("gradient_stats");
#endif
  }
  std::vector<double> sums(pieces.size(), 0.0);
  std::vector<std::int64_t> bad(pieces.size(), 0);
  at::parallel_for(0, static_cast<std::int64_t>(pieces.size()), 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) {
      const auto i = static_cast<std::size_t>(c);
      gradient_stats_cpu(pieces[i].data, pieces[i].n, &sums[i], &bad[i]);
    }
  });
  // Pieces are summed in their order, whichever thread computed them.
  at::Tensor stats = at::zeros({count + 1, 2}, at::kDouble);
  auto* row = stats.data_ptr<double>();
  for (std::size_t c = 0; c < pieces.size(); ++c) {
    row[2 * pieces[c].tensor] += sums[c];
    row[2 * pieces[c].tensor + 1] += static_cast<double>(bad[c]);
  }
  for (std::int64_t t = 0; t < count; ++t) {
    row[2 * count] += row[2 * t];
    row[2 * count + 1] += row[2 * t + 1];
  }
  return stats;
}

void clip_and_unscale(const std::vector<at::Tensor>& tensors, const at::Tensor& stats, double max_norm,
                      double inv_scale, void* stream) {
  const auto count = static_cast<std::int64_t>(tensors.size());
  DPT_CHECK(stats.scalar_type() == at::kDouble && stats.dim() == 2 && stats.size(0) == count + 1 &&
                stats.size(1) == 2 && stats.is_contiguous(),
            "clip_and_unscale: stats must be gradient_stats' float64 [", count + 1, ", 2] result for these ", count,
            " tensors (got ", stats.toString(), " of shape ", stats.sizes(), ")");
  const std::vector<Piece> pieces = pieces_of(tensors);
  if (pieces.empty()) return;
  const at::Device device = tensors.front().device();
  DPT_CHECK(stats.device() == device, "clip_and_unscale: stats on ", stats.device().str(), " but the tensors on ",
            device.str());
  if (device.is_cuda()) {
#ifdef DPTRAIN_HAS_CUDA
    const at::Tensor table = device_pieces(pieces, device);
    check_launch(cuda::clip_and_unscale_f32(table.data_ptr<std::int64_t>(), static_cast<std::int64_t>(pieces.size()),
                                            stats.data_ptr<double>() + 2 * count, max_norm, inv_scale,
                                            stream ? stream : current_cuda_stream(device.index())),
                 "clip_and_unscale");
    return;
#else
    no_cuda_kernels("clip_and_unscale");
#endif
  }
  const auto factor = static_cast<float>(clip_factor(stats[count][0].item<double>(), max_norm, inv_scale));
  if (factor == 1.0F) return;
  at::parallel_for(0, static_cast<std::int64_t>(pieces.size()), 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t c = begin; c < end; ++c) {
      const Piece& p = pieces[static_cast<std::size_t>(c)];
      scale_copy_cpu(p.data, p.data, p.n, factor);
    }
  });
}

}  // namespace dpt::kernels
