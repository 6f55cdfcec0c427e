// Each rank owns one slot and is its only writer; any rank may read any slot. A slot is a seqlock: the version
// is odd while its owner rewrites `started` and `what`, so a reader retries until it sees one version on both
// sides of its copy. Every access is an atomic builtin: the slots live in memory that other processes write.
#include "distributed/progress_board.h"

#include <algorithm>

#include "core/check.h"

namespace dpt::distributed {
namespace {

constexpr std::size_t kWhatBytes = 232;

struct Slot {
  std::uint64_t version;
  std::uint64_t started;
  std::uint64_t finished;
  char what[kWhatBytes];
};
static_assert(sizeof(Slot) == 256, "one slot per 256 bytes");

Slot* slot(char* base, int index) { return reinterpret_cast<Slot*>(base) + index; }

std::string describe(std::uint64_t number, const std::string& what) {
  return "#" + std::to_string(number) + ", " + what;
}

}  // namespace

std::string progress_clause(const std::string& who, const CollectiveProgress& other, std::uint64_t blocking,
                            const std::string& blocking_what, std::uint64_t number) {
  if (other.started == 0) return who + " has not started any collective";
  if (other.started < blocking) {
    return who + " has not reached " + (blocking == number ? "it" : "#" + std::to_string(blocking)) +
           " (its last: " + describe(other.started, other.what) +
           (other.finished >= other.started ? ", finished)" : ", still running)");
  }
  if (other.started > blocking) return who + " is past it, in " + describe(other.started, other.what);
  if (other.what != blocking_what) {
    return who + "'s collective #" + std::to_string(blocking) + " is " + other.what +
           ": the ranks issued different collectives";
  }
  return who + (other.finished >= blocking ? " has finished it" : " is in it too");
}

std::unique_ptr<ProgressBoard> ProgressBoard::create(MPI_Comm comm, MPI_Comm node) {
  int rank = 0;
  int world_size = 1;
  int index = 0;
  int node_size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world_size);
  MPI_Comm_rank(node, &index);
  MPI_Comm_size(node, &node_size);
  std::vector<int> ranks(static_cast<std::size_t>(node_size));
  DPT_CHECK_MPI(MPI_Allgather(&rank, 1, MPI_INT, ranks.data(), 1, MPI_INT, node));
  auto segment = NodeSegment::create(node, static_cast<std::size_t>(node_size) * sizeof(Slot), "progress");
  if (!segment) return nullptr;
  return std::unique_ptr<ProgressBoard>(new ProgressBoard(std::move(segment), index, std::move(ranks), world_size));
}

void ProgressBoard::started(std::uint64_t number, const std::string& what) {
  Slot* mine = slot(segment_->data(), slot_);
  const std::uint64_t version = __atomic_load_n(&mine->version, __ATOMIC_RELAXED);
  __atomic_store_n(&mine->version, version + 1, __ATOMIC_RELAXED);
  __atomic_thread_fence(__ATOMIC_RELEASE);
  __atomic_store_n(&mine->started, number, __ATOMIC_RELAXED);
  const std::size_t n = std::min(what.size(), kWhatBytes - 1);
  for (std::size_t i = 0; i <= n; ++i) __atomic_store_n(&mine->what[i], i < n ? what[i] : '\0', __ATOMIC_RELAXED);
  __atomic_store_n(&mine->version, version + 2, __ATOMIC_RELEASE);
}

void ProgressBoard::finished(std::uint64_t number) {
  __atomic_store_n(&slot(segment_->data(), slot_)->finished, number, __ATOMIC_RELEASE);
}

ProgressBoard::Snapshot ProgressBoard::read(int index) const {
  const Slot* s = slot(segment_->data(), index);
  Snapshot snapshot;
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const std::uint64_t before = __atomic_load_n(&s->version, __ATOMIC_ACQUIRE);
    snapshot.started = __atomic_load_n(&s->started, __ATOMIC_RELAXED);
    snapshot.what.clear();
    for (std::size_t i = 0; i < kWhatBytes; ++i) {
      const char c = __atomic_load_n(&s->what[i], __ATOMIC_RELAXED);
      if (c == '\0') break;
      snapshot.what += c;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (before % 2 == 0 && __atomic_load_n(&s->version, __ATOMIC_RELAXED) == before) break;
  }
  snapshot.finished = __atomic_load_n(&s->finished, __ATOMIC_ACQUIRE);
  return snapshot;
}

std::string ProgressBoard::whereabouts(std::uint64_t number, const std::string& what, bool others_accounted) const {
  std::string text;
  const auto add = [&](const std::string& clause) { text += (text.empty() ? "" : "; ") + clause; };
  // The collective that holds this rank up: an earlier one when its communication thread is still in it.
  const Snapshot self = read(slot_);
  std::uint64_t blocking = number;
  std::string blocking_what = what;
  if (self.started < number && self.finished < self.started) {
    blocking = self.started;
    blocking_what = self.what;
    add("this rank's communication thread is still in collective " + describe(blocking, blocking_what));
  }
  for (int index = 0; index < static_cast<int>(ranks_.size()); ++index) {
    if (index == slot_) continue;
    add(progress_clause("rank " + std::to_string(ranks_[static_cast<std::size_t>(index)]), read(index), blocking,
                        blocking_what, number));
  }
  const auto elsewhere = world_size_ - static_cast<int>(ranks_.size());
  if (elsewhere > 0 && !others_accounted) add(std::to_string(elsewhere) + " rank(s) on other nodes cannot be seen from this one");
  return text;
}

}  // namespace dpt::distributed
