// plain_loop: fashion_cnn trained by a bare LibTorch loop (synthetic batches prepared up front, LibTorch's Adam, no
// loader, reducer, metrics or checkpoints). Prints samples/s. Two uses in ddp_scaling.sh:
//   - alone: the baseline for dptrain's framework overhead at one rank;
//   - under mpirun with --sync, the same loop with every rank meeting the others once per step:
//       barrier    an MPI_Barrier after backward and nothing exchanged: what lockstep alone costs on the machine;
//       allreduce  one MPI_Allreduce per parameter gradient after backward, then a division by the world size:
//                  the approach of LibTorch's C++ distributed example, the status quo dptrain replaces.
//   build/bench/plain_loop [--steps 200] [--warmup 20] [--batch 64] [--threads 1] [--sync none|barrier|allreduce]
#include <mpi.h>

#include <chrono>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include "core/check.h"
#include "train/model_registry.h"

int main(int argc, char** argv) {
  bool mpi = false;
  try {
    std::int64_t steps = 200, warmup = 20, batch = 64, threads = 1;
    std::string sync = "none";
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string arg = argv[i];
      if (arg == "--sync") {
        sync = argv[i + 1];
        DPT_CHECK(sync == "none" || sync == "barrier" || sync == "allreduce", "--sync takes none, barrier or ",
                  "allreduce, not ", sync);
        continue;
      }
      const std::int64_t value = std::stoll(argv[i + 1]);
      if (arg == "--steps") steps = value;
      else if (arg == "--warmup") warmup = value;
      else if (arg == "--batch") batch = value;
      else if (arg == "--threads") threads = value;
      else DPT_THROW("unknown option ", arg, "; options: --steps N --warmup N --batch N --threads N --sync MODE");
    }
    int rank = 0, world = 1;
    if (sync != "none") {
      DPT_CHECK_MPI(MPI_Init(&argc, &argv));
      mpi = true;
      MPI_Comm_rank(MPI_COMM_WORLD, &rank);
      MPI_Comm_size(MPI_COMM_WORLD, &world);
    }
    at::set_num_threads(static_cast<int>(threads));
    torch::manual_seed(1);
    auto model = dpt::train::ModelRegistry::global().create("fashion_cnn", nlohmann::json::object());
    torch::optim::Adam optimizer(model.ptr()->parameters(), torch::optim::AdamOptions(1e-3));
    // A few distinct batches, like a loader would hand over, made before timing starts.
    std::vector<torch::Tensor> inputs, targets;
    for (int b = 0; b < 8; ++b) {
      inputs.push_back(torch::randn({batch, 1, 28, 28}));
      targets.push_back(torch::randint(0, 10, {batch}, torch::kLong));
    }
    auto run = [&](std::int64_t n) {
      for (std::int64_t s = 0; s < n; ++s) {
        optimizer.zero_grad();
        auto loss = torch::nn::functional::cross_entropy(model.forward(inputs[s % 8]), targets[s % 8]);
        loss.backward();
        if (sync == "barrier") DPT_CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
        if (sync == "allreduce") {
          for (auto& parameter : model.ptr()->parameters()) {
            at::Tensor grad = parameter.grad();
            DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, grad.data_ptr(), static_cast<int>(grad.numel()), MPI_FLOAT,
                                        MPI_SUM, MPI_COMM_WORLD));
            grad.div_(world);
          }
        }
        optimizer.step();
      }
    };
    run(warmup);
    const auto start = std::chrono::steady_clock::now();
    run(steps);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rank == 0) {
      std::cout << "plain_loop: fashion_cnn, batch " << batch << "/rank, Adam, " << threads << " thread(s), " << world
                << " rank(s), sync " << sync << ", " << steps << " steps after " << warmup
                << " warm-up: " << static_cast<double>(steps * batch * world) / seconds << " samples/s" << std::endl;
    }
    if (mpi) MPI_Finalize();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "plain_loop: " << e.what() << std::endl;
    if (mpi) MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
  }
}
