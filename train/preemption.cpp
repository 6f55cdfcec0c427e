// Signal handlers that only set a flag; the training loop polls it at step boundaries.
#include "train/preemption.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

namespace dpt::train {
namespace {

// Atomic, not volatile sig_atomic_t: two signals can be handled at once on two threads (MPI and LibTorch start
// threads that do not block signals), and only an atomic exchange lets exactly one of them be "the first".
std::atomic<int> g_received{0};
static_assert(std::atomic<int>::is_always_lock_free, "a lock-free atomic is async-signal-safe; a locked one is not");
constexpr int kSignals[] = {SIGTERM, SIGUSR1, SIGINT};
struct sigaction g_previous[sizeof(kSignals) / sizeof(kSignals[0])];

extern "C" void on_preemption_signal(int signal) {
  if (g_received.exchange(signal) != 0) ::_exit(128 + signal);  // the user insists: no save, no clean-up
}

}  // namespace

PreemptionSignals::PreemptionSignals() {
  g_received.store(0);
  struct sigaction action {};
  action.sa_handler = on_preemption_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a read or write interrupted by the signal resumes instead of failing with EINTR.
  action.sa_flags = SA_RESTART;
  for (std::size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i) {
    ::sigaction(kSignals[i], &action, &g_previous[i]);
  }
}

PreemptionSignals::~PreemptionSignals() {
  for (std::size_t i = 0; i < sizeof(kSignals) / sizeof(kSignals[0]); ++i) {
    ::sigaction(kSignals[i], &g_previous[i], nullptr);
  }
}

int PreemptionSignals::received() { return g_received.load(); }

}  // namespace dpt::train
