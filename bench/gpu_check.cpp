// gpu_check: on a GPU machine, checks the NCCL backend at world size 1, one line per check (exits non-zero on the
// first mismatch), then prints Markdown tables: each kernel's GB/s against the GPU's measured copy bandwidth, and the
// fused optimizers' steps against LibTorch's. Run by bench/gpu_check.sh, after tests/unit/cuda_kernels_test (every
// CUDA kernel against its CPU path).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <unistd.h>

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/optim.h>

#include "core/check.h"
#include "distributed/nccl_backend.h"
#include "distributed/store.h"
#include "kernels/adam_step.h"
#include "kernels/bucket_pack.h"
#include "kernels/grad_norm.h"
#include "kernels/scale_copy.h"
#include "kernels/sgd_step.h"
#include "train/fused_adam.h"
#include "train/fused_sgd.h"

namespace {

using dpt::distributed::ReduceOp;

void report(const std::string& what, bool ok) {
  std::cout << (ok ? "ok    " : "FAILED") << "  " << what << std::endl;
  DPT_CHECK(ok, "gpu_check: ", what, " does not match the CPU result");
}

void check_nccl_world_of_one(const std::string& store_dir) {
  dpt::distributed::FileStore store(store_dir, 60.0);
  dpt::distributed::NcclBackend backend(store, 0, 1, 0, 60.0);
  const auto cuda = at::TensorOptions().dtype(at::kFloat).device(at::kCUDA, backend.device());
  for (std::int64_t n : {1, 3, 1000, 1 << 20, (1 << 20) + 7}) {
    const at::Tensor cpu = at::randn({n});
    at::Tensor t = cpu.to(cuda);
    backend.allreduce(t, ReduceOp::Sum)->wait();
    report("nccl allreduce sum of " + std::to_string(n) + " floats", at::equal(t.cpu(), cpu));
    backend.allreduce(t, ReduceOp::Avg)->wait();
    report("nccl allreduce avg of " + std::to_string(n) + " floats", at::allclose(t.cpu(), cpu));
    at::Tensor gathered = at::empty({1, n}, cuda);
    backend.allgather(t, gathered)->wait();
    report("nccl allgather of " + std::to_string(n) + " floats", at::equal(gathered.cpu()[0], t.cpu()));
    backend.broadcast(t, 0)->wait();
    report("nccl broadcast of " + std::to_string(n) + " floats", at::allclose(t.cpu(), cpu));
    at::Tensor wire = cpu.to(cuda).to(at::kBFloat16);
    const at::Tensor sent = wire.cpu();
    backend.allreduce(wire, ReduceOp::Sum)->wait();
    report("nccl allreduce sum of " + std::to_string(n) + " bf16 values", at::equal(wire.cpu(), sent));
  }
  // A barrier is a collective on the backend's stream, ordered after what was queued before it. So once its
  // wait returns, a slow product on the default stream and an all-reduce of a known value queued behind it
  // must have finished, without waiting for them: a barrier that returns early or queues nothing fails here.
  const at::Tensor a = at::randn({4096, 4096}, cuda);
  at::Tensor known = at::full({1 << 20}, 5.0f, cuda) + a.mm(a).mm(a).sum().mul(0);
  const auto reduced = backend.allreduce(known, ReduceOp::Sum);
  const auto barrier = backend.barrier();
  barrier->wait();
  const bool finished = barrier->is_done() && reduced->is_done();
  report("nccl barrier waits for the collectives before it",
         finished && at::equal(known.cpu(), at::full({1 << 20}, 5.0f)));
}

// Seconds per call of `body`, the GPU drained before and after a timed loop.
double seconds_per_call(const std::function<void()>& body, int calls = 20) {
  body();
  torch::cuda::synchronize();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) body();
  torch::cuda::synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls;
}

