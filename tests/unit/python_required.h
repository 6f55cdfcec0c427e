// DPT_REQUIRE_PYTHON: a cross-check against Python readers skips without /usr/bin/python3 or its modules, and
// fails instead under CI=true, where a skipped cross-check would pass for one that ran.
#pragma once

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

namespace dpt::test {

// Empty when /usr/bin/python3 imports every module of `modules` ("h5py, numpy"; "" for none), else why not.
inline std::string missing_python(const std::string& modules) {
  const std::string imports = modules.empty() ? "sys" : modules;
  const std::string command = "/usr/bin/python3 -c 'import " + imports + "' >/dev/null 2>&1";
  if (std::system(command.c_str()) == 0) return "";
  return "/usr/bin/python3 cannot import " + imports +
         " (Debian: apt install python3 python3-h5py python3-numpy, as scripts/install-deps.sh does)";
}

inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && (std::string(ci) == "true" || std::string(ci) == "1");
}

}  // namespace dpt::test

// At the top of a test body: ends the test as skipped, or under CI=true as failed, when `modules` are missing.
#define DPT_REQUIRE_PYTHON(modules)                                                        \
  do {                                                                                     \
    const std::string dpt_missing_python = ::dpt::test::missing_python(modules);           \
    if (!dpt_missing_python.empty() && ::dpt::test::in_ci()) {                             \
      GTEST_FAIL() << dpt_missing_python << "; under CI=true every cross-check must run";  \
    }                                                                                      \
    if (!dpt_missing_python.empty()) GTEST_SKIP() << dpt_missing_python;                   \
  } while (0)
