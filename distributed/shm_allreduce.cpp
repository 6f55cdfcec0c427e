// ShmAllreduce: a piece of the tensor at a time, through one of the rank's two buffers:
//   1. this rank copies its contribution to the other ranks' slices into its buffer;  meet
//   2. it sums its own slice: its own values plus the other ranks' buffers, into the tensor;   (reduce-scatter half)
//   3. it copies that sum into its buffer;  barrier;  it copies every other slice's sum from its owner (all-gather
//      half).
// Reduce-scatter and all-gather alone run one half each, with one synchronisation per piece.
// The buffers alternate: before a rank writes a buffer again it has met every rank in the next piece, so no
// rank still reads it. Each slice is summed by one rank and copied by the others: identical on every rank.
#include "distributed/shm_allreduce.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "core/check.h"

namespace dpt::distributed {

std::unique_ptr<ShmAllreduce> ShmAllreduce::create(MPI_Comm comm, std::size_t buffer_bytes, std::string* why_not) {
  int ranks = 1;
  MPI_Comm_size(comm, &ranks);
  if (ranks < 2 || buffer_bytes == 0) return nullptr;
  auto segment = NodeSegment::create(comm, static_cast<std::size_t>(ranks) * 2 * buffer_bytes, "allreduce", why_not);
  if (!segment) {
    if (why_not && !why_not->empty()) *why_not += ", or lower ddp.shared_memory_mb";
    return nullptr;
  }
  return std::unique_ptr<ShmAllreduce>(new ShmAllreduce(comm, std::move(segment), ranks, buffer_bytes));
}

ShmAllreduce::ShmAllreduce(MPI_Comm comm, std::unique_ptr<NodeSegment> segment, int ranks, std::size_t buffer_bytes)
    : comm_(comm), segment_(std::move(segment)), ranks_(ranks), buffer_bytes_(buffer_bytes) {
  MPI_Comm_rank(comm, &rank_);
}

ShmAllreduce::~ShmAllreduce() = default;

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
  return segment_->data() + (static_cast<std::size_t>(rank) * 2 + static_cast<std::size_t>(parity)) * buffer_bytes_;
}

// The fences keep the compiler and the CPU from moving this rank's stores past the barrier or the other ranks'
// loads before it.
void ShmAllreduce::barrier() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  DPT_CHECK_MPI(MPI_Barrier(comm_));
  std::atomic_thread_fence(std::memory_order_seq_cst);
}

