// W&B sink: a durable spool on disk, and the wandb SDK in a child process that follows it, started again when it dies.
#include "tracking/wandb_sink.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "tracking/spool_file.h"
#include "tracking/wandb_driver_source.h"

extern char** environ;

namespace dpt::tracking {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kSpoolStem[] = "wandb-spool";
constexpr char kDriverFile[] = "wandb-driver.py";
constexpr char kDriverLog[] = "wandb-driver.log";
constexpr char kPythonKey[] = "tracking.wandb.python";
// Importing wandb takes about a second; a slow shared file system may take much longer, a hung one forever.
constexpr double kCheckTimeoutS = 120.0;

void report(const std::string& message) {
  std::cerr << ("dptrain: metrics: wandb: " + message + "\n") << std::flush;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string seconds_text(double seconds) {
  std::ostringstream out;
  out << seconds;
  return out.str();
}

std::streamoff file_size(const std::string& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  return error ? 0 : static_cast<std::streamoff>(size);
}

// The last non-empty line written to a file after offset `since` (its last 4 KiB suffice): a driver's own
// explanation of its exit; "" when it wrote none.
std::string last_line(const std::string& path, std::streamoff since) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff from = std::max<std::streamoff>({size - 4096, since, 0});
  if (from >= size) return "";
  in.seekg(from);
  std::string tail(static_cast<std::size_t>(size - from), '\0');
  in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
  return tail.substr(tail.find_last_of('\n') == std::string::npos ? 0 : tail.find_last_of('\n') + 1);
}

std::string exit_text(int status) {
  if (WIFSIGNALED(status)) return "was killed by signal " + std::to_string(WTERMSIG(status));
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  return "ended";
}

// The driver's source, written beside the spool (replaced in one rename, so that a driver starting meanwhile
// reads a whole file). The run directory then holds everything a later replay needs.
std::string write_driver(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / kDriverFile).string();
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << wandb_driver_source();
    DPT_CHECK(out.good(), "could not write ", tmp, "; check free disk space and permissions");
  }
  fs::rename(tmp, path);
  return path;
}

// Starts argv (argv[0] looked up on PATH) in a process group of its own, so that a Ctrl-C meant for training does
// not reach it, with stdin from /dev/null, stdout and stderr appended to `log`, no signal blocked and the
// preemption signals at their defaults.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attributes, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (const int signal : {SIGINT, SIGTERM, SIGUSR1, SIGHUP, SIGPIPE}) sigaddset(&defaults, signal);
  posix_spawnattr_setsigdefault(&attributes, &defaults);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int error = posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  DPT_CHECK(error == 0, "cannot start the wandb sink's python '", argv[0], "': ", std::strerror(error), "; set ",
            kPythonKey, " to a Python with the wandb package (bash scripts/setup-venv.sh installs it into .venv)");
  return pid;
}

// Runs `python driver --check` (it imports wandb); throws dpt::Error naming tracking.wandb.python when it fails.
void check_python(const std::string& python, const std::string& driver, const std::string& log) {
  const std::streamoff since = file_size(log);
  const pid_t pid = spawn({python, driver, "--check"}, log);
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(kCheckTimeoutS));
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      DPT_THROW("the wandb sink's python '", python, "' did not import wandb within ", kCheckTimeoutS,
                " s (see ", log, "); set ", kPythonKey, " to a Python with the wandb package");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  DPT_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the wandb sink's python '", python, "' ",
            exit_text(status), ": ", last_line(log, since), "; set ", kPythonKey,
            " to a Python with the wandb package (bash scripts/setup-venv.sh installs the pinned one into .venv)");
}

class WandbSink final : public Sink {
 public:
  WandbSink(RunInfo run, WandbOptions options)
      : run_(std::move(run)), options_(std::move(options)), spool_(run_.dir, kSpoolStem),
        log_((fs::path(run_.dir) / kDriverLog).string()) {
    if (spool_.header().is_null()) {
      const json run = {{"id", run_.id}, {"name", run_.name}, {"config", flatten_config(run_.params)},
                        {"tags", run_.tags}};
      const json wandb = {{"mode", options_.mode}, {"project", options_.project}, {"entity", options_.entity}};
      spool_.append({{{"run", run}, {"wandb", wandb}}});
    }
    // The start entry ends the W&B segment of an earlier process of this run that did not close (killed): W&B's
    // history only goes forward, and a resume may repeat steps that process logged.
    first_entry_ = spool_.entries();
    spool_.append({{{"start", {{"pid", getpid()}, {"time", unix_now()}}}}});
    driver_ = write_driver(run_.dir);
    check_python(options_.python, driver_, log_);
    start_driver();
  }

  std::string name() const override { return "wandb"; }

  void write(const std::vector<MetricRecord>& records) override {
    if (records.empty()) return;
    std::vector<json> lines;
    for (const MetricRecord& record : records) {
      json metrics = json::object();
      for (const auto& [key, value] : record.values) metrics[key] = json_number(value);
      lines.push_back({{"step", record.step}, {"epoch", record.epoch}, {"time", record.time}, {"metrics", metrics}});
    }
    spool_.append(lines);
    supervise();
  }

  void checkpoint(const PublishedCheckpoint& published) override {
    spool_.append({spooled_checkpoint(published)});
    supervise();
  }

  // Appended lines are on disk already; the driver follows them at its own pace.
  void flush() override { supervise(); }

