// SpoolFile: one write() and one fdatasync() per append, lines read back with the ones cut short skipped.
#include "tracking/spool_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "core/check.h"

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Calls on_line(index, line) for every line that parses; the first one is the header (index -1).
template <typename OnLine>
void read_lines(const std::string& path, OnLine&& on_line) {
  std::ifstream in(path);
  std::string text;
  std::int64_t index = -1;
  while (std::getline(in, text)) {
    json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (line.is_discarded()) {
      std::cerr << ("dptrain: metrics: skipping an unreadable line of " + path + " (cut short by a crash?)\n")
                << std::flush;
      continue;
    }
    on_line(index++, std::move(line));
  }
}

void write_all(int fd, const std::string& bytes, const std::string& path) {
  for (std::size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    DPT_CHECK(n > 0, "could not write spool ", path, ": ", std::strerror(errno),
              "; check free disk space and permissions");
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

SpoolFile::SpoolFile(const std::string& dir, const std::string& stem)
    : path_((fs::path(dir) / (stem + ".jsonl")).string()), acked_path_((fs::path(dir) / (stem + ".acked")).string()) {
  std::error_code error;
  fs::create_directories(dir, error);
  DPT_CHECK(!error, "cannot create run directory ", dir, " for the spool ", path_, ": ", error.message(),
            "; choose a writable run.output_dir");
  read_lines(path_, [&](std::int64_t index, json line) {
    if (index < 0) {
      DPT_CHECK(line.contains("run"), "spool ", path_, " does not start with a run description; ",
                "move it away to start a new spool");
      header_ = std::move(line);
    } else {
      ++entries_;
    }
  });
  fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);  // read: its last byte
  DPT_CHECK(fd_ >= 0, "cannot open spool ", path_, " for appending: ", std::strerror(errno),
            "; choose a writable run.output_dir");
  // A last line cut short by a crash is ended, so that the next line is not glued onto it.
  char last = '\n';
  if (::pread(fd_, &last, 1, std::max<off_t>(::lseek(fd_, 0, SEEK_END) - 1, 0)) == 1 && last != '\n') {
    write_all(fd_, "\n", path_);
  }
}

SpoolFile::~SpoolFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<json> SpoolFile::read_entries(std::int64_t first) const {
  std::vector<json> out;
  read_lines(path_, [&](std::int64_t index, json line) {
    if (index >= first) out.push_back(std::move(line));
  });
  return out;
}

void SpoolFile::append(const std::vector<json>& lines) {
  std::string bytes;
  for (const json& line : lines) bytes += line.dump() + '\n';
  write_all(fd_, bytes, path_);
  DPT_CHECK(::fdatasync(fd_) == 0, "could not write spool ", path_, " to disk: ", std::strerror(errno),
            "; check free disk space and permissions");
  for (const json& line : lines) {
    if (header_.is_null()) {
      header_ = line;
    } else {
      ++entries_;
    }
  }
}

std::int64_t SpoolFile::read_acked() const {
  std::ifstream in(acked_path_);
  std::int64_t acked = 0;
  if (in) in >> acked;
  return acked;
}

void SpoolFile::write_acked(std::int64_t acked) const {
  const std::string tmp = acked_path_ + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << acked << '\n';
    DPT_CHECK(out.good(), "could not write ", tmp, "; check free disk space and permissions");
  }
  fs::rename(tmp, acked_path_);
}

json spooled_checkpoint(const PublishedCheckpoint& published) {
  return {{"checkpoint",
           {{"version", published.version},
            {"store", published.store},
            {"step", published.step},
            {"manifest", published.manifest},
            {"manifest_sha256", published.manifest_sha256},
            {"aliases", published.aliases}}}};
}

}  // namespace dpt::tracking
