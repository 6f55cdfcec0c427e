// dpt::Error: the one exception type of dptrain, carrying rank, host and source location.
#pragma once

#include <stdexcept>
#include <string>

namespace dpt {

// Where an error was raised; filled by the DPT_CHECK macros. A null file means the message is already
// complete (an error relayed from another rank) and gets no rank/host/location decoration.
struct SourceLocation {
  const char* file;
  int line;
};

class Error : public std::runtime_error {
 public:
  Error(const std::string& message, SourceLocation where);

  // What went wrong and what to do, without the location prefix.
  const std::string& message() const { return message_; }
  int rank() const { return rank_; }
  const std::string& host() const { return host_; }
  SourceLocation where() const { return where_; }

 private:
  std::string message_;
  int rank_;
  std::string host_;
  SourceLocation where_;
};

// The rank and host that errors raised in this process report; set once by the Runtime.
void set_error_identity(int rank, const std::string& host);
// This process's host name as errors report it (the TCP store names it when it cannot listen or connect).
const std::string& error_host();

}  // namespace dpt