// A piece's first synchronisation: the caller's meet for the first piece, a barrier for the others.
void ShmAllreduce::sync(bool& met, const std::function<void()>& meet) {
  if (met) {
    barrier();
    return;
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  meet();
  std::atomic_thread_fence(std::memory_order_seq_cst);
  met = true;
}

void ShmAllreduce::scatter_piece(const at::Tensor& tensor, const Slices& slices,
                                 const std::function<void()>& sync) {
  const auto element = static_cast<std::int64_t>(tensor.element_size());
  auto* data = static_cast<char*>(tensor.data_ptr());
  for (int k = 0; k < ranks_; ++k) {
    const Slice& s = slices[static_cast<std::size_t>(k)];
    if (k != rank_) std::memcpy(buffer(rank_, parity_) + s.slot * element, data + s.offset * element,
                                static_cast<std::size_t>(s.count * element));
  }
  sync();
  const Slice& own = slices[static_cast<std::size_t>(rank_)];
  const bool widen = tensor.scalar_type() == at::kBFloat16 || tensor.scalar_type() == at::kHalf;
  at::Tensor mine = at::from_blob(data + own.offset * element, {own.count}, tensor.options());
  at::Tensor total = widen ? mine.to(at::kFloat) : mine;
  for (int k = 0; k < ranks_; ++k) {
    if (k != rank_) total.add_(at::from_blob(buffer(k, parity_) + own.slot * element, {own.count}, tensor.options()));
  }
  if (widen) mine.copy_(total);
}

void ShmAllreduce::gather_piece(const at::Tensor& tensor, const Slices& slices, const std::function<void()>& sync) {
  const auto element = static_cast<std::int64_t>(tensor.element_size());
  auto* data = static_cast<char*>(tensor.data_ptr());
  const Slice& own = slices[static_cast<std::size_t>(rank_)];
  std::memcpy(buffer(rank_, parity_) + own.slot * element, data + own.offset * element,
              static_cast<std::size_t>(own.count * element));
  sync();
  for (int k = 0; k < ranks_; ++k) {
    const Slice& s = slices[static_cast<std::size_t>(k)];
    if (k != rank_) std::memcpy(data + s.offset * element, buffer(k, parity_) + s.slot * element,
                                static_cast<std::size_t>(s.count * element));
  }
}

// Each piece is slice k of the tensor's piece at `first`, at slot begin(k) of the buffers: a reduce-scatter half,
// then, after a barrier, an all-gather half.
void ShmAllreduce::sum(const at::Tensor& tensor, const std::function<void()>& meet) {
  const std::int64_t per_piece = static_cast<std::int64_t>(buffer_bytes_) / tensor.element_size();
  bool met = false;
  Slices slices(static_cast<std::size_t>(ranks_));
  for (std::int64_t first = 0; first < tensor.numel(); first += per_piece) {
    const std::int64_t count = std::min(per_piece, tensor.numel() - first);
    for (int k = 0; k < ranks_; ++k) {
      const std::int64_t begin = count * k / ranks_;
      slices[static_cast<std::size_t>(k)] = {first + begin, begin, count * (k + 1) / ranks_ - begin};
    }
    scatter_piece(tensor, slices, [&] { sync(met, meet); });
    gather_piece(tensor, slices, [&] { barrier(); });
    parity_ ^= 1;
  }
}

// A piece takes the same part of every shard (at most a buffer's 1/ranks each), one synchronisation a piece: a rank
// writes a buffer again two pieces later, after every rank has met it in the piece between, that is after each
// has read it.
void ShmAllreduce::for_shard_pieces(const at::Tensor& tensor, const std::function<void()>& meet,
                                    const std::function<void(const Slices&, const std::function<void()>&)>& piece) {
  const std::int64_t shard = tensor.numel() / ranks_;
  const std::int64_t per_slot = std::max<std::int64_t>(
      1, static_cast<std::int64_t>(buffer_bytes_) / tensor.element_size() / ranks_);
  bool met = false;
  Slices slices(static_cast<std::size_t>(ranks_));
  for (std::int64_t first = 0; first < shard; first += per_slot) {
    const std::int64_t count = std::min(per_slot, shard - first);
    for (int k = 0; k < ranks_; ++k) slices[static_cast<std::size_t>(k)] = {k * shard + first, k * per_slot, count};
    piece(slices, [&] { sync(met, meet); });
    parity_ ^= 1;
  }
}

void ShmAllreduce::reduce_scatter(const at::Tensor& tensor, const std::function<void()>& meet) {
  for_shard_pieces(tensor, meet, [&](const Slices& slices, const std::function<void()>& sync) {
    scatter_piece(tensor, slices, sync);
  });
}

void ShmAllreduce::all_gather(const at::Tensor& tensor, const std::function<void()>& meet) {
  for_shard_pieces(tensor, meet, [&](const Slices& slices, const std::function<void()>& sync) {
    gather_piece(tensor, slices, sync);
  });
}

// One barrier a piece: root writes piece i + 2 into the buffer of piece i only after every rank has met it at
// piece i + 1, that is after each has copied piece i out.
void ShmAllreduce::broadcast(const at::Tensor& tensor, int root, const std::function<void()>& meet) {
  auto* data = static_cast<char*>(tensor.data_ptr());
  const std::size_t total = tensor.nbytes();
  bool met = false;
  for (std::size_t first = 0; first < total; first += buffer_bytes_) {
    const std::size_t bytes = std::min(buffer_bytes_, total - first);
    if (rank_ == root) std::memcpy(buffer(root, parity_), data + first, bytes);
    sync(met, meet);
    if (rank_ != root) std::memcpy(data + first, buffer(root, parity_), bytes);
    parity_ ^= 1;
  }
}

}  // namespace dpt::distributed
