// gpu_check: on a GPU machine, checks the NCCL backend at world size 1 and the CUDA scale_copy kernel against
// the CPU path, one line per check; exits non-zero on the first mismatch. Run by bench/gpu_check.sh.
#include <filesystem>
#include <iostream>
#include <string>
#include <unistd.h>

#include <ATen/ATen.h>

#include "core/check.h"
#include "distributed/nccl_backend.h"
#include "distributed/store.h"
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
  backend.barrier()->wait();
  report("nccl barrier", true);
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

}  // namespace

int main() {
  try {
    DPT_CHECK(at::hasCUDA(), "gpu_check needs a CUDA build of LibTorch and a visible GPU: configure with ",
              "CMAKE_PREFIX_PATH from a CUDA torch and run on a GPU machine");
    const auto store_dir = std::filesystem::temp_directory_path() / ("dptrain-gpu-check-" + std::to_string(::getpid()));
    check_nccl_world_of_one(store_dir.string());
    std::filesystem::remove_all(store_dir);
    check_scale_copy();
    std::cout << "gpu_check: all checks passed" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "gpu_check: " << e.what() << std::endl;
    return 1;
  }
}
