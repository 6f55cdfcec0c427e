// Deadlines and polling with back-off, shared by the stores and the MPI exchange: every wait of theirs is bounded.
#pragma once

#include <algorithm>
#include <chrono>
#include <thread>

namespace dpt::distributed::detail {

using Clock = std::chrono::steady_clock;

inline Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}

// Polls `ready` with a back-off from 0.1 ms to 10 ms until it returns true or `deadline` passes: quick when the
// other side is already there, and a few wake-ups a second when it is late.
template <typename Ready>
bool poll_until(Clock::time_point deadline, Ready&& ready) {
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    if (ready()) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
}

}  // namespace dpt::distributed::detail
