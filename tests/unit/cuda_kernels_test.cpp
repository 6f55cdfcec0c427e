// Every CUDA kernel against its CPU path on awkward sizes and unaligned views (label gpu). Without a CUDA build
// of LibTorch and a visible GPU the binary exits 77, which ctest reports as skipped, not passed.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <iostream>
#include <limits>
#include <string>

#include "kernels/adam_step.h"
#include "kernels/bucket_pack.h"
#include "kernels/grad_norm.h"
#include "kernels/scale_copy.h"
#include "kernels/sgd_step.h"

namespace {

TEST(CudaKernels, ScaleCopyMatchesTheCpuPath) {
  for (std::int64_t n : {1, 3, 4, 5, 1023, 4097, (1 << 22) + 3}) {
    const at::Tensor src = at::randn({n});
    at::Tensor expected = at::empty({n});
    dpt::kernels::scale_copy_cpu(expected.data_ptr<float>(), src.data_ptr<float>(), n, 0.37f);
    at::Tensor dst = at::empty({n}, at::TensorOptions().device(at::kCUDA));
    dpt::kernels::scale_copy(dst, src.cuda(), 0.37);
    EXPECT_TRUE(at::equal(dst.cpu(), expected)) << "scale_copy cuda vs cpu, " + std::to_string(n) + " floats";
  }
  // A misaligned source takes the scalar path.
  const at::Tensor src = at::randn({1001});
  at::Tensor expected = at::empty({1000});
  dpt::kernels::scale_copy_cpu(expected.data_ptr<float>(), src.data_ptr<float>() + 1, 1000, 2.5f);
  at::Tensor dst = at::empty({1000}, at::TensorOptions().device(at::kCUDA));
  dpt::kernels::scale_copy(dst, src.cuda().narrow(0, 1, 1000), 2.5);
  EXPECT_TRUE(at::equal(dst.cpu(), expected)) << "scale_copy cuda vs cpu, misaligned source";
  // The non-finite flag, in the float4 body, in the tail and on the misaligned path, as the CPU path sets it.
  for (std::int64_t at : {0, 4096, 4099}) {
    at::Tensor with_nan = at::randn({4100});
    with_nan[at] = std::numeric_limits<float>::quiet_NaN();
    for (std::int64_t offset : {0, 1}) {
      const at::Tensor source = with_nan.cuda().narrow(0, offset, 4100 - offset);
      at::Tensor out = at::empty({4100 - offset}, at::TensorOptions().device(at::kCUDA));
      at::Tensor flag = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(at::kCUDA));
      dpt::kernels::scale_copy(out, source, 0.5, flag);
      at::Tensor reference = at::empty({4100 - offset});
      const bool cpu = dpt::kernels::scale_copy_cpu(reference.data_ptr<float>(),
                                                    with_nan.data_ptr<float>() + offset, 4100 - offset, 0.5f);
      EXPECT_TRUE(at::equal(out.cpu().isnan(), reference.isnan())) << "NaN at " << at << ", offset " << offset;
      EXPECT_EQ(flag.item<int>() == 1, cpu) << "scale_copy's non-finite flag, NaN at " << at << ", offset " << offset;
    }
  }
  at::Tensor flag = at::zeros({1}, at::TensorOptions().dtype(at::kInt).device(at::kCUDA));
  at::Tensor out = at::empty({4097}, at::TensorOptions().device(at::kCUDA));
  dpt::kernels::scale_copy(out, at::randn({4097}).cuda(), 0.5, flag);
  EXPECT_EQ(flag.item<int>(), 0) << "scale_copy's non-finite flag on finite values";
}

// Both paths round every operation to float32 in the same order (the CUDA kernel spells out each rounding), so
// they agree bit for bit, with and without weight decay.
TEST(CudaKernels, AdamStepMatchesTheCpuPathBitForBit) {
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
      dpt::kernels::adam_step_cpu(p.data_ptr<float>(), grad.data_ptr<float>(), m.data_ptr<float>(), v.data_ptr<float>(),
                                  n, s);
      at::Tensor pc = param.cuda(), mc = exp_avg.cuda(), vc = exp_avg_sq.cuda();
      dpt::kernels::adam_step(pc, grad.cuda(), mc, vc, s);
      EXPECT_TRUE(at::equal(pc.cpu(), p) && at::equal(mc.cpu(), m) && at::equal(vc.cpu(), v))
          << "adam_step cuda vs cpu, " + std::to_string(n) + " floats, weight decay " + std::to_string(weight_decay);
    }
  }
}

