// MlflowRest: one libcurl easy handle per client; HTTP status and MLflow's error body become MlflowRestError.
#include "tracking/mlflow_rest.h"

#include <cstdlib>
#include <memory>
#include <mutex>

#include <curl/curl.h>

#include "core/check.h"

#define MLFLOW_THROW(failure, code, ...) \
  throw MlflowRestError(failure, code, ::dpt::detail::concat(__VA_ARGS__), ::dpt::SourceLocation{__FILE__, __LINE__})

namespace dpt::tracking {
namespace {

std::size_t append_body(char* data, std::size_t size, std::size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// curl_global_init is not thread-safe in older libcurl; once per process, before the first handle.
void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

struct HeaderList {
  curl_slist* list = nullptr;
  ~HeaderList() { curl_slist_free_all(list); }
  void add(const std::string& header) { list = curl_slist_append(list, header.c_str()); }
};

}  // namespace

MlflowRestError::MlflowRestError(MlflowFailure failure, std::string error_code, const std::string& message,
                                 SourceLocation where)
    : Error(message, where), failure_(failure), error_code_(std::move(error_code)) {}

MlflowRest::MlflowRest(std::string uri, MlflowTimeouts timeouts) : uri_(std::move(uri)), timeouts_(timeouts) {
  while (!uri_.empty() && uri_.back() == '/') uri_.pop_back();
  DPT_CHECK(uri_.rfind("http://", 0) == 0 || uri_.rfind("https://", 0) == 0, "MLflow tracking URI '", uri_,
            "' is not an http(s) URL; set tracking.mlflow.uri to the server, e.g. http://127.0.0.1:5000");
  init_curl_once();
  curl_ = curl_easy_init();
  DPT_CHECK(curl_, "libcurl could not create a handle for MLflow at ", uri_, "; check that libcurl is installed");
}

MlflowRest::~MlflowRest() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

nlohmann::json MlflowRest::get(const std::string& path,
                               const std::vector<std::pair<std::string, std::string>>& query) {
  std::string url_path = path;
  for (std::size_t i = 0; i < query.size(); ++i) {
    char* value = curl_easy_escape(static_cast<CURL*>(curl_), query[i].second.c_str(),
                                   static_cast<int>(query[i].second.size()));
    url_path += (i == 0 ? "?" : "&") + query[i].first + "=" + value;
    curl_free(value);
  }
  return perform("GET", url_path, nullptr, nullptr);
}

nlohmann::json MlflowRest::post(const std::string& path, const nlohmann::json& body) {
  const std::string text = body.dump();
  return perform("POST", path, &text, "application/json");
}

void MlflowRest::put(const std::string& path, const std::string& bytes) {
  perform("PUT", path, &bytes, "application/octet-stream");
}

nlohmann::json MlflowRest::perform(const char* method, const std::string& path, const std::string* body,
                                   const char* content_type) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);
  const std::string url = uri_ + path;
  std::string response;
  HeaderList headers;
  if (content_type) headers.add(std::string("Content-Type: ") + content_type);
  const std::string token = env("MLFLOW_TRACKING_TOKEN");
  if (!token.empty()) headers.add("Authorization: Bearer " + token);
  const std::string user = env("MLFLOW_TRACKING_USERNAME");
  const std::string password = env("MLFLOW_TRACKING_PASSWORD");
  if (!user.empty()) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERNAME, user.c_str());
    curl_easy_setopt(curl, CURLOPT_PASSWORD, password.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.list);
  if (body) {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // timeouts without SIGALRM: we are not the main thread
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeouts_.connect_s * 1000));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeouts_.request_s * 1000));
  char curl_error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_error);

  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    MLFLOW_THROW(MlflowFailure::unreachable, "", "MLflow server ", uri_, " unreachable: ", method, " ", path, ": ",
                 curl_error[0] ? curl_error : curl_easy_strerror(code));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  const nlohmann::json parsed = nlohmann::json::parse(response, nullptr, /*allow_exceptions=*/false);
  if (status >= 200 && status < 300) {
    if (parsed.is_discarded() && !response.empty()) {
      MLFLOW_THROW(MlflowFailure::unreachable, "", "MLflow server ", uri_, " answered ", method, " ", path,
                   " with HTTP ", status, " but a body that is not JSON; is ", uri_, " an MLflow tracking server?");
    }
    return parsed.is_discarded() ? nlohmann::json::object() : parsed;
  }
  std::string error_code;
  std::string message = response.substr(0, 300);
  if (parsed.is_object()) {
    error_code = parsed.value("error_code", "");
    message = parsed.value("message", message);
  }
  const bool retry_later = status == 429 || status >= 500;
  MLFLOW_THROW(retry_later ? MlflowFailure::unreachable : MlflowFailure::rejected, error_code, "MLflow server ",
               uri_, " answered ", method, " ", path, " with HTTP ", status,
               error_code.empty() ? "" : " " + error_code, ": ", message);
}

}  // namespace dpt::tracking
