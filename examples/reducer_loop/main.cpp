// reducer_loop: your own training loop on dptrain's pieces instead of its Trainer (PyTorch DDP's pattern in C++):
//   mpirun -np 2 --bind-to none build/examples/reducer_loop/dptrain_reducer_loop [STEPS]
// Each rank prints the loss over all samples before and after training, and a checksum of its parameters before and
// after: equal on every rank.
#include <torch/torch.h>

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "core/runtime.h"
#include "distributed/make_backend.h"
#include "distributed/reducer.h"

namespace {

// FNV-1a over the parameters' bytes: ranks agree on it only if they hold bit-identical parameters.
std::string checksum(const std::vector<torch::Tensor>& parameters) {
  std::uint64_t hash = 14695981039346656037ull;
  for (const auto& p : parameters) {
    const torch::Tensor t = p.detach().contiguous();
    const auto* bytes = static_cast<const unsigned char*>(t.data_ptr());
    for (std::size_t i = 0; i < t.nbytes(); ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  }
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  std::unique_ptr<dpt::Runtime> runtime;
  try {
    runtime = std::make_unique<dpt::Runtime>(argc, argv);  // MPI_Init under mpirun/srun, one rank otherwise
    runtime->configure({});
    const std::int64_t steps = argc > 1 ? std::stoll(argv[1]) : 100;
    const int rank = runtime->rank(), ranks = runtime->world_size();

    // The same synthetic regression data on every rank (seed 0); each rank trains on its slice of each batch.
    torch::manual_seed(0);
    const std::int64_t samples = 1024, global_batch = 64;
    const torch::Tensor inputs = torch::randn({samples, 8});
    const torch::Tensor targets = torch::tanh(inputs.matmul(torch::randn({8, 1})));

    // Ranks start from different weights on purpose: broadcast_from_root below makes them rank 0's.
    torch::manual_seed(1 + rank);
    torch::nn::Sequential model(torch::nn::Linear(8, 32), torch::nn::Tanh(), torch::nn::Linear(32, 1));
    const std::vector<torch::Tensor> parameters = model->parameters();
    torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(1e-2));

    // What DDP(model) is in PyTorch: backends for the collectives (model tensors, and small control messages),
    // equal initial parameters, and the Reducer, which all-reduces gradient buckets during backward.
    const dpt::distributed::Backends backends = dpt::distributed::make_backends(*runtime);
    dpt::distributed::broadcast_from_root(parameters, *backends.gradients);
    const std::string initial = checksum(parameters);
    std::vector<dpt::distributed::Reducer::NamedParameter> named;
    for (const auto& p : model->named_parameters()) named.emplace_back(p.key(), p.value());
    dpt::distributed::Reducer reducer(std::move(named), *backends.gradients, *backends.control);

    // Every rank holds every sample, so this loss needs no collective; it is the same on every rank.
    const auto loss_on_all_samples = [&] {
      torch::NoGradGuard no_grad;
      return torch::mse_loss(model->forward(inputs), targets).item<double>();
    };
    const double initial_loss = loss_on_all_samples();
    for (std::int64_t step = 0; step < steps; ++step) {
      const std::int64_t start = step * global_batch % samples;
      const std::int64_t begin = start + global_batch * rank / ranks, end = start + global_batch * (rank + 1) / ranks;
      // The Reducer scales this rank's gradient by its share of the global batch, so that the sum over ranks is
      // the gradient of the global batch's mean loss.
      const double weight = static_cast<double>(end - begin) / static_cast<double>(global_batch);
      reducer.zero_grad();
      reducer.prepare_for_backward({step, weight});
      const torch::Tensor x = inputs.slice(0, begin, end), y = targets.slice(0, begin, end);
      const torch::Tensor loss = torch::mse_loss(model->forward(x), y);
      loss.backward();
      reducer.finish();
      optimizer.step();
    }
    std::cout << "reducer_loop: rank " << rank << " of " << ranks << " | " << steps << " steps | loss " << initial_loss
              << " -> " << loss_on_all_samples() << " | parameters " << initial << " -> " << checksum(parameters)
              << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "reducer_loop: error: " << e.what() << std::endl;
    if (runtime) runtime->abort_job(1);  // the other ranks would wait for this one in their next collective
    return 1;
  }
}