TEST(CudaKernels, SgdStepMatchesTheCpuPathBitForBit) {
  for (bool first : {true, false}) {
    for (std::int64_t n : {1, 7, 4097, (1 << 20) + 3}) {
      dpt::kernels::SgdScalars s;
      s.momentum = 0.9F;
      s.dampening = 0.1F;
      s.weight_decay = 0.01F;
      s.first_step = first;
      const at::Tensor param = at::randn({n});
      const at::Tensor grad = at::randn({n});
      const at::Tensor buffer = at::randn({n});
      at::Tensor p = param.clone(), b = buffer.clone();
      dpt::kernels::sgd_step_cpu(p.data_ptr<float>(), grad.data_ptr<float>(), b.data_ptr<float>(), n, s);
      at::Tensor pc = param.cuda(), bc = buffer.cuda();
      dpt::kernels::sgd_step(pc, grad.cuda(), bc, s);
      EXPECT_TRUE(at::equal(pc.cpu(), p) && at::equal(bc.cpu(), b))
          << "sgd_step cuda vs cpu, " + std::to_string(n) + " floats" + (first ? ", first step" : "");
    }
  }
}

// The CUDA sums add in another order than the CPU's eight lanes: equal to 1e-12, and bit-identical run to run.
TEST(CudaKernels, GradNormMatchesTheCpuPath) {
  std::vector<at::Tensor> cpu;
  for (std::int64_t n : {0, 1, 7, (1 << 20) + 3, 65537}) cpu.push_back(at::randn({n}));
  cpu.push_back(at::randn({1001}).narrow(0, 1, 1000));
  cpu[2][3] = std::numeric_limits<float>::quiet_NaN();
  std::vector<at::Tensor> gpu;
  for (const auto& t : cpu) gpu.push_back(t.cuda());
  const at::Tensor expected = dpt::kernels::gradient_stats(cpu);
  const at::Tensor got = dpt::kernels::gradient_stats(gpu).cpu();
  EXPECT_TRUE(at::allclose(got.nan_to_num(0), expected.nan_to_num(0), 1e-12, 0) &&
              at::equal(got.select(1, 1), expected.select(1, 1)))
      << "gradient_stats cuda vs cpu (sums, non-finite counts)";
  EXPECT_TRUE(at::equal(dpt::kernels::gradient_stats(gpu).cpu().nan_to_num(0), got.nan_to_num(0)))
      << "gradient_stats cuda, the same bits twice";
  cpu.erase(cpu.begin() + 2);
  gpu.erase(gpu.begin() + 2);
  dpt::kernels::clip_and_unscale(cpu, dpt::kernels::gradient_stats(cpu), 0.5, 0.25);
  dpt::kernels::clip_and_unscale(gpu, dpt::kernels::gradient_stats(gpu), 0.5, 0.25);
  bool same = true;
  for (std::size_t i = 0; i < cpu.size(); ++i) same = same && at::allclose(gpu[i].cpu(), cpu[i], 1e-6, 0);
  EXPECT_TRUE(same) << "clip_and_unscale cuda vs cpu";
}

TEST(CudaKernels, BucketPackMatchesTheCpuPathBitForBit) {
  for (auto dtype : {at::kBFloat16, at::kHalf}) {
    for (std::int64_t n : {1, 7, 4097, (1 << 20) + 3}) {
      const at::Tensor flat = at::randn({n}) * 100;
      at::Tensor expected = at::empty({n}, dtype);
      dpt::kernels::pack_bucket(expected, flat, 0.25);
      at::Tensor wire = at::empty({n}, at::TensorOptions().dtype(dtype).device(at::kCUDA));
      dpt::kernels::pack_bucket(wire, flat.cuda(), 0.25);
      at::Tensor back = at::empty({n}, at::TensorOptions().device(at::kCUDA));
      dpt::kernels::unpack_bucket(back, wire, 2.0);
      at::Tensor expected_back = at::empty({n});
      dpt::kernels::unpack_bucket(expected_back, expected, 2.0);
      EXPECT_TRUE(at::equal(wire.cpu(), expected) && at::equal(back.cpu(), expected_back))
          << std::string("pack/unpack ") + (dtype == at::kHalf ? "fp16" : "bf16") + " cuda vs cpu, " +
                 std::to_string(n) + " values";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!at::hasCUDA() || !torch::cuda::is_available()) {
    std::cout << "cuda_kernels_test: skipped: needs a CUDA build of LibTorch (CMAKE_PREFIX_PATH from a CUDA torch) "
                 "and a visible GPU"
              << std::endl;
    return 77;
  }
  return RUN_ALL_TESTS();
}
