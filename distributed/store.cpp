// FileStore: one atomically renamed file per key in a directory every process sees.
#include "distributed/store.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "core/check.h"
#include "distributed/deadline.h"

namespace dpt::distributed {

using detail::deadline_after;
using detail::poll_until;

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
