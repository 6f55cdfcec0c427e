// Dataset digest: a streamed sha256 and md5 per file plus HDF5 dataset metadata, cached until size or mtime change.
#include "data/dataset_digest.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <memory>
#include <sstream>
#include <utility>

#include "core/check.h"
#include "data/hdf5_file.h"

namespace dpt::data {
namespace fs = std::filesystem;
namespace {

std::string hex(const unsigned char* bytes, unsigned size) {
  std::ostringstream out;
  for (unsigned i = 0; i < size; ++i) out << std::hex << std::setw(2) << std::setfill('0') << int{bytes[i]};
  return out.str();
}

class Hash {
 public:
  explicit Hash(const EVP_MD* type = EVP_sha256()) : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    DPT_CHECK(context_ && EVP_DigestInit_ex(context_.get(), type, nullptr) == 1, "OpenSSL digest init failed");
  }
  void update(const void* data, std::size_t size) { EVP_DigestUpdate(context_.get(), data, size); }
  std::string hex_digest() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned size = 0;
    EVP_DigestFinal_ex(context_.get(), digest, &size);
    return hex(digest, size);
  }

 private:
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> context_;
};

// sha256 and md5 of the file's bytes in one read: md5 is what DVC records for a file (dvc.lock, .dvc files), so a
// manifest ties a model to DVC's version of its data.
std::pair<std::string, std::string> file_sha256_md5(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DPT_CHECK(in.good(), "cannot read ", path, " to compute its digest: check its permissions");
  Hash sha;
  Hash md5(EVP_md5());
  std::vector<char> block(4 << 20);
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    sha.update(block.data(), static_cast<std::size_t>(in.gcount()));
    md5.update(block.data(), static_cast<std::size_t>(in.gcount()));
  }
  DPT_CHECK(in.eof(), "reading ", path, " failed while computing its digest (I/O error): check the disk");
  return {sha.hex_digest(), md5.hex_digest()};
}

nlohmann::json datasets_of(const std::string& path) {
  const auto lock = hdf5::lock_library();
  const hdf5::Id file = hdf5::open_file(path, "");
  nlohmann::json datasets = nlohmann::json::array();
  for (const auto& name : hdf5::list_datasets(file.get())) {
    const hdf5::Id dataset = hdf5::open_dataset(file.get(), path, name);
    const hdf5::DatasetInfo info = hdf5::dataset_info(dataset.get());
    datasets.push_back({{"name", name}, {"dtype", info.dtype}, {"shape", info.shape}});
  }
  return datasets;
}

nlohmann::json read_cache(const std::string& cache) {
  std::ifstream in(cache);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception&) {
    return nullptr;  // a damaged cache is recomputed
  }
}

// Written to a temporary file and renamed, so ranks or jobs that compute the same digest at once never see half.
void write_cache(const std::string& cache, const nlohmann::json& entry) {
  const std::string temp = cache + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp);
    if (!out) return;
    out << entry.dump(1) << "\n";
    if (!out.flush()) return;
  }
  std::error_code ignored;
  fs::rename(temp, cache, ignored);
  if (ignored) fs::remove(temp, ignored);
}

nlohmann::json file_digest(const std::string& path) {
  DPT_CHECK(fs::is_regular_file(path), "HDF5 file ", path, " does not exist: cannot compute the dataset digest");
  const auto size = static_cast<std::int64_t>(fs::file_size(path));
  struct stat info {};
  DPT_CHECK(::stat(path.c_str(), &info) == 0, "cannot stat ", path, " to compute its digest");
  // Unix nanoseconds (std::filesystem's clock has an unspecified epoch), so the recorded value is readable.
  const std::int64_t mtime = static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  const std::string cache = digest_cache_path(path);
  nlohmann::json entry = read_cache(cache);
  if (!entry.is_object() || entry.value("size", std::int64_t{-1}) != size ||
      entry.value("mtime_ns", std::int64_t{-1}) != mtime || !entry.contains("sha256") || !entry.contains("md5") ||
      !entry.contains("datasets")) {
    const auto [sha256, md5] = file_sha256_md5(path);
    entry = {{"size", size}, {"mtime_ns", mtime}, {"sha256", sha256}, {"md5", md5}, {"datasets", datasets_of(path)}};
    write_cache(cache, entry);
  }
  entry["path"] = path;
  return entry;
}

}  // namespace

std::string digest_cache_path(const std::string& file) {
  const fs::path path(file);
  return (path.parent_path() / ("." + path.filename().string() + ".dptrain-digest.json")).string();
}

nlohmann::json dataset_digest(const std::vector<std::string>& files) {
  nlohmann::json entries = nlohmann::json::array();
  Hash combined;
  std::int64_t bytes = 0;
  for (const auto& path : files) {
    nlohmann::json entry = file_digest(path);
    const std::string line = entry.at("sha256").get<std::string>() + "\n";
    combined.update(line.data(), line.size());
    bytes += entry.at("size").get<std::int64_t>();
    entries.push_back(std::move(entry));
  }
  return {{"sha256", combined.hex_digest()}, {"bytes", bytes}, {"files", std::move(entries)}};
}

}  // namespace dpt::data
