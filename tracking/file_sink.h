// FileSink: the common part of sinks that append to one local file (JSONL, TensorBoard event files).
#pragma once

#include <fstream>
#include <string>

#include "tracking/sink.h"

namespace dpt::tracking {

class FileSink : public Sink {
 public:
  void flush() override;
  void close(const std::string& status) override;

 protected:
  // Creates the parent directories and opens `path` for appending. `what` names the file in errors
  // ("metrics file"). Throws dpt::Error naming the path when either fails.
  FileSink(const std::string& path, const std::string& what, std::ios::openmode mode);
  // Throws dpt::Error naming the file when the stream has failed; `action` is e.g. "write to".
  void check_stream(const char* action);
  std::ofstream& out() { return out_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string what_;
  std::ofstream out_;
};

}  // namespace dpt::tracking
