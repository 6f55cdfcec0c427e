// HDF5 plumbing: owned ids, HDF5 error stacks turned into one readable reason, file/dataset opening with checks.
#include "data/hdf5_file.h"

#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <utility>

#include "core/check.h"

namespace dpt::data::hdf5 {

Id::Id(Id&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)), close_(other.close_) {}

Id& Id::operator=(Id&& other) noexcept {
  if (this != &other) {
    release();
    id_ = std::exchange(other.id_, H5I_INVALID_HID);
    close_ = other.close_;
  }
  return *this;
}

std::unique_lock<std::recursive_mutex> lock_library() {
  static std::recursive_mutex mutex;
  return std::unique_lock<std::recursive_mutex>(mutex);
}

herr_t Id::release() {
  const auto lock = lock_library();
  herr_t status = 0;
  if (id_ >= 0 && close_ != nullptr) status = close_(id_);
  id_ = H5I_INVALID_HID;
  return status;
}

void quiet_errors() {
  thread_local bool quiet = false;
  if (!quiet) {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    quiet = true;
  }
}

std::string last_error() {
  std::string reason;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* entry, void* out) -> herr_t {
        if (entry->desc != nullptr && entry->desc[0] != '\0') *static_cast<std::string*>(out) = entry->desc;
        return 0;
      },
      &reason);
  H5Eclear2(H5E_DEFAULT);
  return reason.empty() ? "unknown HDF5 error" : reason;
}

template <typename T>
T check(T result, const std::string& what) {
  if (result < 0) DPT_THROW(what, ": ", last_error());
  return result;
}
template hid_t check<hid_t>(hid_t, const std::string&);
template herr_t check<herr_t>(herr_t, const std::string&);

Id open_file(const std::string& path, const std::string& missing_hint) {
  quiet_errors();
  DPT_CHECK(std::filesystem::exists(path), "HDF5 file ", path, " does not exist", missing_hint);
  DPT_CHECK(!std::filesystem::is_directory(path), path, " is a directory, not an HDF5 file");
  const htri_t is_hdf5 = H5Fis_hdf5(path.c_str());
  if (is_hdf5 <= 0) {
    DPT_THROW(path, " is not an HDF5 file", is_hdf5 < 0 ? " (" + last_error() + ")" : std::string(),
              ": point at a file written by `dptrain data import-idx` or h5py");
  }
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (file < 0) {
    const std::string reason = last_error();
    DPT_THROW("cannot open HDF5 file ", path, ": ", reason,
              reason.find("unable to lock") != std::string::npos
                  ? " (on NFS or Lustre, set HDF5_USE_FILE_LOCKING=FALSE)"
                  : " (the file is truncated or corrupt: write it again)");
  }
  return Id(file, H5Fclose);
}

void write_file_atomically(const std::string& out_path, const std::function<void(hid_t file)>& write) {
  const std::filesystem::path out(out_path);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  const std::string temp = out_path + ".tmp." + std::to_string(::getpid());
  try {
    const auto lock = lock_library();
    quiet_errors();
    Id file(check(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                  "cannot create HDF5 file " + temp + " (is the folder writable?)"),
            H5Fclose);
    write(file.get());
    check(file.release(), "finishing HDF5 file " + temp + " (disk full?)");
    std::filesystem::rename(temp, out);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    throw;
  }
}

std::vector<std::string> list_datasets(hid_t file) {
  std::vector<std::string> names;
  H5Lvisit(
      file, H5_INDEX_NAME, H5_ITER_INC,
      [](hid_t group, const char* name, const H5L_info_t* info, void* out) -> herr_t {
        if (info->type != H5L_TYPE_HARD) return 0;
        const Id object(H5Oopen(group, name, H5P_DEFAULT), H5Oclose);
        if (object.get() >= 0 && H5Iget_type(object.get()) == H5I_DATASET) {
          static_cast<std::vector<std::string>*>(out)->push_back(std::string("/") + name);
        }
        return 0;
      },
      &names);
  H5Eclear2(H5E_DEFAULT);
  return names;
}

