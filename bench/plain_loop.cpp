// plain_loop: the baseline for dptrain's framework overhead at one rank: fashion_cnn trained by a bare LibTorch
// loop (synthetic batches prepared up front, Adam, no loader, reducer, metrics or checkpoints). Prints samples/s.
//   build/bench/plain_loop [--steps 200] [--warmup 20] [--batch 64] [--threads 1]
#include <chrono>
#include <iostream>
#include <string>

#include <torch/torch.h>

#include "core/check.h"
#include "train/model_registry.h"

int main(int argc, char** argv) {
  try {
    std::int64_t steps = 200, warmup = 20, batch = 64, threads = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
      const std::string arg = argv[i];
      const std::int64_t value = std::stoll(argv[i + 1]);
      if (arg == "--steps") steps = value;
      else if (arg == "--warmup") warmup = value;
      else if (arg == "--batch") batch = value;
      else if (arg == "--threads") threads = value;
      else DPT_THROW("unknown option ", arg, "; options: --steps N --warmup N --batch N --threads N");
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
        optimizer.step();
      }
    };
    run(warmup);
    const auto start = std::chrono::steady_clock::now();
    run(steps);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "plain_loop: fashion_cnn, batch " << batch << ", Adam, " << threads << " thread(s), " << steps
              << " steps after " << warmup << " warm-up: " << static_cast<double>(steps * batch) / seconds
              << " samples/s" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "plain_loop: " << e.what() << std::endl;
    return 1;
  }
}
