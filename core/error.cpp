// dpt::Error construction and the process-wide rank/host identity it reports.
#include "core/error.h"

#include <unistd.h>

#include <cstring>
#include <sstream>

namespace dpt {
namespace {

std::string local_hostname() {
  char name[256] = {0};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

int g_rank = -1;
std::string& identity_host() {
  static std::string host = local_hostname();
  return host;
}

const char* basename_of(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash ? slash + 1 : path;
}

std::string format(const std::string& message, SourceLocation where) {
  if (where.file == nullptr) return message;
  std::ostringstream out;
  if (g_rank >= 0) out << "[rank " << g_rank << " on " << identity_host() << "] ";
  out << message << " (" << basename_of(where.file) << ":" << where.line << ")";
  return out.str();
}

}  // namespace

Error::Error(const std::string& message, SourceLocation where)
    : std::runtime_error(format(message, where)),
      message_(message),
      rank_(g_rank),
      host_(identity_host()),
      where_(where) {}

void set_error_identity(int rank, const std::string& host) {
  g_rank = rank;
  if (!host.empty()) identity_host() = host;
}

const std::string& error_host() { return identity_host(); }

}  // namespace dpt
