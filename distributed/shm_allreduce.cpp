// ShmAllreduce: a piece of the tensor at a time, through one of the rank's two buffers:
//   1. this rank copies its contribution to the other ranks' slices into its buffer;  meet
//   2. it sums its own slice: its own values plus the other ranks' buffers, into the tensor and its buffer;  barrier
//   3. it copies every other slice's sum from that slice's owner.
// The buffers alternate: before a rank writes a buffer again it has met every rank in the next piece, so no
// rank still reads it. Each slice is summed by one rank and copied by the others: identical on every rank.
#include "distributed/shm_allreduce.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include "core/check.h"

namespace dpt::distributed {
namespace {

constexpr std::size_t kNameBytes = 64;

// The shared-memory object's name, made by rank 0 and unique to this job.
std::array<char, kNameBytes> object_name() {
  std::random_device random;
  std::array<char, kNameBytes> name{};
  std::snprintf(name.data(), name.size(), "/dptrain-allreduce-%d-%08x%08x", static_cast<int>(getpid()), random(),
                random());
  return name;
}

// Rank 0: creates the object and reserves its memory now, so that a full /dev/shm is an error here rather than a
// SIGBUS in the middle of training. Returns the descriptor, or -1 with the reason.
int create_object(const char* name, std::size_t bytes, std::string& why_not) {
  const int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, S_IRUSR | S_IWUSR);
  if (fd < 0) {
    why_not = std::string("shm_open(") + name + ") failed: " + std::strerror(errno);
    return -1;
  }
  const int error = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (error == 0) return fd;
  why_not = "cannot reserve " + std::to_string(bytes >> 20) + " MiB in /dev/shm (" + std::strerror(error) +
            "): free or enlarge /dev/shm (docker run --shm-size), or lower ddp.shared_memory_mb";
  close(fd);
  shm_unlink(name);
  return -1;
}

char* map_object(int fd, std::size_t bytes, std::string& why_not) {
  void* mapping = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping != MAP_FAILED) return static_cast<char*>(mapping);
  why_not = "mmap of the shared all-reduce segments failed: " + std::string(std::strerror(errno));
  return nullptr;
}

bool all_ranks(bool ok, MPI_Comm comm) {
  int value = ok ? 1 : 0;
  DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MIN, comm));
  return value == 1;
}

}  // namespace

std::unique_ptr<ShmAllreduce> ShmAllreduce::create(MPI_Comm comm, std::size_t buffer_bytes, std::string* why_not) {
  int rank = 0;
  int ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  if (ranks < 2 || buffer_bytes == 0) return nullptr;
  MPI_Comm node = MPI_COMM_NULL;
  DPT_CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int node_ranks = 0;
  MPI_Comm_size(node, &node_ranks);
  MPI_Comm_free(&node);
  if (!all_ranks(node_ranks == ranks, comm)) return nullptr;

  const std::size_t bytes = static_cast<std::size_t>(ranks) * 2 * buffer_bytes;
  std::string reason;
  std::array<char, kNameBytes> name{};
  int fd = -1;
  if (rank == 0) {
    name = object_name();
    fd = create_object(name.data(), bytes, reason);
    if (fd < 0) name[0] = '\0';
  }
  DPT_CHECK_MPI(MPI_Bcast(name.data(), static_cast<int>(name.size()), MPI_CHAR, 0, comm));
  if (name[0] == '\0') {
    if (why_not) *why_not = reason;
    return nullptr;
  }
  if (rank != 0) {
    fd = shm_open(name.data(), O_RDWR, 0);
    if (fd < 0) reason = std::string("shm_open(") + name.data() + ") failed: " + std::strerror(errno);
  }
  char* mapping = fd < 0 ? nullptr : map_object(fd, bytes, reason);
  if (fd >= 0) close(fd);
  const bool ok = all_ranks(mapping != nullptr, comm);
  // Every rank has it open or has given up: the name goes, and the memory with the last mapping.
  if (rank == 0) shm_unlink(name.data());
  if (!ok) {
    if (mapping) munmap(mapping, bytes);
    if (why_not) *why_not = reason.empty() ? "another rank could not map the shared all-reduce segments" : reason;
    return nullptr;
  }
  return std::unique_ptr<ShmAllreduce>(new ShmAllreduce(comm, mapping, ranks, buffer_bytes));
}

ShmAllreduce::ShmAllreduce(MPI_Comm comm, char* mapping, int ranks, std::size_t buffer_bytes)
    : comm_(comm), mapping_(mapping), ranks_(ranks), buffer_bytes_(buffer_bytes) {
  MPI_Comm_rank(comm, &rank_);
}

ShmAllreduce::~ShmAllreduce() { munmap(mapping_, static_cast<std::size_t>(ranks_) * 2 * buffer_bytes_); }

bool ShmAllreduce::supports(const at::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case at::kFloat:
    case at::kDouble:
    case at::kBFloat16:
    case at::kHalf:
    case at::kByte:
    case at::kChar:
    case at::kInt:
    case at::kLong: return true;
    default: return false;
  }
}

char* ShmAllreduce::buffer(int rank, int parity) const {
  return mapping_ + (static_cast<std::size_t>(rank) * 2 + static_cast<std::size_t>(parity)) * buffer_bytes_;
}

// The fences keep the compiler and the CPU from moving this rank's stores past the barrier or the other ranks'
// loads before it.
void ShmAllreduce::barrier() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  DPT_CHECK_MPI(MPI_Barrier(comm_));
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

void ShmAllreduce::sum(const at::Tensor& tensor, const std::function<void()>& meet) {
  const auto element = static_cast<std::int64_t>(tensor.element_size());
  const std::int64_t per_piece = static_cast<std::int64_t>(buffer_bytes_) / element;
  const bool widen = tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf;
  auto* data = static_cast<char*>(tensor.data_ptr());
  bool met = false;
  for (std::int64_t first = 0; first < tensor.numel(); first += per_piece) {
    const std::int64_t count = std::min(per_piece, tensor.numel() - first);
    char* piece = data + first * element;
    const auto begin = [&](int k) { return count * k / ranks_; };
    const auto bytes = [&](int k) { return static_cast<std::size_t>((begin(k + 1) - begin(k)) * element); };
    const auto slice = [&](char* base) {
      return at::from_blob(base + begin(rank_) * element, {begin(rank_ + 1) - begin(rank_)}, tensor.options());
    };
    for (int k = 0; k < ranks_; ++k) {
      if (k != rank_) std::memcpy(buffer(rank_, parity_) + begin(k) * element, piece + begin(k) * element, bytes(k));
    }
    if (met) {
      barrier();
    } else {
      std::atomic_thread_fence(std::memory_order_seq_cst);
      meet();
      std::atomic_thread_fence(std::memory_order_seq_cst);
      met = true;
    }
    at::Tensor mine = slice(piece);
    at::Tensor total = widen ? mine.to(at::kFloat) : mine;
    for (int k = 0; k < ranks_; ++k) {
      if (k != rank_) total.add_(slice(buffer(k, parity_)));
    }
    if (widen) mine.copy_(total);
    std::memcpy(buffer(rank_, parity_) + begin(rank_) * element, piece + begin(rank_) * element, bytes(rank_));
    barrier();
    for (int k = 0; k < ranks_; ++k) {
      if (k != rank_) std::memcpy(piece + begin(k) * element, buffer(k, parity_) + begin(k) * element, bytes(k));
    }
    parity_ ^= 1;
  }
}

}  // namespace dpt::distributed
