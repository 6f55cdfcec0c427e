// checkpoint_bench: synchronous save throughput against writing and fsyncing the same bytes with a plain loop,
// and the time training stands still with checkpoint.async against a synchronous save. Prints a table.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "checkpoint/checkpointer.h"
#include "core/check.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using dpt::checkpoint::CheckpointContents;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// fashion_cnn's parameters (3.27 M floats) and Adam's two moments: what a training checkpoint holds.
struct TrainingState {
  std::vector<at::Tensor> model;
  std::vector<at::Tensor> moments;
};

TrainingState make_state() {
  const std::vector<std::vector<std::int64_t>> shapes = {{32, 1, 5, 5}, {32}, {64, 32, 5, 5}, {64},
                                                         {1024, 3136},  {1024}, {10, 1024}, {10}};
  TrainingState state;
  for (const auto& shape : shapes) {
    state.model.push_back(at::randn(shape));
    state.moments.push_back(at::randn(shape));
    state.moments.push_back(at::rand(shape));
  }
  return state;
}

// A snapshot as the trainer takes it (host copies for an async save, the tensors themselves for a sync one),
// different every call so that no blob is deduplicated.
CheckpointContents snapshot(TrainingState& state, int round, bool copy) {
  CheckpointContents contents;
  for (std::size_t i = 0; i < state.model.size(); ++i) {
    state.model[i].view({-1})[0] = static_cast<float>(round);
    contents.tensors["model"].emplace_back("p" + std::to_string(i),
                                           dpt::checkpoint::host_tensor(state.model[i], copy));
  }
  for (std::size_t i = 0; i < state.moments.size(); ++i) {
    state.moments[i].view({-1})[0] = static_cast<float>(round);
    contents.tensors["optimizer"].emplace_back("m" + std::to_string(i),
                                               dpt::checkpoint::host_tensor(state.moments[i], copy));
  }
  contents.state = {{"step", round}};
  return contents;
}

// The baseline: the same encoded bytes written with write() + fsync() per file, then an fsync of the directory.
void plain_write(const fs::path& dir, const std::vector<std::string>& files) {
  fs::create_directories(dir);
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string path = (dir / ("f" + std::to_string(i))).string();
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    DPT_CHECK(fd >= 0, "cannot create ", path);
    std::size_t done = 0;
    while (done < files[i].size()) {
      const ssize_t n = ::write(fd, files[i].data() + done, files[i].size() - done);
      DPT_CHECK(n > 0, "cannot write ", path);
      done += static_cast<std::size_t>(n);
    }
    DPT_CHECK(::fsync(fd) == 0 && ::close(fd) == 0, "cannot flush ", path);
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  ::fsync(dir_fd);
  ::close(dir_fd);
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path root = argc > 1 ? fs::path(argv[1]) : fs::temp_directory_path() / "dptrain_checkpoint_bench";
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 5;
  fs::remove_all(root);
  TrainingState state = make_state();

  dpt::checkpoint::CheckpointerOptions options;
  options.retention = {2, 0};  // as in training: old versions are collected after each publish
  options.dir = (root / "sync").string();
  std::vector<double> plain, sync, stall, async_total;
  double bytes = 0;
  {
    dpt::checkpoint::Checkpointer checkpointer(options);
    for (int round = 0; round < rounds; ++round) {
      CheckpointContents contents = snapshot(state, round, false);
      std::vector<std::string> encoded;
      for (const auto& [stem, tensors] : contents.tensors) encoded.push_back(dpt::checkpoint::encode_safetensors(tensors));
      bytes = 0;
      for (const auto& file : encoded) bytes += static_cast<double>(file.size());
      auto start = Clock::now();
      plain_write(root / "plain", encoded);
      plain.push_back(seconds_since(start));
      start = Clock::now();
      checkpointer.save(snapshot(state, 1000 + round, false));
      sync.push_back(seconds_since(start));
    }
  }
  options.dir = (root / "async").string();
  options.async = true;
  {
    dpt::checkpoint::Checkpointer checkpointer(options);
    for (int round = 0; round < rounds; ++round) {
      const auto start = Clock::now();
      checkpointer.save(snapshot(state, 2000 + round, true));  // the trainer's stall: host copies + hand-off
      stall.push_back(seconds_since(start));
      checkpointer.wait();  // training would go on here; waited for so rounds do not overlap
      async_total.push_back(seconds_since(start));
    }
  }
  fs::remove_all(root);

  const double mb = bytes / 1e6;
  std::printf("checkpoint of %.1f MB (fashion_cnn + Adam moments), median of %d rounds, store in %s\n", mb, rounds,
              root.parent_path().c_str());
  std::printf("%-44s %10s %10s %8s\n", "what", "seconds", "MB/s", "ratio");
  std::printf("%-44s %10.3f %10.1f %8s\n", "plain write+fsync loop (baseline)", median(plain), mb / median(plain), "1.00");
  std::printf("%-44s %10.3f %10.1f %8.2f\n", "sync save (encode, sha256+md5, publish, gc)", median(sync),
              mb / median(sync), median(plain) / median(sync));
  std::printf("%-44s %10.3f %10s %8.3f\n", "async save: training stall (vs sync save)", median(stall), "-",
              median(stall) / median(sync));
  std::printf("%-44s %10.3f %10.1f %8s\n", "async save: until published", median(async_total),
              mb / median(async_total), "-");
  return 0;
}
