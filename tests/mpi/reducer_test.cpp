// The Reducer over real MPI ranks: a model with convolutions, BatchNorm and a sometimes-unused branch trained on
// N ranks x batch b matches one process on the N*b batch, with bit-identical parameters on every rank; 16-bit
// compression through the MPI backend's custom sum.
#include "distributed/reducer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "distributed/mpi_backend.h"
#include "mpi_test_env.h"

namespace dpt {
namespace {

namespace F = torch::nn::functional;

// conv - BatchNorm - ReLU - conv - ReLU - pool - linear, plus an `aux` linear head used on some steps only.
//
// BatchNorm in train mode normalises with the statistics of the batch it sees, so N ranks (each normalising its
// own b samples) and one process normalising N*b samples compute different functions. The single-process
// reference therefore normalises each rank's slice of its batch separately ("ghost batches" with the ranks'
// boundaries): the same function, so the gradients agree up to summation order. Running statistics: only the
// first slice updates them, as rank 0 updates its own and the trainer broadcasts rank 0's before each forward.
struct NetImpl : torch::nn::Module {
  NetImpl() {
    conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 4, 3).padding(1)));
    bn = register_module("bn", torch::nn::BatchNorm2d(4));
    conv2 = register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(4, 4, 3).padding(1)));
    fc = register_module("fc", torch::nn::Linear(4 * 4 * 4, 5));
    aux = register_module("aux", torch::nn::Linear(4 * 4 * 4, 5));
  }

  torch::Tensor forward(torch::Tensor x, const std::vector<std::int64_t>& slices, bool use_aux) {
    x = conv1(x);
    std::vector<torch::Tensor> normalised;
    std::int64_t begin = 0;
    for (std::size_t i = 0; i < slices.size(); ++i) {
      torch::Tensor part = x.narrow(0, begin, slices[i]);
      begin += slices[i];
      normalised.push_back(
          i == 0 ? bn(part)
                 : F::batch_norm(part, bn->running_mean.clone(), bn->running_var.clone(),
                                 F::BatchNormFuncOptions().weight(bn->weight).bias(bn->bias).training(true)));
    }
    x = torch::relu(torch::cat(normalised));
    x = F::max_pool2d(torch::relu(conv2(x)), F::MaxPool2dFuncOptions(2)).flatten(1);
    torch::Tensor out = fc(x);
    return use_aux ? out + aux(x) : out;
  }

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  torch::nn::Linear fc{nullptr}, aux{nullptr};
};
TORCH_MODULE(Net);

Net make_net() {
  torch::manual_seed(0);
  return Net();
}

// The global batch of `step` (the same on every rank); the last step's is one sample short, so ranks hold
// unequal counts and their weights differ.
std::pair<torch::Tensor, torch::Tensor> global_batch(int step, std::int64_t size) {
  torch::manual_seed(100 + step);
  return {torch::randn({size, 1, 8, 8}), torch::randint(0, 5, {size}, torch::kLong)};
}

// Rank r's slice [floor(G r / W), floor(G (r+1) / W)), as the sampler splits a global batch.
std::vector<std::int64_t> slice_sizes(std::int64_t global, int world) {
  std::vector<std::int64_t> sizes;
  for (int r = 0; r < world; ++r) sizes.push_back(global * (r + 1) / world - global * r / world);
  return sizes;
}

torch::Tensor flatten(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> flat;
  for (const auto& t : tensors) flat.push_back(t.detach().reshape({-1}));
  return torch::cat(flat);
}

constexpr int kSteps = 20;
constexpr std::int64_t kPerRank = 4;

bool uses_aux(int step) { return step % 3 != 0; }