Id open_dataset(hid_t file, const std::string& path, const std::string& name, hid_t access_plist) {
  quiet_errors();
  const auto existing = [&] {
    std::string list;
    for (const auto& dataset : list_datasets(file)) list += (list.empty() ? "" : ", ") + dataset;
    return list.empty() ? std::string("none") : list;
  };
  {
    // Closed before H5Dopen2: an open handle would make HDF5 share its default chunk cache with the new one.
    const Id object(H5Oopen(file, name.c_str(), H5P_DEFAULT), H5Oclose);
    if (object.get() < 0) {
      H5Eclear2(H5E_DEFAULT);
      DPT_THROW("HDF5 file ", path, " has no dataset '", name, "'; datasets in the file: ", existing(),
                ": fix the dataset name in the config");
    }
    DPT_CHECK(H5Iget_type(object.get()) == H5I_DATASET, "'", name, "' in HDF5 file ", path,
              " is not a dataset (a group?); datasets in the file: ", existing());
  }
  return Id(check(H5Dopen2(file, name.c_str(), access_plist), "cannot open dataset '" + name + "' in " + path),
            H5Dclose);
}

namespace {

std::string type_name(hid_t type) {
  const std::size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_INTEGER: return (H5Tget_sign(type) == H5T_SGN_NONE ? "uint" : "int") + std::to_string(bits);
    case H5T_FLOAT: return "float" + std::to_string(bits);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    case H5T_BITFIELD: return "bitfield";
    case H5T_OPAQUE: return "opaque";
    case H5T_REFERENCE: return "reference";
    default: return "unknown";
  }
}

std::string filter_name(H5Z_filter_t id, const unsigned* values, std::size_t count, const char* name) {
  switch (id) {
    case H5Z_FILTER_DEFLATE: return "gzip(" + std::to_string(count > 0 ? values[0] : 0) + ")";
    case H5Z_FILTER_SHUFFLE: return "shuffle";
    case H5Z_FILTER_FLETCHER32: return "fletcher32";
    case H5Z_FILTER_SZIP: return "szip";
    case H5Z_FILTER_NBIT: return "nbit";
    case H5Z_FILTER_SCALEOFFSET: return "scaleoffset";
    default: return name[0] != '\0' ? std::string(name) : "filter " + std::to_string(id);
  }
}

}  // namespace

DatasetInfo dataset_info(hid_t dataset) {
  DatasetInfo info;
  const Id space(check(H5Dget_space(dataset), "cannot read a dataset's shape"), H5Sclose);
  const int rank = check(H5Sget_simple_extent_ndims(space.get()), "cannot read a dataset's rank");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  info.shape.assign(dims.begin(), dims.end());

  const Id type(check(H5Dget_type(dataset), "cannot read a dataset's type"), H5Tclose);
  info.dtype = type_name(type.get());
  info.type_size = H5Tget_size(type.get());

  const Id create(check(H5Dget_create_plist(dataset), "cannot read a dataset's layout"), H5Pclose);
  if (H5Pget_layout(create.get()) == H5D_CHUNKED) {
    std::vector<hsize_t> chunk(static_cast<std::size_t>(rank));
    H5Pget_chunk(create.get(), rank, chunk.data());
    info.chunk.assign(chunk.begin(), chunk.end());
  }
  const int filters = H5Pget_nfilters(create.get());
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0;
    unsigned config = 0;
    unsigned values[8] = {};
    std::size_t count = 8;
    char name[64] = {};
    const H5Z_filter_t id = H5Pget_filter2(create.get(), static_cast<unsigned>(i), &flags, &count, values,
                                           sizeof(name), name, &config);
    info.filters.push_back(filter_name(id, values, count, name));
  }
  return info;
}

std::string shape_string(const std::vector<std::int64_t>& shape) {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < shape.size(); ++i) out << (i > 0 ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

void write_dataset(hid_t file, const std::string& name, const std::vector<std::int64_t>& dims, hid_t stored_type,
                   hid_t memory_type, const void* data, const std::string& path, std::int64_t chunk_rows) {
  const std::vector<hsize_t> shape(dims.begin(), dims.end());
  std::vector<hsize_t> chunk = shape;
  chunk[0] = std::min<hsize_t>(shape[0], static_cast<hsize_t>(chunk_rows));
  const std::string what = "writing dataset '" + name + "' to " + path;
  const Id space(check(H5Screate_simple(static_cast<int>(shape.size()), shape.data(), nullptr), what), H5Sclose);
  const Id create(check(H5Pcreate(H5P_DATASET_CREATE), what), H5Pclose);
  check(H5Pset_chunk(create.get(), static_cast<int>(chunk.size()), chunk.data()), what);
  const Id dataset(
      check(H5Dcreate2(file, name.c_str(), stored_type, space.get(), H5P_DEFAULT, create.get(), H5P_DEFAULT), what),
      H5Dclose);
  check(H5Dwrite(dataset.get(), memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data), what);
}

}  // namespace dpt::data::hdf5
