// Deadlines, polling with back-off and poll() on a socket, shared by the stores, the MPI exchange and the peer probe:
// every wait of theirs is bounded.
#pragma once

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <limits>
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

// Milliseconds from now to `deadline` for poll(), rounded up so that a wait never ends just before it.
inline int millis_until(Clock::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, std::numeric_limits<int>::max()));
}

// poll() on one descriptor until `events` or the deadline: true when ready (or in error, which the next call
// on it reports).
inline bool wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, millis_until(deadline));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return true;
  }
}

}  // namespace dpt::distributed::detail
