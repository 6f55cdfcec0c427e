// gpu_check: on a GPU machine, checks the NCCL backend at world size 1 and the CUDA scale_copy and adam_step kernels
// against the CPU path, one line per check; exits non-zero on the first mismatch. Run by bench/gpu_check.sh.
#include <filesystem>
#include <iostream>
#include <string>
#include <unistd.h>

#include <ATen/ATen.h>

#include "core/check.h"
#include "distributed/nccl_backend.h"
#include "distributed/store.h"
#include "kernels/adam_step.h"
#include "kernels/scale_copy.h"

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

void check_scale_copy() {
  for (std::int64_t n : {1, 3, 4, 5, 1023, 4097, (1 << 22) + 3}) {
    const at::Tensor src = at::randn({n});
    at::Tensor expected = at::empty({n});
    dpt::kernels::scale_copy_cpu(expected.data_ptr<float>(), src.data_ptr<float>(), n, 0.37f);
    at::Tensor dst = at::empty({n}, at::TensorOptions().device(at::kCUDA));
    dpt::kernels::scale_copy(dst, src.cuda(), 0.37);
    report("scale_copy cuda vs cpu, " + std::to_string(n) + " floats", at::equal(dst.cpu(), expected));
  }
  // A misaligned source takes the scalar path.
  const at::Tensor src = at::randn({1001});
  at::Tensor expected = at::empty({1000});
  dpt::kernels::scale_copy_cpu(expected.data_ptr<float>(), src.data_ptr<float>() + 1, 1000, 2.5f);
  at::Tensor dst = at::empty({1000}, at::TensorOptions().device(at::kCUDA));
  dpt::kernels::scale_copy(dst, src.cuda().narrow(0, 1, 1000), 2.5);
  report("scale_copy cuda vs cpu, misaligned source", at::equal(dst.cpu(), expected));
}

// Both paths round every operation to float32 in the same order (the CUDA kernel spells out each rounding), so
// they agree bit for bit, with and without weight decay.
void check_adam_step() {
  for (float weight_decay : {0.0F, 0.01F}) {
    for (std::int64_t n : {1, 5, 4097, (1 << 22) + 3}) {
      dpt::kernels::AdamScalars s;
      s.weight_decay = weight_decay;
      s.sqrt_bias_correction2 = 0.0447F;
      s.step_size = 0.0105F;
      const at::Tensor param = at::randn({n});
      const at::Tensor grad = at::randn({n});
      const at::Tensor exp_avg = at::randn({n}) * 0.1;
      const at::Tensor exp_avg_sq = at::rand({n}) * 0.01;
      at::Tensor p = param.clone(), m = exp_avg.clone(), v = exp_avg_sq.clone();
      dpt::kernels::adam_step_cpu(p.data_ptr<float>(), grad.data_ptr<float>(), m.data_ptr<float>(),
                                  v.data_ptr<float>(), n, s);
      at::Tensor pc = param.cuda(), mc = exp_avg.cuda(), vc = exp_avg_sq.cuda();
      dpt::kernels::adam_step(pc, grad.cuda(), mc, vc, s);
      report("adam_step cuda vs cpu, " + std::to_string(n) + " floats, weight decay " + std::to_string(weight_decay),
             at::equal(pc.cpu(), p) && at::equal(mc.cpu(), m) && at::equal(vc.cpu(), v));
    }
  }
}

}  // namespace

int main() {
  try {
    DPT_CHECK(at::hasCUDA(), "gpu_check needs a CUDA build of LibTorch and a visible GPU: configure with ",
              "CMAKE_PREFIX_PATH from a CUDA torch and run on a GPU machine");
    const auto store_dir = std::filesystem::temp_directory_path() / ("dptrain-gpu-check-" + std::to_string(::getpid()));
    check_nccl_world_of_one(store_dir.string());
    std::filesystem::remove_all(store_dir);
    check_scale_copy();
    check_adam_step();
    std::cout << "gpu_check: all checks passed" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gpu_check: " << e.what() << std::endl;
    return 1;
  }
}
