// zero_memory: one training run of a dptrain config (with --set overrides, as `dptrain train` takes them), then
// per rank its peak resident memory (getrusage) and the optimizer state it holds, and the run's samples/s. Rank 0
// prints one Markdown table row: ranks | ddp.zero | optimizer state MiB per rank | peak RSS MiB per rank (max, min
// over the ranks) | samples/s (steps x global batch / the fit's wall time, start-up included). zero_memory.sh runs
// it for ddp.zero = 0 and 1 at np 1, 2, 3.
//   mpirun -np N build/bench/zero_memory CONFIG [--set key=value ...]
#include <sys/resource.h>

#include <iomanip>
#include <iostream>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/config.h"
#include "core/runtime.h"
#include "distributed/make_backend.h"
#include "train/train_options.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  try {
    dpt::Runtime runtime(argc, argv);
    DPT_CHECK(argc >= 2, "usage: zero_memory CONFIG [--set key=value ...]");
    std::vector<std::string> overrides;
    for (int i = 2; i < argc; ++i) {
      const std::string arg = argv[i];
      DPT_CHECK(arg == "--set" && i + 1 < argc, "unknown argument '", arg, "': options are --set key=value");
      overrides.emplace_back(argv[++i]);
    }
    const dpt::Config config = dpt::Config::load(dpt::train::config_schema(), argv[1], overrides);
    runtime.configure(dpt::RuntimeOptions{static_cast<int>(config.get_int("runtime.threads")), false});
    const dpt::distributed::Backends backends =
        dpt::distributed::make_backends(runtime, dpt::distributed::BackendOptions::from_config(config));
    dpt::train::Trainer trainer(config, runtime, backends);
    const dpt::train::FitResult result = trainer.fit();
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    constexpr double kMiB = 1024.0 * 1024.0;
    at::Tensor mine = at::tensor({static_cast<double>(trainer.optimizer_state_bytes()) / kMiB,
                                  static_cast<double>(usage.ru_maxrss) * 1024.0 / kMiB}, at::kDouble);
    const int world = backends.control->world_size();
    at::Tensor all = at::empty({world, 2}, at::kDouble);
    backends.control->allgather(mine, all)->wait();
    if (runtime.is_main()) {
      const double samples = static_cast<double>(result.steps) * static_cast<double>(world) *
                             static_cast<double>(config.get_int("train.batch_size"));
      const at::Tensor state = all.select(1, 0);
      const at::Tensor rss = all.select(1, 1);
      std::cout << std::fixed << std::setprecision(1) << "| " << world << " | " << config.get_int("ddp.zero")
                << " | " << state.max().item<double>() << " | " << rss.max().item<double>() << " (min "
                << rss.min().item<double>() << ") | " << samples / result.seconds << " |" << std::endl;
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "dptrain: error: " << e.what() << std::endl;
    return 1;
  }
}
