// Preemption: SIGTERM, SIGUSR1 and SIGINT ask the training loop to save and exit at the next step boundary
// with kPreemptedExitCode, so a scheduler can requeue the job; a second signal ends the process at once.
#pragma once

namespace dpt::train {

// EX_TEMPFAIL from <sysexits.h>: "try again later". Slurm and Kubernetes can requeue on it.
constexpr int kPreemptedExitCode = 75;

// Installs the handlers for as long as it lives and restores the previous ones afterwards. The handler only
// stores the signal number (async-signal-safe); on a second signal it calls _exit(128 + signal).
class PreemptionSignals {
 public:
  PreemptionSignals();
  ~PreemptionSignals();
  PreemptionSignals(const PreemptionSignals&) = delete;
  PreemptionSignals& operator=(const PreemptionSignals&) = delete;

  // The first signal received since construction, 0 for none.
  static int received();
};

}  // namespace dpt::train
