// MlflowRest: JSON requests to an MLflow tracking server's REST API (/api/2.0/mlflow/...) over libcurl.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace dpt::tracking {

// Why a request failed decides what the caller does: `unreachable` (no connection, a timeout, HTTP 429 or 5xx)
// may work later, so records stay spooled; `rejected` (any other 4xx) never will, so retrying is pointless.
enum class MlflowFailure { unreachable, rejected };

class MlflowRestError : public Error {
 public:
  MlflowRestError(MlflowFailure failure, std::string error_code, const std::string& message, SourceLocation where);
  MlflowFailure failure() const { return failure_; }
  // MLflow's error_code, e.g. "RESOURCE_DOES_NOT_EXIST"; empty when the server sent none.
  const std::string& error_code() const { return error_code_; }

 private:
  MlflowFailure failure_;
  std::string error_code_;
};

struct MlflowTimeouts {
  // Short, because the sink runs on the metric hub's drain thread: a dead server must cost seconds, not minutes.
  double connect_s = 2.0;
  double request_s = 5.0;
};

class MlflowRest {
 public:
  // `uri` is the server's base URL, e.g. "http://127.0.0.1:5000". Credentials come from the environment as
  // for MLflow's own client: MLFLOW_TRACKING_TOKEN (bearer), or MLFLOW_TRACKING_USERNAME and _PASSWORD (basic).
  explicit MlflowRest(std::string uri, MlflowTimeouts timeouts = {});
  ~MlflowRest();
  MlflowRest(const MlflowRest&) = delete;
  MlflowRest& operator=(const MlflowRest&) = delete;

  // `path` starts after the host, e.g. "/api/2.0/mlflow/runs/get". Throw MlflowRestError on failure.
  nlohmann::json get(const std::string& path, const std::vector<std::pair<std::string, std::string>>& query = {});
  nlohmann::json post(const std::string& path, const nlohmann::json& body);
  void put(const std::string& path, const std::string& bytes);  // a raw body, e.g. an artifact upload

  const std::string& uri() const { return uri_; }

 private:
  nlohmann::json perform(const char* method, const std::string& path, const std::string* body,
                         const char* content_type);

  std::string uri_;
  MlflowTimeouts timeouts_;
  void* curl_;  // one CURL easy handle, kept so that its connection is reused between requests
};

}  // namespace dpt::tracking
