#include "distributed/node_segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/check.h"

namespace dpt::distributed {
namespace {

constexpr std::size_t kNameBytes = 64;

// The shared-memory object's name, made by rank 0 and unique to this job.
std::array<char, kNameBytes> object_name(const char* purpose) {
  std::random_device random;
  std::array<char, kNameBytes> name{};
  std::snprintf(name.data(), name.size(), "/dptrain-%s-%d-%08x%08x", purpose, static_cast<int>(getpid()),
                random(), random());
  return name;
}

// Rank 0: creates the object and reserves its memory. Returns the descriptor, or -1 with the reason.
int create_object(const char* name, std::size_t bytes, std::string& why_not) {
  const int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, S_IRUSR | S_IWUSR);
  if (fd < 0) {
    why_not = std::string("shm_open(") + name + ") failed: " + std::strerror(errno);
    return -1;
  }
  const int error = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (error == 0) return fd;
  why_not = "cannot reserve " + std::to_string(bytes >> 20) + " MiB in /dev/shm (" + std::strerror(error) +
            "): free or enlarge /dev/shm (docker run --shm-size)";
  close(fd);
  shm_unlink(name);
  return -1;
}

char* map_object(int fd, std::size_t bytes, std::string& why_not) {
  void* mapping = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (mapping != MAP_FAILED) return static_cast<char*>(mapping);
  why_not = "mmap of a shared-memory segment failed: " + std::string(std::strerror(errno));
  return nullptr;
}

bool all_ranks(bool ok, MPI_Comm comm) {
  int value = ok ? 1 : 0;
  DPT_CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_INT, MPI_MIN, comm));
  return value == 1;
}

}  // namespace

std::unique_ptr<NodeSegment> NodeSegment::create(MPI_Comm comm, std::size_t bytes, const char* purpose,
                                                 std::string* why_not) {
  int rank = 0;
  int ranks = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &ranks);
  MPI_Comm node = MPI_COMM_NULL;
  DPT_CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int node_ranks = 0;
  MPI_Comm_size(node, &node_ranks);
  MPI_Comm_free(&node);
  if (!all_ranks(node_ranks == ranks, comm)) return nullptr;

  std::string reason;
  std::array<char, kNameBytes> name{};
  int fd = -1;
  if (rank == 0) {
    name = object_name(purpose);
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
    if (why_not) *why_not = reason.empty() ? "another rank could not map the shared-memory segment" : reason;
    return nullptr;
  }
  return std::unique_ptr<NodeSegment>(new NodeSegment(mapping, bytes));
}

NodeSegment::~NodeSegment() { munmap(data_, bytes_); }

}  // namespace dpt::distributed
