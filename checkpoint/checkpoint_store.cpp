// What every checkpoint store shares: the digests of manifests and blobs, and the location -> store factory.
#include "checkpoint/checkpoint_store.h"

#include <cctype>
#include <memory>

#include <openssl/evp.h>

#include "checkpoint/local_checkpoint_store.h"
#include "core/check.h"

namespace dpt::checkpoint {

std::string digest_hex(const std::vector<std::string_view>& pieces, Digest digest) {
  const EVP_MD* type = digest == Digest::kSha256 ? EVP_sha256() : EVP_md5();
  const char* what = digest == Digest::kSha256 ? "sha256" : "md5";
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  unsigned char bytes[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  bool ok = context && EVP_DigestInit_ex(context.get(), type, nullptr) == 1;
  for (const std::string_view piece : pieces) ok = ok && EVP_DigestUpdate(context.get(), piece.data(), piece.size()) == 1;
  DPT_CHECK(ok && EVP_DigestFinal_ex(context.get(), bytes, &length) == 1, "OpenSSL could not compute a ", what,
            " digest; check the OpenSSL installation");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[bytes[i] >> 4]);
    out.push_back(kHex[bytes[i] & 15]);
  }
  return out;
}

std::string sha256_hex(const std::string& bytes) { return digest_hex({bytes}, Digest::kSha256); }

std::unique_ptr<CheckpointStore> open_checkpoint_store(const std::string& location) {
  DPT_CHECK(!location.empty(), "the checkpoint store location is empty; set checkpoint.dir (or --dir) to a directory");
  // A URL scheme names a remote store; a store for one is a file of its own plus a branch here.
  const auto scheme_end = location.find("://");
  const bool has_scheme =
      scheme_end != std::string::npos && scheme_end > 0 && std::isalpha(static_cast<unsigned char>(location[0])) &&
      location.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-") == scheme_end;
  DPT_CHECK(!has_scheme, "checkpoint store '", location, "' has the scheme ", location.substr(0, scheme_end),
            "://, which this dptrain has no store for; supported: a local or mounted directory path ",
            "(e.g. checkpoint.dir = \"checkpoints\")");
  return std::make_unique<LocalCheckpointStore>(location);
}

}  // namespace dpt::checkpoint
