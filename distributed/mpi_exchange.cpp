// MpiExchange: a broadcast of a length and then the bytes, each a non-blocking MPI_Ibcast polled with a deadline.
#include "distributed/mpi_exchange.h"

#include <climits>
#include <cstdint>
#include <memory>

#include "core/check.h"
#include "distributed/deadline.h"

namespace dpt::distributed {
namespace {

// The buffers of one broadcast. A broadcast that timed out stays started (MPI cannot withdraw it) and MPI writes
// into its buffers when the root joins late, so those buffers are never freed.
struct Broadcast {
  std::int64_t length = 0;
  std::string bytes;
  MPI_Request request = MPI_REQUEST_NULL;
};

}  // namespace

MpiExchange::MpiExchange(MPI_Comm comm, double timeout_s) : timeout_s_(timeout_s) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  DPT_CHECK(initialized, "the MPI exchange needs MPI to be initialised: launch with mpirun or srun");
  DPT_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiExchange::~MpiExchange() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

std::string MpiExchange::broadcast_bytes(const std::string& bytes, int root) {
  DPT_CHECK(root >= 0 && root < size_, "MPI exchange: root ", root, " is not a rank of this world of ", size_);
  auto broadcast = std::make_unique<Broadcast>();
  if (rank_ == root) {
    DPT_CHECK(bytes.size() <= INT_MAX, "MPI exchange: ", bytes.size(), " bytes to broadcast; stay under 2 GiB");
    broadcast->length = static_cast<std::int64_t>(bytes.size());
    broadcast->bytes = bytes;
  }
  const auto deadline = detail::deadline_after(timeout_s_);
  const auto finish = [&](const char* what) {
    const bool done = detail::poll_until(deadline, [&] {
      int flag = 0;
      DPT_CHECK_MPI(MPI_Test(&broadcast->request, &flag, MPI_STATUS_IGNORE));
      return flag != 0;
    });
    if (done) return;
    broadcast.release();  // see Broadcast
    DPT_THROW("MPI exchange: rank ", rank_, " waited ", timeout_s_, " s for the ", what, " of a broadcast from rank ",
              root, ": that rank has died, hangs, or runs different set-up code; check its output");
  };
  DPT_CHECK_MPI(MPI_Ibcast(&broadcast->length, 1, MPI_INT64_T, root, comm_, &broadcast->request));
  finish("length");
  if (broadcast->length == 0) return {};
  broadcast->bytes.resize(static_cast<std::size_t>(broadcast->length));
  DPT_CHECK_MPI(MPI_Ibcast(broadcast->bytes.data(), static_cast<int>(broadcast->length), MPI_BYTE, root, comm_,
                           &broadcast->request));
  finish("bytes");
  return std::move(broadcast->bytes);
}

}  // namespace dpt::distributed
