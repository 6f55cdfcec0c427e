// Whole-file reads and crash-safe writes: POSIX calls, because std::fstream can neither fsync nor report errno.
#include "checkpoint/durable_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/check.h"

namespace dpt::checkpoint {
namespace {

// Closes the descriptor on every path out, including exceptions.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  // Closing can be where a network filesystem reports a failed write, so the result matters.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

constexpr const char* kWriteHint = "; check free disk space and the permissions of that directory";

void write_all(int fd, std::string_view bytes, const std::string& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    DPT_CHECK(n > 0, "cannot write ", path, ": ", errno_text(), kWriteHint);
    done += static_cast<std::size_t>(n);
  }
}

std::string parent_directory(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

}  // namespace

std::string read_file(const std::string& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  DPT_CHECK(fd.get() >= 0, "cannot open ", path, " for reading: ", errno_text(),
            "; check that the file exists and is readable");
  struct stat info {};
  std::string out;
  if (::fstat(fd.get(), &info) == 0 && info.st_size > 0) out.reserve(static_cast<std::size_t>(info.st_size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    DPT_CHECK(n >= 0, "cannot read ", path, ": ", errno_text(), "; check the file and the disk");
    if (n == 0) break;
    out.append(buffer, static_cast<std::size_t>(n));
  }
  return out;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  write_file_atomic(path, std::vector<std::string_view>{bytes});
}

void write_file_atomic(const std::string& path, const std::vector<std::string_view>& pieces) {
  // The temp name is unique per process and call, so concurrent writers never share a temp file.
  static std::atomic<unsigned> counter{0};
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  FileDescriptor fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  DPT_CHECK(fd.get() >= 0, "cannot create ", tmp, ": ", errno_text(), kWriteHint);
  try {
    for (const std::string_view piece : pieces) write_all(fd.get(), piece, path);
    DPT_CHECK(::fsync(fd.get()) == 0, "cannot flush ", path, " to disk: ", errno_text(), kWriteHint);
    DPT_CHECK(fd.close() == 0, "cannot write ", path, ": ", errno_text(), kWriteHint);
    DPT_CHECK(::rename(tmp.c_str(), path.c_str()) == 0, "cannot rename ", tmp, " to ", path, ": ", errno_text(),
              kWriteHint);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  fsync_directory(parent_directory(path));
}

void fsync_directory(const std::string& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  DPT_CHECK(fd.get() >= 0, "cannot open directory ", dir, ": ", errno_text(), kWriteHint);
  DPT_CHECK(::fsync(fd.get()) == 0, "cannot flush directory ", dir, " to disk: ", errno_text(), kWriteHint);
}

}  // namespace dpt::checkpoint
