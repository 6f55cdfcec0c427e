// distributed::Store: a rendezvous key/value store (set / get / wait, each bounded by a timeout) that carries
// set-up data such as the NCCL unique id between processes; FileStore here, TcpStore in tcp_store.h.
#pragma once

#include <string>
#include <vector>

namespace dpt::distributed {

// Point to point, like gloo's rendezvous::Store and c10d's Store: any process may call any operation at any time
// and in any order; nothing is collective. A value is binary (any bytes, NUL included); a later set() of a key
// replaces its value.
class Store {
 public:
  explicit Store(double timeout_s) : timeout_s_(timeout_s) {}
  virtual ~Store() = default;

  virtual std::string name() const = 0;
  virtual void set(const std::string& key, const std::string& value) = 0;
  // The value of `key`, waiting up to timeout_s() for another process to set it; throws dpt::Error naming the key.
  virtual std::string get(const std::string& key) = 0;
  // Returns once every key is set; throws dpt::Error naming the missing keys after timeout_s().
  virtual void wait(const std::vector<std::string>& keys) = 0;

  double timeout_s() const { return timeout_s_; }
  // Bounds every later operation by `timeout_s` (e.g. a short one once a long rendezvous is over).
  void set_timeout_s(double timeout_s) { timeout_s_ = timeout_s; }

 private:
  double timeout_s_;
};

// One file per key in a directory on a filesystem every process sees (NFS, Lustre, a local disk for ranks on one
// node). set() writes a temporary file and renames it into place, so a reader sees a whole value or none.
// Use a fresh directory per job: a key left by an earlier job would be read as if it had just been set.
class FileStore final : public Store {
 public:
  // Creates `directory` when it does not exist.
  explicit FileStore(std::string directory, double timeout_s = 300.0);

  std::string name() const override { return "file:" + directory_; }
  void set(const std::string& key, const std::string& value) override;
  std::string get(const std::string& key) override;
  void wait(const std::vector<std::string>& keys) override;

 private:
  std::string path_of(const std::string& key) const;

  std::string directory_;
};

}  // namespace dpt::distributed
