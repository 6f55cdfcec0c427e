// Datasets for benchmarks and language models: random samples of a given shape (`dptrain data synth`) and the
// byte-level token sequences of text files (`dptrain data import-text`), written as HDF5 files Hdf5Source reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dpt::data {

struct SynthOptions {
  std::int64_t samples = 1024;
  std::vector<std::int64_t> shape = {3, 32, 32};  // of one sample ("inputs" [samples, ...shape])
  std::string dtype = "float32";                   // float32 (standard normal) or uint8 (uniform 0..255)
  std::int64_t classes = 10;                       // "labels" [samples], uniform in [0, classes)
  // A token task instead: vocab > 0 writes "inputs" [samples, context] and "labels" [samples, context] (each
  // sample's next tokens), uniform in [0, vocab); shape, dtype and classes are then ignored.
  std::int64_t vocab = 0;
  std::int64_t context = 128;
  std::uint64_t seed = 0;
};

// Writes out_path ("inputs", "labels") atomically; the same options and seed write the same bytes.
void write_synthetic(const SynthOptions& options, const std::string& out_path);

// The bytes of `files`, in order, cut into windows of context + 1 bytes every `stride` bytes: "inputs"
// [N, context] uint8 (a window's first context bytes) and "labels" [N, context] uint8 (its last context bytes, the
// next token of each position). Vocabulary 256. Returns N; an error when the files hold fewer than context + 1
// bytes in all.
std::int64_t import_text(const std::vector<std::string>& files, const std::string& out_path, std::int64_t context,
                         std::int64_t stride);

}  // namespace dpt::data
