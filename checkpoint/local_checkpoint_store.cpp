// LocalCheckpointStore: content-addressed blobs, manifests published by directory rename, sha256-verified loads.
#include "checkpoint/local_checkpoint_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "checkpoint/durable_file.h"
#include "core/check.h"
#include "core/utc_time.h"

namespace dpt::checkpoint {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kFormatVersion = 1;
constexpr const char* kManifest = "manifest.json";
constexpr const char* kTensorsKind = "tensors";
constexpr const char* kBlobKind = "blob";
constexpr const char* kTensorsSuffix = ".safetensors";
constexpr const char* kWritableHint = "; set checkpoint.dir to a writable directory with free space";

// Where everything lives, for this store or for the store that holds a version directory given by path.
struct StorePaths {
  explicit StorePaths(const fs::path& root_dir)
      : root(root_dir),
        blobs(root_dir / "blobs" / "sha256"),
        versions(root_dir / "versions"),
        staging(root_dir / "staging"),
        aliases(root_dir / "aliases"),
        locks(root_dir / "locks") {}
  fs::path root, blobs, versions, staging, aliases, locks;
};

struct ManifestFile {
  std::string name;
  std::string kind;
  std::uint64_t size;
  std::string sha256;
  std::string md5;  // "" in manifests written before md5 was recorded
};

constexpr const char* kLatest = "latest";

using VersionDirs = std::vector<std::pair<std::int64_t, fs::path>>;

bool is_sha256_hex(const std::string& text) {
  return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Manifest names become paths, so nothing may climb out of or into another directory.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

std::string version_name(std::int64_t number) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "v%06lld", static_cast<long long>(number));
  return buffer;
}

// "v3" or "v000003" -> 3; -1 for anything else.
std::int64_t parse_version_name(const std::string& name) {
  if (name.size() < 2 || name.size() > 19 || name[0] != 'v') return -1;
  if (name.find_first_not_of("0123456789", 1) != std::string::npos) return -1;
  return std::stoll(name.substr(1));
}

// The entries of `dir`, none when it does not exist.
std::vector<fs::path> directory_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  try {
    for (const auto& entry : fs::directory_iterator(dir)) out.push_back(entry.path());
  } catch (const fs::filesystem_error& e) {
    DPT_THROW("cannot list ", dir.string(), ": ", e.code().message(), "; check the directory's permissions");
  }
  return out;
}