// Bytes each kernel reads and writes over 64 Mi floats (256 MiB, far beyond the L2 cache) per second, against the
// copy bandwidth of the same GPU (a device-to-device tensor copy: reads and writes each byte once).
void bandwidth_table() {
  const std::int64_t n = std::int64_t{64} << 20;
  const auto o = at::TensorOptions().device(at::kCUDA);
  at::Tensor a = at::randn({n}, o), b = at::empty({n}, o), m = at::zeros({n}, o), v = at::zeros({n}, o);
  at::Tensor wire = at::empty({n}, o.dtype(at::kBFloat16));
  const double copy = 8.0 * static_cast<double>(n) / seconds_per_call([&] { b.copy_(a); });
  std::printf("\n## Kernels: GB/s over 256 MiB of float32 (copy bandwidth %.0f GB/s)\n\n", copy / 1e9);
  std::printf("| kernel | bytes/element | GB/s | of copy bandwidth |\n|---|---|---|---|\n");
  const std::vector<at::Tensor> grads = {a};
  const at::Tensor stats = dpt::kernels::gradient_stats(grads);
  const dpt::kernels::AdamScalars adam;
  dpt::kernels::SgdScalars sgd;
  sgd.momentum = 0.9F;
  const std::vector<std::tuple<const char*, double, std::function<void()>>> rows = {
      {"scale_copy", 8, [&] { dpt::kernels::scale_copy(b, a, 0.5); }},
      {"pack_bucket bf16", 6, [&] { dpt::kernels::pack_bucket(wire, a, 0.5); }},
      {"unpack_bucket bf16", 6, [&] { dpt::kernels::unpack_bucket(b, wire, 1.0); }},
      {"gradient_stats", 4, [&] { dpt::kernels::gradient_stats(grads); }},
      {"clip_and_unscale", 8, [&] { dpt::kernels::clip_and_unscale(grads, stats, 0.0, 1.0); }},
      {"adam_step", 28, [&] { dpt::kernels::adam_step(b, a, m, v, adam); }},
      {"sgd_step", 20, [&] { dpt::kernels::sgd_step(b, a, m, sgd); }},
  };
  for (const auto& [name, bytes, body] : rows) {
    const double rate = bytes * static_cast<double>(n) / seconds_per_call(body);
    std::printf("| %s | %.0f | %.0f | %.2f |\n", name, bytes, rate / 1e9, rate / copy);
  }
}

// One optimizer step over fashion_cnn's parameter shapes: the fused step against LibTorch's, on the GPU.
void optimizer_table() {
  const std::vector<std::vector<std::int64_t>> shapes = {{32, 1, 5, 5}, {32}, {64, 32, 5, 5}, {64},
                                                         {1024, 3136},  {1024}, {10, 1024},   {10}};
  auto make = [&] {
    std::vector<at::Tensor> params;
    for (const auto& shape : shapes) {
      params.push_back(at::randn(shape, at::TensorOptions().device(at::kCUDA)).requires_grad_(true));
      params.back().mutable_grad() = at::randn(shape, at::TensorOptions().device(at::kCUDA));
    }
    return params;
  };
  std::printf("\n## Optimizer step, fashion_cnn's parameters (3.3 M) on the GPU\n\n");
  std::printf("| optimizer | LibTorch ms | fused ms | speed-up |\n|---|---|---|---|\n");
  auto row = [&](const char* name, torch::optim::Optimizer& plain, torch::optim::Optimizer& fused) {
    const double t_plain = seconds_per_call([&] { plain.step(); });
    const double t_fused = seconds_per_call([&] { fused.step(); });
    std::printf("| %s | %.3f | %.3f | %.2fx |\n", name, t_plain * 1e3, t_fused * 1e3, t_plain / t_fused);
  };
  torch::optim::Adam adam(make(), torch::optim::AdamOptions(1e-3));
  dpt::train::FusedAdam fused_adam(make(), torch::optim::AdamOptions(1e-3));
  row("adam", adam, fused_adam);
  torch::optim::SGD sgd(make(), torch::optim::SGDOptions(1e-2).momentum(0.9));
  dpt::train::FusedSGD fused_sgd(make(), torch::optim::SGDOptions(1e-2).momentum(0.9));
  row("sgd (momentum 0.9)", sgd, fused_sgd);
}

}  // namespace

int main() {
  try {
    DPT_CHECK(at::hasCUDA(), "gpu_check needs a CUDA build of LibTorch and a visible GPU: configure with ",
              "CMAKE_PREFIX_PATH from a CUDA torch and run on a GPU machine");
    const auto store_dir = std::filesystem::temp_directory_path() / ("dptrain-gpu-check-" + std::to_string(::getpid()));
    check_nccl_world_of_one(store_dir.string());
    std::filesystem::remove_all(store_dir);
    std::cout << "gpu_check: NCCL checks passed" << std::endl;
    bandwidth_table();
    optimizer_table();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gpu_check: " << e.what() << std::endl;
    return 1;
  }
}
