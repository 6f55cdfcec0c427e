// MpiStore (values live on the root, carried by broadcasts) and FileStore (one atomically renamed file per key).
#include "distributed/store.h"

#include <cctype>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "core/check.h"
#include "distributed/deadline.h"

namespace dpt::distributed {

using detail::Clock;
using detail::deadline_after;
using detail::poll_until;

namespace {

// False when the request has not completed by the deadline: a started collective cannot be withdrawn, so the
// caller throws and the job's error path ends every rank.
bool wait_request(MPI_Request& request, Clock::time_point deadline) {
  return poll_until(deadline, [&] {
    int done = 0;
    DPT_CHECK_MPI(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
    return done != 0;
  });
}

}  // namespace


MpiStore::MpiStore(MPI_Comm comm, int root, double timeout_s) : Store(timeout_s), root_(root) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  DPT_CHECK(initialized, "the MPI store needs MPI to be initialised: launch with mpirun or srun, or use a FileStore");
  DPT_CHECK_MPI(MPI_Comm_dup(comm, &comm_));
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  int size = 0;
  MPI_Comm_size(comm_, &size);
  DPT_CHECK(root >= 0 && root < size, "MPI store root ", root, " is not a rank of this world of ", size);
}

MpiStore::~MpiStore() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Comm_free(&comm_);
}

void MpiStore::set(const std::string& key, const std::string& value) {
  DPT_CHECK(rank_ == root_, "MPI store: rank ", rank_, " tried to set '", key, "', but only rank ", root_,
            " (the root) sets keys; every rank then reads them with get()");
  values_[key] = value;
}

bool MpiStore::broadcast_from_root(std::string& bytes, bool present, const std::string& what) {
  const auto deadline = deadline_after(timeout_s());
  std::int64_t length = present ? static_cast<std::int64_t>(bytes.size()) : -1;
  MPI_Request request;
  DPT_CHECK_MPI(MPI_Ibcast(&length, 1, MPI_INT64_T, root_, comm_, &request));
  DPT_CHECK(wait_request(request, deadline), "MPI store: rank ", rank_, " waited ", timeout_s(), " s for ", what,
            " from rank ", root_, ": that rank has died, hangs, or runs different set-up code");
  if (length < 0) return false;
  bytes.resize(static_cast<std::size_t>(length));
  DPT_CHECK(length <= INT_MAX, "MPI store: ", what, " holds ", length, " bytes; values must stay under 2 GiB");
  DPT_CHECK_MPI(MPI_Ibcast(bytes.data(), static_cast<int>(length), MPI_BYTE, root_, comm_, &request));
  DPT_CHECK(wait_request(request, deadline), "MPI store: rank ", rank_, " waited ", timeout_s(), " s for ", what,
            " from rank ", root_, ": that rank has died or hangs");
  return true;
}

std::string MpiStore::get(const std::string& key) {
  std::string value;
  bool present = false;
  if (rank_ == root_) {
    auto it = values_.find(key);
    present = it != values_.end();
    if (present) value = it->second;
  }
  DPT_CHECK(broadcast_from_root(value, present, "key '" + key + "'"), "MPI store: key '", key,
            "' was not set on rank ", root_, " before get(): the root must set() a key before the collective get()");
  return value;
}

void MpiStore::wait(const std::vector<std::string>& keys) {
  std::string missing;
  if (rank_ == root_) {
    for (const auto& key : keys) {
      if (!values_.count(key)) missing += (missing.empty() ? "'" : ", '") + key + "'";
    }
  }
  broadcast_from_root(missing, true, "the presence of " + std::to_string(keys.size()) + " key(s)");
  DPT_CHECK(missing.empty(), "MPI store: key(s) ", missing, " were not set on rank ", root_,
            " before wait(): the root must set() them first");
}

FileStore::FileStore(std::string directory, double timeout_s) : Store(timeout_s), directory_(std::move(directory)) {
  std::error_code error;
  std::filesystem::create_directories(directory_, error);
  DPT_CHECK(!error && std::filesystem::is_directory(directory_), "file store: cannot create directory '", directory_,
            "': ", error.message(), "; pass a writable directory on a filesystem every rank can see");
}

// Keys may hold '/' and other characters a file name cannot: everything outside [A-Za-z0-9._-] is %XX-escaped.
std::string FileStore::path_of(const std::string& key) const {
  DPT_CHECK(!key.empty(), "file store: empty key; name each key");
  std::ostringstream name;
  name << directory_ << "/";
  for (unsigned char c : key) {
    if (std::isalnum(c) || c == '.' || c == '_' || c == '-') {
      name << c;
    } else {
      static const char* hex = "0123456789ABCDEF";
      name << '%' << hex[c >> 4] << hex[c & 15];
    }
  }
  return name.str();
}

void FileStore::set(const std::string& key, const std::string& value) {
  const std::string path = path_of(key);
  // The temporary name is unique per process and thread, so concurrent setters never share a half-written file.
  std::ostringstream tmp;
  tmp << path << ".tmp." << ::getpid() << "." << std::this_thread::get_id();
  {
    std::ofstream out(tmp.str(), std::ios::binary | std::ios::trunc);
    out.write(value.data(), static_cast<std::streamsize>(value.size()));
    out.close();
    DPT_CHECK(out, "file store: cannot write '", tmp.str(), "' for key '", key, "': check space and permissions of ",
              directory_);
  }
  std::error_code error;
  std::filesystem::rename(tmp.str(), path, error);
  DPT_CHECK(!error, "file store: cannot rename '", tmp.str(), "' to '", path, "': ", error.message());
}

std::string FileStore::get(const std::string& key) {
  const std::string path = path_of(key);
  std::ifstream in;
  const bool found = poll_until(deadline_after(timeout_s()), [&] {
    in.open(path, std::ios::binary);
    return in.is_open();
  });
  DPT_CHECK(found, "file store ", directory_, ": no value for key '", key, "' within ", timeout_s(),
            " s: the process that sets it has died, hangs, or uses another directory");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void FileStore::wait(const std::vector<std::string>& keys) {
  const auto deadline = deadline_after(timeout_s());
  std::string missing;
  poll_until(deadline, [&] {
    missing.clear();
    for (const auto& key : keys) {
      if (!std::filesystem::exists(path_of(key))) missing += (missing.empty() ? "'" : ", '") + key + "'";
    }
    return missing.empty();
  });
  DPT_CHECK(missing.empty(), "file store ", directory_, ": key(s) ", missing, " were not set within ", timeout_s(),
            " s: the processes that set them have died, hang, or use another directory");
}

}  // namespace dpt::distributed