// Published versions, oldest first: canonically named directories whose manifest is in place.
VersionDirs version_dirs(const fs::path& versions) {
  VersionDirs out;
  for (const auto& dir : directory_entries(versions)) {
    const std::string name = dir.filename().string();
    const std::int64_t number = parse_version_name(name);
    std::error_code ec;
    if (number >= 0 && name == version_name(number) && fs::is_regular_file(dir / kManifest, ec)) {
      out.emplace_back(number, dir);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string available_versions(const VersionDirs& versions) {
  if (versions.empty()) return "the store holds no versions";
  std::string out = "available:";
  for (const auto& version : versions) out += " " + version.second.filename().string();
  return out;
}

// The manifest of the version in `dir`, format-checked; its bytes go to `text` when given.
nlohmann::json read_manifest(const fs::path& dir, std::string* text = nullptr) {
  const std::string path = (dir / kManifest).string();
  const std::string bytes = read_file(path);
  const nlohmann::json manifest = nlohmann::json::parse(bytes, nullptr, false);
  DPT_CHECK(!manifest.is_discarded() && manifest.is_object() && manifest.contains("format_version") &&
                manifest["format_version"].is_number_integer(),
            path, " is not a valid checkpoint manifest; the version is damaged, load another one");
  const auto format = manifest["format_version"].get<std::int64_t>();
  DPT_CHECK(format <= kFormatVersion, path, " has manifest format ", format, " but this dptrain reads formats up to ",
            kFormatVersion, "; load it with the newer dptrain that wrote it");
  DPT_CHECK(manifest.contains("files") && manifest["files"].is_array(), path,
            " has no 'files' list; the version is damaged, load another one");
  if (text) *text = bytes;
  return manifest;
}

std::vector<ManifestFile> manifest_files(const nlohmann::json& manifest, const fs::path& dir) {
  std::vector<ManifestFile> out;
  for (const auto& entry : manifest["files"]) {
    const bool valid = entry.is_object() && entry.contains("name") && entry["name"].is_string() &&
                       entry.contains("kind") && entry["kind"].is_string() && entry.contains("size") &&
                       entry["size"].is_number_unsigned() && entry.contains("sha256") && entry["sha256"].is_string();
    DPT_CHECK(valid, (dir / kManifest).string(), " has a malformed file entry ", entry.dump(),
              "; the version is damaged, load another one");
    ManifestFile file{entry["name"].get<std::string>(), entry["kind"].get<std::string>(),
                      entry["size"].get<std::uint64_t>(), entry["sha256"].get<std::string>(),
                      entry.contains("md5") && entry["md5"].is_string() ? entry["md5"].get<std::string>() : ""};
    const bool tensors =
        file.kind == kTensorsKind && file.name.size() > std::strlen(kTensorsSuffix) &&
        file.name.compare(file.name.size() - std::strlen(kTensorsSuffix), std::string::npos, kTensorsSuffix) == 0;
    DPT_CHECK(is_plain_file_name(file.name) && is_sha256_hex(file.sha256) && (tensors || file.kind == kBlobKind),
              (dir / kManifest).string(), " has an invalid file entry ", entry.dump(),
              "; the version is damaged, load another one");
    out.push_back(std::move(file));
  }
  return out;
}

std::string damaged(const StorePaths& store, const fs::path& dir, const ManifestFile& file,
                    const std::string& problem) {
  const std::int64_t number = parse_version_name(dir.filename().string());
  std::string older = "no older version exists, so publish a new one";
  for (const auto& version : version_dirs(store.versions)) {
    if (version.first < number) older = "load an older version such as " + version.second.filename().string();
  }
  return "checkpoint " + dir.filename().string() + " in " + store.root.string() + " is damaged: " + file.name + " " +
         problem + "; " + older;
}

// Reads every file of the version in `dir` and checks it against the manifest.
VerifiedVersion read_verified(const fs::path& dir) {
  const StorePaths store(dir.parent_path().parent_path());
  std::string manifest_text;
  VerifiedVersion out{dir.filename().string(), store.root.string(), "", read_manifest(dir, &manifest_text), {}};
  out.manifest_sha256 = sha256_hex(manifest_text);
  for (auto& file : manifest_files(out.manifest, dir)) {
    const fs::path blob = store.blobs / file.sha256;
    std::error_code ec;
    DPT_CHECK(fs::is_regular_file(blob, ec), damaged(store, dir, file, "is missing (no blob " + blob.string() + ")"));
    std::string bytes = read_file(blob.string());
    DPT_CHECK(bytes.size() == file.size, damaged(store, dir, file,
                                                 "has " + std::to_string(bytes.size()) + " bytes instead of " +
                                                     std::to_string(file.size) + " (blob " + blob.string() + ")"));
    // Both digests the manifest records: sha256 names the blob, md5 is what object stores and DVC compare.
    auto md5 = std::async(std::launch::async, [&bytes] { return digest_hex({bytes}, Digest::kMd5); });
    const std::string actual = sha256_hex(bytes);
    const std::string actual_md5 = md5.get();
    DPT_CHECK(
        actual == file.sha256,
        damaged(store, dir, file, "failed its sha256 check (blob " + blob.string() + " hashes to " + actual + ")"));
    DPT_CHECK(file.md5.empty() || actual_md5 == file.md5,
              damaged(store, dir, file, "failed its md5 check (blob " + blob.string() + " has md5 " + actual_md5 +
                                            ", the manifest " + file.md5 + ")"));
    out.files[file.name] = std::move(bytes);
  }
  return out;
}

CheckpointContents decode(const VerifiedVersion& version, const fs::path& dir) {
  CheckpointContents out;
  for (const auto& file : manifest_files(version.manifest, dir)) {
    const std::string& bytes = version.files.at(file.name);
    if (file.kind == kTensorsKind) {
      out.tensors[file.name.substr(0, file.name.size() - std::strlen(kTensorsSuffix))] =
          decode_safetensors(bytes, (dir / file.name).string());
    } else {
      out.blobs[file.name] = bytes;
    }
  }
  if (version.manifest.contains("state")) out.state = version.manifest["state"];
  out.version = version.name;
  out.store = version.store;
  out.manifest_sha256 = version.manifest_sha256;
  return out;
}

// An flock on locks/<name>.lock, released (with the descriptor) on destruction.
class LockFile {
 public:
  LockFile(const StorePaths& store, const std::string& name) : path_(store.locks / (name + ".lock")) {
    std::error_code ec;
    fs::create_directories(store.locks, ec);
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  ~LockFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  bool opened() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const fs::path& path() const { return path_; }
  bool lock(int operation) const {
    while (::flock(fd_, operation) != 0) {
      if (errno != EINTR) return false;
    }
    return true;
  }
  int release() {
    const int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  fs::path path_;
  int fd_ = -1;
};

// Reads a version under a shared lock, so that GC (which needs the exclusive one) leaves it alone meanwhile.
// A store on read-only media has no lock files; nobody can collect garbage there either.
VerifiedVersion read_locked(const fs::path& dir) {
  const StorePaths store(dir.parent_path().parent_path());
  LockFile lock(store, dir.filename().string());
  if (lock.opened()) lock.lock(LOCK_SH);
  std::error_code ec;
  DPT_CHECK(fs::is_regular_file(dir / kManifest, ec), "checkpoint ", dir.string(),
            " was removed while opening it (garbage collection); resume from a version the retention keeps");
  return read_verified(dir);
}

// Runs `open` on the version `ref` names; for "latest", on the newest version that opens without an error,
// appending one line per skipped version to `skipped`.
template <typename Open>
auto open_version(const LocalCheckpointStore& store, const std::string& ref, std::vector<std::string>* skipped,
                  Open open) {
  if (ref != kLatest) return open(fs::path(store.resolve(ref)));
  const VersionDirs versions = version_dirs(StorePaths(store.root()).versions);
  if (versions.empty()) store.resolve(ref);  // throws the "nothing published" error
  for (auto it = versions.rbegin();; ++it) {
    try {
      return open(it->second);
    } catch (const Error& e) {
      if (std::next(it) == versions.rend()) throw;
      if (skipped) skipped->push_back(e.message());
    }
  }
}

// A file of the new version: the caller's blob, or a tensor file as safetensors pieces (no copy of the data).
struct PendingFile {
  std::string name;
  const char* kind;
  const NamedTensors* tensors;  // for tensor files, laid out into `pieces`
  SafetensorsPieces pieces;
  std::vector<std::string_view> spans;
  std::uint64_t size = 0;
  std::string sha256;
  std::string md5;
};

// Runs fn(file) for every file, each on a thread of its own, and rethrows the first error.
template <typename Fn>
void for_each_in_parallel(std::vector<PendingFile>& files, Fn fn) {
  std::vector<std::future<void>> work;
  for (auto& file : files) work.push_back(std::async(std::launch::async, [&fn, &file] { fn(file); }));
  for (auto& done : work) done.get();
}

void write_blob(const StorePaths& store, const PendingFile& file) {
  const fs::path blob = store.blobs / file.sha256;
  std::error_code ec;
  // Content addressing: an existing blob of the right size holds these bytes already (load checks the hash).
  if (fs::is_regular_file(blob, ec) && fs::file_size(blob, ec) == file.size && !ec) return;
  write_file_atomic(blob.string(), file.spans);
}

std::string unique_suffix() {
  return std::to_string(::getpid()) + "-" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
}

void remove_path(const fs::path& path) {
  std::error_code ec;
  fs::remove_all(path, ec);
  DPT_CHECK(!ec, "cannot remove ", path.string(), ": ", ec.message(), "; check its permissions or delete it by hand");
}

// Renaming into staging/ first makes the removal atomic: a crash mid-delete must not leave a version whose
// manifest is still in place while its files are half gone.
void remove_version(const StorePaths& store, const fs::path& dir) {
  const fs::path doomed = store.staging / ("removing-" + dir.filename().string() + "-" + unique_suffix());
  DPT_CHECK(::rename(dir.c_str(), doomed.c_str()) == 0, "cannot remove checkpoint version ", dir.string(), ": ",
            std::strerror(errno), "; check the permissions of ", store.versions.string());
  remove_path(doomed);
}

void collect_garbage(const StorePaths& store, const VersionDirs& kept) {
  std::set<std::string> referenced;
  for (const auto& version : kept) {
    for (const auto& file : manifest_files(read_manifest(version.second), version.second)) {
      referenced.insert(file.sha256);
    }
  }
  for (const auto& blob : directory_entries(store.blobs)) {
    const std::string name = blob.filename().string();
    // Temp files of a writer killed mid-write hold ".tmp-"; the caller holds the writer lock, so none is live.
    const bool unreferenced = is_sha256_hex(name) && referenced.count(name) == 0;
    if (unreferenced || name.find(".tmp-") != std::string::npos) remove_path(blob);
  }
  for (const auto& leftover : directory_entries(store.staging)) {
    const std::string name = leftover.filename().string();
    if (name.rfind("publish-", 0) == 0 || name.rfind("removing-", 0) == 0) remove_path(leftover);
  }
}

bool is_alias_name(const std::string& name) {
  return !name.empty() && name.size() <= 64 && name != kLatest && parse_version_name(name) < 0 &&
         name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == std::string::npos;
}

std::string read_alias(const fs::path& file) {
  std::string text = read_file(file.string());
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

std::string host_name() {
  char buffer[256] = {};
  ::gethostname(buffer, sizeof(buffer) - 1);
  return buffer;
}

// An exclusive flock on locks/writer.lock; its text names the holder, for the message a second job gets.
class FlockWriterLock final : public WriterLock {
 public:
  explicit FlockWriterLock(const std::string& root) {
    const StorePaths store(root);
    LockFile lock(store, "writer");
    DPT_CHECK(lock.opened(), "cannot open ", lock.path().string(), ": ", std::strerror(errno), kWritableHint);
    if (!lock.lock(LOCK_EX | LOCK_NB)) {
      DPT_CHECK(errno == EWOULDBLOCK, "cannot lock ", lock.path().string(), ": ", std::strerror(errno),
                kWritableHint);
      DPT_THROW("checkpoint store ", root, " is in use by another job (", read_alias(lock.path()),
                "); give this run its own checkpoint.dir, or wait until that job has ended");
    }
    const std::string holder = "pid " + std::to_string(::getpid()) + " on " + host_name() + " since " +
                               utc_now_text("%Y-%m-%dT%H:%M:%SZ") + "\n";
    // Only for the message above: the flock, not this text, is the lock.
    if (::ftruncate(lock.fd(), 0) == 0 && ::pwrite(lock.fd(), holder.data(), holder.size(), 0) < 0) errno = 0;
    fd_ = lock.release();
  }
  ~FlockWriterLock() override { ::close(fd_); }

 private:
  int fd_ = -1;
};

// The absolute, normalised directory: what messages and tracking name, whatever the working directory.
std::string absolute_root(const std::string& root) {
  fs::path dir = fs::absolute(root).lexically_normal();
  if (dir.filename().empty() && dir.has_relative_path()) dir = dir.parent_path();
  return dir.string();
}

}  // namespace

LocalCheckpointStore::LocalCheckpointStore(const std::string& root) : root_(absolute_root(root)) {}

std::unique_ptr<WriterLock> LocalCheckpointStore::lock_writer() { return std::make_unique<FlockWriterLock>(root_); }

void LocalCheckpointStore::check_writable() const {
  const StorePaths store(root_);
  for (const fs::path& dir : {store.blobs, store.versions, store.staging, store.aliases, store.locks}) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    DPT_CHECK(!ec, "checkpoint directory ", root_, " cannot be used: creating ", dir.string(),
              " failed: ", ec.message(), kWritableHint);
  }
  // Creating directories succeeds on an existing read-only tree, so only writing a file proves the store usable.
  const std::string probe = (store.staging / (".write-probe-" + unique_suffix())).string();
  try {
    write_file_atomic(probe, "");
  } catch (const Error& e) {
    DPT_THROW("checkpoint directory ", root_, " is not writable: ", e.message());
  }
  ::unlink(probe.c_str());
}

std::string LocalCheckpointStore::publish(const CheckpointContents& contents) {
  check_writable();
  const StorePaths store(root_);

  // Everything is encoded, named by its sha256 and checked before the store is touched, so bad input leaves
  // nothing behind. Then each blob is written while its md5 is computed beside it: a save is CPU-bound (encoding
  // and two digests cost more than writing to the page cache), so the passes over the data run in parallel.
  std::vector<PendingFile> files;
  std::set<std::string> names{kManifest};
  const auto add = [&](const std::string& name, const char* kind, const NamedTensors* tensors) -> PendingFile& {
    DPT_CHECK(is_plain_file_name(name), "checkpoint file name '", name,
              "' is not a plain file name; use a name without '/'");
    DPT_CHECK(names.insert(name).second, "checkpoint file name '", name,
              "' is reserved or used twice; give each tensor file and blob its own name");
    files.push_back({name, kind, tensors, {}, {}, 0, "", ""});
    return files.back();
  };
  for (const auto& [stem, tensors] : contents.tensors) add(stem + kTensorsSuffix, kTensorsKind, &tensors);
  for (const auto& [name, bytes] : contents.blobs) {
    PendingFile& file = add(name, kBlobKind, nullptr);
    file.spans = {bytes};
    file.size = bytes.size();
  }
  for_each_in_parallel(files, [](PendingFile& file) {
    if (file.tensors != nullptr) {
      file.pieces = safetensors_pieces(*file.tensors, {{"format", "pt"}});
      file.spans = file.pieces.spans();
      file.size = file.pieces.size();
    }
    file.sha256 = digest_hex(file.spans, Digest::kSha256);
  });
  try {
    (void)contents.state.dump();
  } catch (const nlohmann::json::exception& e) {
    DPT_THROW("checkpoint state cannot be written as JSON (", e.what(), "); make every string in it valid UTF-8");
  }

  for_each_in_parallel(files, [&store](PendingFile& file) {
    // md5 beside sha256: object stores (S3 ETags, Content-MD5) check uploads with it.
    auto md5 = std::async(std::launch::async, [&file] { return digest_hex(file.spans, Digest::kMd5); });
    write_blob(store, file);
    file.md5 = md5.get();
  });

  nlohmann::json manifest = {{"format_version", kFormatVersion}, {"created", utc_now_text("%Y-%m-%dT%H:%M:%SZ")}};
  if (contents.state.is_object() && contents.state.contains("step") && contents.state["step"].is_number_integer()) {
    manifest["step"] = contents.state["step"];
  }
  manifest["files"] = nlohmann::json::array();
  for (const auto& file : files) {
    manifest["files"].push_back({{"name", file.name},
                                 {"kind", file.kind},
                                 {"size", file.size},
                                 {"sha256", file.sha256},
                                 {"md5", file.md5}});
  }
  manifest["state"] = contents.state;
  const std::string manifest_text = manifest.dump(2) + "\n";

  const fs::path staging = store.staging / ("publish-" + unique_suffix());
  std::error_code ec;
  fs::create_directory(staging, ec);
  DPT_CHECK(!ec, "cannot create ", staging.string(), ": ", ec.message(), kWritableHint);
  std::string name;
  try {
    write_file_atomic((staging / kManifest).string(), manifest_text);
    // One writer at a time, so max + 1 is free; rename() would refuse a taken (non-empty) name anyway.
    const VersionDirs existing = version_dirs(store.versions);
    name = version_name(existing.empty() ? 1 : existing.back().first + 1);
    const fs::path target = store.versions / name;
    DPT_CHECK(::rename(staging.c_str(), target.c_str()) == 0, "cannot publish ", target.string(), ": ",
              std::strerror(errno), kWritableHint);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fsync_directory(store.versions.string());
  write_file_atomic((store.aliases / kLatest).string(), name + "\n");
  return name;
}

std::vector<VersionInfo> LocalCheckpointStore::list() const {
  std::vector<VersionInfo> out;
  for (const auto& version : version_dirs(StorePaths(root_).versions)) {
    const nlohmann::json manifest = read_manifest(version.second);
    VersionInfo info{version.second.filename().string(), version.second.string(), -1, ""};
    if (manifest.contains("step") && manifest["step"].is_number_integer()) {
      info.step = manifest["step"].get<std::int64_t>();
    }
    if (manifest.contains("created") && manifest["created"].is_string()) {
      info.created = manifest["created"].get<std::string>();
    }
    out.push_back(std::move(info));
  }
  return out;
}

std::string LocalCheckpointStore::resolve(const std::string& ref) const {
  const StorePaths store(root_);
  // "latest" is the newest published version, not the alias file: a crash between publishing a version and
  // updating the alias must not hide that version.
  if (ref == kLatest) {
    const VersionDirs versions = version_dirs(store.versions);
    DPT_CHECK(!versions.empty(), "no checkpoint in ", root_,
              ": nothing has been published there yet; check checkpoint.dir or start training without resuming");
    return versions.back().second.string();
  }
  const std::int64_t number = parse_version_name(ref);
  std::error_code ec;
  if (number >= 0) {
    const fs::path dir = store.versions / version_name(number);
    DPT_CHECK(fs::is_regular_file(dir / kManifest, ec), "no checkpoint version ", ref, " in ", root_, " (",
              available_versions(version_dirs(store.versions)), "); pick one of those or \"latest\"");
    return dir.string();
  }
  if (is_alias_name(ref) && fs::is_regular_file(store.aliases / ref, ec)) {
    const std::string target = read_alias(store.aliases / ref);
    const std::int64_t aliased = parse_version_name(target);
    const fs::path dir = store.versions / version_name(std::max<std::int64_t>(aliased, 0));
    DPT_CHECK(aliased >= 0 && fs::is_regular_file(dir / kManifest, ec), "alias '", ref, "' in ", root_,
              " points at '", target, "', which is not a version in the store; set it again with dptrain ckpt tag");
    return dir.string();
  }
  fs::path dir = fs::absolute(ref).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  DPT_CHECK(fs::is_regular_file(dir / kManifest, ec), "checkpoint reference '", ref,
            "' is not \"latest\", a version name such as v3, an alias such as \"best\", or a version directory ",
            "holding ", kManifest, " (", available_versions(version_dirs(store.versions)), " in ", root_, ")");
  return dir.string();
}

VerifiedVersion LocalCheckpointStore::read(const std::string& ref, std::vector<std::string>* skipped) const {
  return open_version(*this, ref, skipped, [](const fs::path& dir) { return read_locked(dir); });
}

CheckpointContents LocalCheckpointStore::load(const std::string& ref, std::vector<std::string>* skipped) const {
  return open_version(*this, ref, skipped, [](const fs::path& dir) { return decode(read_locked(dir), dir); });
}

void LocalCheckpointStore::verify(const std::string& ref) const { read(resolve(ref), nullptr); }

std::string LocalCheckpointStore::manifest(const std::string& ref) const {
  std::string text;
  read_manifest(resolve(ref), &text);
  return text;
}

void LocalCheckpointStore::set_alias(const std::string& name, const std::string& ref) {
  DPT_CHECK(is_alias_name(name), "cannot use '", name, "' as a checkpoint alias: use letters, digits, '_' or '-', ",
            "and neither \"latest\" nor a version-like name such as v3");
  const std::string target = fs::path(resolve(ref)).filename().string();
  check_writable();
  write_file_atomic((StorePaths(root_).aliases / name).string(), target + "\n");
}

std::map<std::string, std::string> LocalCheckpointStore::aliases() const {
  std::map<std::string, std::string> out;
  for (const auto& file : directory_entries(StorePaths(root_).aliases)) {
    const std::string name = file.filename().string();
    if (name == kLatest || is_alias_name(name)) out[name] = read_alias(file);
  }
  return out;
}

std::vector<std::string> LocalCheckpointStore::gc(const RetentionPolicy& policy) {
  DPT_CHECK(policy.keep_last >= 0 && policy.keep_every >= 0, "retention keep_last = ", policy.keep_last,
            " and keep_every = ", policy.keep_every, " must be 0 (off) or more");
  check_writable();
  const StorePaths store(root_);
  const VersionDirs versions = version_dirs(store.versions);
  std::set<std::string> aliased;
  for (const auto& [alias, version] : aliases()) aliased.insert(version);
  VersionDirs kept;
  std::vector<std::string> removed;
  for (std::size_t i = 0; i < versions.size(); ++i) {
    const auto& [number, dir] = versions[i];
    const std::string name = dir.filename().string();
    const bool keep = policy.keep_last == 0 || i + static_cast<std::size_t>(policy.keep_last) >= versions.size() ||
                      (policy.keep_every > 0 && number % policy.keep_every == 0) || aliased.count(name) > 0 ||
                      i + 1 == versions.size();
    LockFile lock(store, name);
    if (keep || !lock.opened() || !lock.lock(LOCK_EX | LOCK_NB)) {
      kept.push_back(versions[i]);
      continue;
    }
    remove_version(store, dir);
    ::unlink(lock.path().c_str());
    removed.push_back(name);
  }
  if (!removed.empty()) fsync_directory(store.versions.string());
  collect_garbage(store, kept);
  return removed;
}

}  // namespace dpt::checkpoint
