// HDF5 C API plumbing shared by Hdf5Source, the IDX importer and inspect: owned ids, quiet errors, clear messages.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include <hdf5.h>

namespace dpt::data::hdf5 {

// An owned HDF5 id, closed by the matching H5?close when it goes out of scope.
class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id() = default;
  Id(hid_t id, Closer close) : id_(id), close_(close) {}
  Id(Id&& other) noexcept;
  Id& operator=(Id&& other) noexcept;
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  ~Id() { release(); }

  hid_t get() const { return id_; }
  // Closes now and returns HDF5's status, for callers that must know a file was written out completely.
  herr_t release();

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Serialises dptrain's HDF5 calls across threads (two loaders' I/O threads, say). Thread-safe HDF5 builds lock
// internally anyway; this keeps builds without H5_HAVE_THREADSAFE correct too. Recursive: entry points nest.
std::unique_lock<std::recursive_mutex> lock_library();

// Stops HDF5 printing its error stack to stderr from the calling thread (thread-safe builds keep one stack per
// thread); every entry point calls it, so failures reach users only as dpt::Error.
void quiet_errors();

// HDF5's own reason for the last failure on this thread (the innermost entry of its error stack), then clears it.
std::string last_error();

// Throws dpt::Error "<what>: <HDF5's reason>" when an HDF5 call returned a negative id or status.
template <typename T>
T check(T result, const std::string& what);

// Opens an existing HDF5 file read-only; `missing_hint` is appended when the file does not exist.
Id open_file(const std::string& path, const std::string& missing_hint);

// Creates out_path (and its folder) by calling write(file) on a temporary file that is renamed into place once
// HDF5 has written it out completely, so out_path is never half written; the temporary is removed on failure.
void write_file_atomically(const std::string& out_path, const std::function<void(hid_t file)>& write);

// Writes dataset `name` [dims] of `stored_type` (e.g. H5T_STD_U8LE) from `data` in `memory_type`, in uncompressed
// chunks of `chunk_rows` samples: shuffled training reads single samples, and a compressed chunk would have to be
// inflated whole for each. `path` names the file in errors.
void write_dataset(hid_t file, const std::string& name, const std::vector<std::int64_t>& dims, hid_t stored_type,
                   hid_t memory_type, const void* data, const std::string& path, std::int64_t chunk_rows);

// Full paths ("/images", "/group/x") of every dataset in the file, in name order.
std::vector<std::string> list_datasets(hid_t file);

// Opens dataset `name`; a missing name or a non-dataset is an error that lists the datasets that do exist.
Id open_dataset(hid_t file, const std::string& path, const std::string& name, hid_t access_plist = H5P_DEFAULT);

struct DatasetInfo {
  std::vector<std::int64_t> shape;
  std::string dtype;                 // "uint8", "float32", "string", ...
  std::size_t type_size = 0;         // bytes per element as stored
  std::vector<std::int64_t> chunk;   // chunk shape; empty when not chunked
  std::vector<std::string> filters;  // "gzip(4)", "shuffle", ...
};
DatasetInfo dataset_info(hid_t dataset);

// "[60000,28,28]"
std::string shape_string(const std::vector<std::int64_t>& shape);

}  // namespace dpt::data::hdf5
