// FileSink: opens (creating directories), flushes, closes and checks an append-only metrics file.
#include "tracking/file_sink.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/check.h"

namespace dpt::tracking {

FileSink::FileSink(const std::string& path, const std::string& what, std::ios::openmode mode)
    : path_(path), what_(what) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  std::error_code error;
  if (!parent.empty()) std::filesystem::create_directories(parent, error);
  DPT_CHECK(!error, "cannot create the directory of ", what, " ", path, ": ", error.message(),
            "; choose a writable run.output_dir");
  out_.open(path, mode | std::ios::out | std::ios::app);
  DPT_CHECK(out_.is_open(), "cannot open ", what, " ", path, " for appending: ", std::strerror(errno),
            "; choose a writable run.output_dir");
}

void FileSink::flush() {
  out_.flush();
  check_stream("flush");
}

void FileSink::close(const std::string&) {
  out_.close();
  check_stream("close");
}

void FileSink::check_stream(const char* action) {
  DPT_CHECK(out_.good(), "could not ", action, " ", what_, " ", path_, "; check free disk space and permissions");
}

}  // namespace dpt::tracking
