// Micro-benchmarks (Google Benchmark) of every kernel's CPU path, and the CUDA path where this build and LibTorch
// have one: bytes/s over a real first bucket (1 MiB) and a full one (25 MiB), and the fused optimizer steps and
// the multi-tensor gradient pass against LibTorch's op-by-op equivalents. JSON with --benchmark_format=json.
#include <benchmark/benchmark.h>

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/types.h>
#include <torch/nn/utils/clip_grad.h>

#include <functional>
#include <string>
#include <vector>

#include "kernels/adam_step.h"
#include "kernels/bucket_pack.h"
#include "kernels/grad_norm.h"
#include "kernels/scale_copy.h"
#include "kernels/sgd_step.h"

namespace {

using dpt::kernels::AdamScalars;
using dpt::kernels::SgdScalars;

constexpr std::int64_t kFloatsPerMiB = 1024 * 1024 / 4;
// The Reducer's first bucket (ddp.first_bucket_mb) and a full one (ddp.bucket_cap_mb).
const std::vector<std::int64_t> kBucketMiB = {1, 25};

// One timed body per iteration; bytes = what one call reads and writes.
using Body = std::function<void()>;

void run(benchmark::State& state, const Body& body, std::int64_t bytes, bool cuda) {
  body();  // warm: first-touch pages, CUDA module load
  if (cuda) torch::cuda::synchronize();
  for (auto _ : state) {
    body();
    if (cuda) torch::cuda::synchronize();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * bytes);
  state.counters["MiB"] = static_cast<double>(bytes) / (1024.0 * 1024.0);
}

at::TensorOptions floats(bool cuda) { return at::TensorOptions().dtype(at::kFloat).device(cuda ? at::kCUDA : at::kCPU); }

void register_kernels(bool cuda) {
  const std::string device = cuda ? "cuda" : "cpu";
  for (std::int64_t mib : kBucketMiB) {
    const std::int64_t n = mib * kFloatsPerMiB;
    const std::string size = "/" + std::to_string(mib) + "MiB";
    auto add = [&](const std::string& name, std::int64_t bytes, Body body) {
      benchmark::RegisterBenchmark((name + "/" + device + size).c_str(),
                                   [body, bytes, cuda](benchmark::State& s) { run(s, body, bytes, cuda); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
    };
    const auto o = floats(cuda);
    auto src = std::make_shared<at::Tensor>(at::randn({n}, o));
    auto dst = std::make_shared<at::Tensor>(at::empty({n}, o));
    add("scale_copy", 8 * n, [=] { dpt::kernels::scale_copy(*dst, *src, 0.5); });
    add("aten_mul_out", 8 * n, [=] { at::mul_out(*dst, *src, 0.5); });
    for (auto [name, dtype] : {std::pair{"bf16", at::kBFloat16}, std::pair{"fp16", at::kHalf}}) {
      auto wire = std::make_shared<at::Tensor>(at::empty({n}, o.dtype(dtype)));
      add(std::string("pack_") + name, 6 * n, [=] { dpt::kernels::pack_bucket(*wire, *src, 0.5); });
      add(std::string("unpack_") + name, 6 * n, [=] { dpt::kernels::unpack_bucket(*dst, *wire, 1.0); });
      add(std::string("aten_copy_to_") + name, 6 * n, [=] { wire->copy_(*src); });
    }
    // The gradient pass over the bucket as the model's tensors: fashion_cnn's layer sizes, repeated to fill it.
    auto grads = std::make_shared<std::vector<at::Tensor>>();
    for (std::int64_t left = n, i = 0; left > 0; ++i) {
      const std::int64_t sizes[] = {800, 32, 51200, 64, 3211264, 1024, 10240, 10};
      const std::int64_t take = std::min(left, sizes[i % 8]);
      grads->push_back(at::randn({take}, o) * 1e-3);
      left -= take;
    }
    add("gradient_stats", 4 * n, [=] { benchmark::DoNotOptimize(dpt::kernels::gradient_stats(*grads)); });
    add("aten_norms_and_isfinite", 4 * n, [=] {
      std::vector<at::Tensor> norms;
      for (const auto& g : *grads) norms.push_back(g.norm());
      benchmark::DoNotOptimize(at::stack(norms).norm().item<double>());
      for (const auto& g : *grads) benchmark::DoNotOptimize(g.isfinite().all().item<bool>());
    });
    // Clipping as the trainer does it (the stats pass, then a scaling pass) against LibTorch's clip_grad_norm_ on
    // parameters holding the same gradients. A factor of -1 writes every element without driving them to zero.
    auto stats = std::make_shared<at::Tensor>(dpt::kernels::gradient_stats(*grads));
    add("clip_and_unscale", 8 * n, [=] { dpt::kernels::clip_and_unscale(*grads, *stats, 0.0, -1.0); });
    add("gradient_stats_and_clip", 12 * n, [=] {
      dpt::kernels::clip_and_unscale(*grads, dpt::kernels::gradient_stats(*grads), 0.0, -1.0);
    });
    auto params = std::make_shared<std::vector<at::Tensor>>();
    for (const auto& g : *grads) {
      params->push_back(at::zeros_like(g).requires_grad_(true));
      params->back().mutable_grad() = g;
    }
    add("torch_clip_grad_norm", 12 * n, [=] { torch::nn::utils::clip_grad_norm_(*params, 1e30); });

    auto param = std::make_shared<at::Tensor>(at::randn({n}, o));
    auto m = std::make_shared<at::Tensor>(at::zeros({n}, o));
    auto v = std::make_shared<at::Tensor>(at::zeros({n}, o));
    AdamScalars adam;
    add("adam_step", 28 * n, [=] { dpt::kernels::adam_step(*param, *src, *m, *v, adam); });
    add("aten_adam_ops", 28 * n, [=] {
      m->mul_(adam.beta1).add_(*src, adam.one_minus_beta1);
      v->mul_(adam.beta2).addcmul_(*src, *src, adam.one_minus_beta2);
      param->addcdiv_(*m, (v->sqrt() / adam.sqrt_bias_correction2).add_(adam.eps), -adam.step_size);
    });
    SgdScalars sgd;
    sgd.momentum = 0.9F;
    add("sgd_step", 20 * n, [=] { dpt::kernels::sgd_step(*param, *src, *m, sgd); });
    add("aten_sgd_ops", 20 * n, [=] {
      m->mul_(sgd.momentum).add_(*src);
      param->add_(*m, -sgd.lr);
    });
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  register_kernels(false);
  if (at::hasCUDA() && torch::cuda::is_available()) register_kernels(true);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