  // The status ends the driver's segment; it then exits. Waited for within close_wait_s, restarts included.
  void close(const std::string& status) override {
    spool_.append({{{"status", status}}});
    closing_ = true;
    const auto deadline = Clock::now() + seconds(options_.close_wait_s);
    while (!delivered_ && Clock::now() < deadline && (pid_ > 0 || (!gave_up_ && restart_at_ < deadline))) {
      supervise();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    const std::int64_t left = spool_.entries() - std::min(spool_.read_acked(), spool_.entries());
    if (delivered_ && left == 0) {
      if (options_.mode == "offline") {
        report("the run is logged offline in " + run_.dir + "/wandb; upload it with: wandb sync " + run_.dir +
               "/wandb/offline-run-*");
      }
    } else if (pid_ > 0) {
      report("the W&B driver (pid " + std::to_string(pid_) + ") is still delivering " + std::to_string(left) +
             " entries of " + spool_.path() + "; it finishes on its own (log: " + log_ + ")");
    } else {
      report(std::to_string(left) + " entries of " + spool_.path() + " are not delivered; they are when the run " +
             "resumes, or with: dptrain runs sync " + run_.dir + " --wandb");
    }
  }

 private:
  static Clock::duration seconds(double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }

  void start_driver() {
    log_size_at_start_ = file_size(log_);
    pid_ = spawn({options_.python, driver_, run_.dir, "--parent", std::to_string(getpid()), "--start-entry",
                  std::to_string(first_entry_), "--mode", options_.mode, "--project", options_.project, "--entity",
                  options_.entity},
                 log_);
    started_at_ = Clock::now();
  }

  // Reaps a driver that ended: after close() with exit 0 it is done; otherwise it is started again after a
  // backoff, until max_restarts deaths in a row. Never blocks.
  void supervise() {
    if (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == 0) return;
      const pid_t dead = pid_;
      pid_ = -1;
      if (closing_ && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        delivered_ = true;
        return;
      }
      failures_ = Clock::now() - started_at_ >= seconds(options_.restart_max_s) ? 1 : failures_ + 1;
      const std::string said = last_line(log_, log_size_at_start_);
      const std::string why = "the W&B driver (pid " + std::to_string(dead) + ") " + exit_text(status) +
                              (said.empty() ? "" : " (" + said + ")");
      if (failures_ > options_.max_restarts) {
        gave_up_ = true;
        report(why + " " + std::to_string(failures_) + " times in a row; records keep going to " + spool_.path() +
               "; deliver them later with: dptrain runs sync " + run_.dir + " --wandb");
        return;
      }
      const double wait_s =
          std::min(options_.restart_min_s * std::pow(2.0, failures_ - 1), options_.restart_max_s);
      restart_at_ = Clock::now() + seconds(wait_s);
      report(why + "; starting it again in " + seconds_text(wait_s) + " s (" + std::to_string(failures_) + " of " +
             std::to_string(options_.max_restarts) + "), to log the spool from where it was acknowledged");
    }
    if (pid_ < 0 && !gave_up_ && !delivered_ && Clock::now() >= restart_at_) {
      try {
        start_driver();
      } catch (const Error& e) {
        gave_up_ = true;
        report(e.message() + "; records keep going to " + spool_.path());
      }
    }
  }

  RunInfo run_;
  WandbOptions options_;
  SpoolFile spool_;
  std::string log_;
  std::string driver_;
  std::int64_t first_entry_ = 0;  // the index of this process's start entry (earlier processes' come before)
  pid_t pid_ = -1;
  std::streamoff log_size_at_start_ = 0;  // where the running driver's output begins in the log
  Clock::time_point started_at_{};
  Clock::time_point restart_at_{};
  int failures_ = 0;
  bool closing_ = false;
  bool delivered_ = false;
  bool gave_up_ = false;
};

}  // namespace

std::string default_wandb_python() {
  const std::string venv = project_venv_python();
  return ::access(venv.c_str(), X_OK) == 0 ? venv : "python3";
}

WandbOptions wandb_options(const Config& config) {
  WandbOptions options;
  options.python = config.get_string(kPythonKey);
  if (options.python.empty()) options.python = default_wandb_python();
  options.mode = config.get_string("tracking.wandb.mode");
  options.project = config.get_string("tracking.wandb.project");
  options.entity = config.get_string("tracking.wandb.entity");
  return options;
}

std::unique_ptr<Sink> make_wandb_sink(const RunInfo& run, const WandbOptions& options) {
  return std::make_unique<WandbSink>(run, options);
}

WandbSyncReport sync_wandb_run(const std::string& run_dir, const std::string& python) {
  const fs::path spool_path = fs::path(run_dir) / (std::string(kSpoolStem) + ".jsonl");
  DPT_CHECK(fs::exists(spool_path), "run directory ", run_dir, " has no ", spool_path.filename().string(),
            ": nothing to sync to W&B (was it written with \"wandb\" in tracking.sinks?)");
  const SpoolFile spool(run_dir, kSpoolStem);
  const std::string driver = write_driver(run_dir);
  const std::string log = (fs::path(run_dir) / kDriverLog).string();
  check_python(python, driver, log);
  const std::streamoff since = file_size(log);
  const pid_t pid = spawn({python, driver, run_dir}, log);
  int status = 0;
  DPT_CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the W&B driver ", exit_text(status), ": ", last_line(log, since), " (log: ", log, ")");
  return {spool.entries(), std::min(spool.read_acked(), spool.entries()),
          spool.header().value("wandb", json::object()).value("mode", "offline")};
}

}  // namespace dpt::tracking