TEST(Reducer, NRanksTimesBatchEqualOneRankTimesNBatch) {
  const int world = testing::runtime().world_size();
  distributed::MpiBackend backend;
  const int rank = backend.rank();

  Net ddp = make_net();
  std::vector<distributed::Reducer::NamedParameter> named;
  for (auto& p : ddp->named_parameters()) named.emplace_back(p.key(), p.value());
  distributed::ReducerOptions options;
  options.find_unused_parameters = true;
  options.first_bucket_mb = options.bucket_cap_mb = 1.0 / 1024;  // several buckets, and a rebuild
  distributed::Reducer reducer(named, backend, options);
  torch::optim::SGD ddp_optimizer(ddp->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));

  Net reference = make_net();
  torch::optim::SGD reference_optimizer(reference->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));

  for (int step = 0; step < kSteps; ++step) {
    const std::int64_t global = world * kPerRank - (step == kSteps - 1 ? 1 : 0);
    auto [x, y] = global_batch(step, global);
    const std::vector<std::int64_t> slices = slice_sizes(global, world);
    const std::int64_t begin = global * rank / world;

    distributed::broadcast_from_root(ddp->buffers(), backend);
    reducer.zero_grad();
    reducer.prepare_for_backward({step, static_cast<double>(slices[rank]) / static_cast<double>(global)});
    F::cross_entropy(ddp->forward(x.narrow(0, begin, slices[rank]), {slices[rank]}, uses_aux(step)),
                     y.narrow(0, begin, slices[rank]))
        .backward();
    reducer.finish();
    ddp_optimizer.step();

    for (auto& p : reference->parameters()) {
      if (p.grad().defined()) p.grad().zero_();
    }
    F::cross_entropy(reference->forward(x, slices, uses_aux(step)), y).backward();
    reference_optimizer.step();

    torch::Tensor mine = flatten(ddp->parameters());
    torch::Tensor all = torch::empty({world, mine.numel()});
    backend.allgather(mine, all)->wait();
    for (int r = 1; r < world; ++r) {
      ASSERT_TRUE(torch::equal(all[r], all[0])) << "step " << step << ": rank " << r << " differs from rank 0";
    }
  }

  const auto a = ddp->named_parameters();
  const auto b = reference->named_parameters();
  for (const auto& item : a) {
    const torch::Tensor& expected = b[item.key()];
    const double relative = (item.value() - expected).norm().item<double>() / expected.norm().item<double>();
    EXPECT_LT(relative, 1e-5) << item.key();
  }
  // The parameters moved, the unused branch included: a test that trains nothing would pass trivially.
  Net untouched = make_net();
  EXPECT_GT((flatten(ddp->parameters()) - flatten(untouched->parameters())).abs().max().item<double>(), 1e-2);
  EXPECT_GT((ddp->aux->weight - untouched->aux->weight).abs().max().item<double>(), 1e-3);
  if (rank == 0) {
    EXPECT_TRUE(torch::allclose(ddp->bn->running_mean, reference->bn->running_mean, 1e-5, 1e-6));
    EXPECT_TRUE(torch::allclose(ddp->bn->running_var, reference->bn->running_var, 1e-5, 1e-6));
  }
}

// bf16 travels through MpiBackend's own sum (MPI cannot add bfloat16): within 2^-7 of float32 (see the unit
// test for the bound) and identical on every rank.
TEST(Reducer, Bf16CompressionOverMpiStaysWithinToleranceAndIdentical) {
  distributed::MpiBackend backend;
  std::vector<torch::Tensor> grads;
  for (auto compression : {distributed::Compression::None, distributed::Compression::BFloat16}) {
    torch::Tensor w = torch::zeros({50000}, torch::requires_grad());
    distributed::ReducerOptions options;
    options.compression = compression;
    distributed::Reducer reducer({{"w", w}}, backend, options);
    reducer.zero_grad();
    reducer.prepare_for_backward({0, 1.0 / backend.world_size()});
    torch::manual_seed(backend.rank());
    (w * torch::randn({50000})).sum().backward();
    reducer.finish();
    grads.push_back(w.grad().clone());
  }
  const double error = (grads[1] - grads[0]).norm().item<double>() / grads[0].norm().item<double>();
  EXPECT_LT(error, 1.0 / 128);
  EXPECT_GT(error, 0.0);
  torch::Tensor all = torch::empty({backend.world_size(), grads[1].numel()});
  backend.allgather(grads[1], all)->wait();
  for (int r = 1; r < backend.world_size(); ++r) EXPECT_TRUE(torch::equal(all[r], all[0])) << "rank " << r;
}

}  // namespace
}  // namespace dpt
