// Tests for safetensors files: every dtype bit-exact, the spec's byte layout, corruption errors, Python reading them.
#include "checkpoint/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "python_required.h"

namespace dpt::checkpoint {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

std::string raw_bytes(const at::Tensor& tensor) {
  const at::Tensor dense = tensor.contiguous();
  if (dense.nbytes() == 0) return "";
  return std::string(static_cast<const char*>(dense.data_ptr()), dense.nbytes());
}

std::string temp_path(const std::string& name) {
  return testing::TempDir() + "dpt_safetensors_" + std::to_string(::getpid()) + "_" + name;
}

// Values exactly representable in every dtype they are cast to, so comparisons can be exact.
NamedTensors every_dtype() {
  const at::Tensor grid = at::arange(-6, 6, at::kLong).reshape({3, 4});
  NamedTensors out;
  for (const auto type : {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16}) {
    out.emplace_back(at::toString(type), grid.to(at::kDouble).mul(0.75).to(type));
  }
  for (const auto type : {at::kLong, at::kInt, at::kShort, at::kChar}) {
    out.emplace_back(at::toString(type), grid.mul(9).to(type));
  }
  out.emplace_back("Byte", grid.add(6).mul(21).to(at::kByte));
  out.emplace_back("Bool", grid.remainder(3).eq(0));
  out.emplace_back("scalar", at::scalar_tensor(2.5, at::kFloat));
  out.emplace_back("empty", at::empty({0, 5}, at::kFloat));
  out.emplace_back("transposed", at::arange(12, at::kInt).reshape({3, 4}).t());
  out.emplace_back("large_i64", at::tensor(std::vector<std::int64_t>{(std::int64_t{1} << 40) + 3, -1}));
  return out;
}

// A file with the given header text and data, framed as the spec says.
std::string frame(std::string header, const std::string& data) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((std::uint64_t{header.size()} >> (8 * i)) & 0xff);
  return out + header + data;
}

TEST(SafetensorsTest, RoundTripIsBitExactForEveryDtypeAndShape) {
  const NamedTensors original = every_dtype();
  const NamedTensors decoded = decode_safetensors(encode_safetensors(original), "memory");
  ASSERT_EQ(decoded.size(), original.size());
  for (std::size_t i = 0; i < original.size(); ++i) {
    SCOPED_TRACE(original[i].first);
    EXPECT_EQ(decoded[i].first, original[i].first);
    EXPECT_EQ(decoded[i].second.scalar_type(), original[i].second.scalar_type());
    EXPECT_EQ(decoded[i].second.sizes(), original[i].second.sizes());
    EXPECT_EQ(raw_bytes(decoded[i].second), raw_bytes(original[i].second));
  }
}

TEST(SafetensorsTest, LayoutFollowsTheSpec) {
  const NamedTensors tensors = {{"a", at::zeros({2, 3}, at::kFloat)}, {"b", at::ones({1}, at::kLong)}};
  const std::string bytes = encode_safetensors(tensors, {{"format", "pt"}});
  ASSERT_GE(bytes.size(), 8u);
  std::uint64_t length = 0;
  for (int i = 0; i < 8; ++i) length |= std::uint64_t{static_cast<unsigned char>(bytes[i])} << (8 * i);
  EXPECT_EQ(length % 8, 0u);
  ASSERT_EQ(bytes.size(), 8 + length + 6 * 4 + 8);

  const std::string header_text = bytes.substr(8, length);
  const auto last = header_text.find_last_not_of(' ');
  ASSERT_NE(last, std::string::npos);
  EXPECT_EQ(header_text[last], '}');
  EXPECT_LT(header_text.size() - last - 1, 8u) << "padding is at most 7 spaces";
  const auto header = nlohmann::json::parse(header_text);
  EXPECT_EQ(header, nlohmann::json::parse(R"({
      "__metadata__": {"format": "pt"},
      "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
      "b": {"dtype": "I64", "shape": [1], "data_offsets": [24, 32]}})"));
  EXPECT_EQ(bytes.substr(8 + length + 24), std::string("\x01\0\0\0\0\0\0\0", 8));
}

TEST(SafetensorsTest, MetadataRoundTrips) {
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"run", "abc"}};
  const auto decoded = decode_safetensors_with_metadata(encode_safetensors({}, metadata), "memory");
  EXPECT_EQ(decoded.metadata, metadata);
  EXPECT_TRUE(decoded.tensors.empty());
}

TEST(SafetensorsTest, CorruptInputsAreRejectedNamingTheSource) {
  const std::string valid = encode_safetensors({{"x", at::ones({2}, at::kFloat)}});
  std::string huge_length = valid;
  huge_length[5] = 1;
  const std::string f32_pair = std::string(8, '\0');
  const struct {
    const char* label;
    std::string bytes;
    const char* expected;
  } cases[] = {
      {"truncated", valid.substr(0, valid.size() - 1), "cover 8 data bytes but the file holds 7"},
      {"extended", valid + "junk", "but the file holds 12"},
      {"shorter than the length field", "abc", "too short"},
      {"header length beyond the file", huge_length, "header length"},
      {"bad JSON", frame("{\"x\": {", ""), "not a JSON object"},
      {"JSON that is not an object", frame("[1, 2]", ""), "not a JSON object"},
      {"offsets past the data", frame(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"),
       "file holds 4"},
      {"offsets that disagree with the shape",
       frame(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", f32_pair), "needs 12 bytes"},
      {"overlapping tensors",
       frame(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
             R"("y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
             f32_pair + "1234"),
       "overlap"},
      {"a gap between tensors",
       frame(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
             R"("y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
             f32_pair + "1234"),
       "gap"},
      {"reversed offsets", frame(R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", "1234"), "data_offsets"},
      {"unknown dtype", frame(R"({"x":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", "1"), "F8_E4M3"},
      {"negative dimension", frame(R"({"x":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}})", "1"), "non-negative"},
      {"missing offsets", frame(R"({"x":{"dtype":"U8","shape":[1]}})", "1"), "data_offsets"},
      {"non-string metadata", frame(R"({"__metadata__":{"a":1}})", ""), "__metadata__"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.label);
    EXPECT_THAT([&] { decode_safetensors(c.bytes, "ckpt/model.safetensors"); },
                ThrowsMessage<Error>(AllOf(HasSubstr("ckpt/model.safetensors"), HasSubstr(c.expected))));
  }
}

TEST(SafetensorsTest, EncodeRejectsWhatCannotBeStored) {
  const at::Tensor t = at::ones({2});
  EXPECT_THAT([&] { encode_safetensors({{"w", t}, {"w", t}}); }, ThrowsMessage<Error>(HasSubstr("'w' appears twice")));
  EXPECT_THAT(
      [&] {
        encode_safetensors({{"z", at::ones({2}, at::kComplexFloat)}});
      },
      ThrowsMessage<Error>(AllOf(HasSubstr("'z'"), HasSubstr("ComplexFloat"))));
  EXPECT_THAT([&] { encode_safetensors({{"u", at::Tensor()}}); }, ThrowsMessage<Error>(HasSubstr("'u' is undefined")));
  EXPECT_THAT([&] { encode_safetensors({{"__metadata__", t}}); }, ThrowsMessage<Error>(HasSubstr("reserved")));
}

TEST(SafetensorsTest, FilesRoundTripAndErrorsNameThePath) {
  const std::string path = temp_path("file.safetensors");
  const NamedTensors original = every_dtype();
  write_safetensors(path, original);
  EXPECT_EQ(encode_safetensors(read_safetensors(path)), encode_safetensors(original));
  std::filesystem::remove(path);
  EXPECT_THAT([&] { read_safetensors(path); }, ThrowsMessage<Error>(HasSubstr(path)));
}

// A reader written from the spec with only json and struct, independent of our decoder; it also asks the real
// `safetensors` package when that is installed.
constexpr const char* kPythonReader = R"PY(
import json, struct, sys
path = sys.argv[1]
with open(path, "rb") as f:
    data = f.read()
(n,) = struct.unpack("<Q", data[:8])
header = json.loads(data[8:8 + n].decode("utf-8"))
header.pop("__metadata__", None)
body = data[8 + n:]
formats = {"F32": "f", "F64": "d", "F16": "e", "I64": "q", "I32": "i", "I16": "h", "I8": "b", "U8": "B", "BOOL": "?"}
out = {}
for name, info in header.items():
    begin, end = info["data_offsets"]
    raw = body[begin:end]
    count = 1
    for d in info["shape"]:
        count *= d
    if info["dtype"] == "BF16":
        values = [struct.unpack("<f", b"\0\0" + raw[2 * i:2 * i + 2])[0] for i in range(count)]
    else:
        values = struct.unpack("<%d%s" % (count, formats[info["dtype"]]), raw)
    out[name] = {"dtype": info["dtype"], "shape": info["shape"], "values": [float(v) for v in values]}
try:
    import safetensors.numpy
except ImportError:
    pass
else:
    for name, info in out.items():
        if info["dtype"] != "BF16":
            array = safetensors.numpy.load_file(path)[name]
            assert [float(v) for v in array.ravel()] == info["values"], name
print(json.dumps(out))
)PY";

TEST(SafetensorsTest, PythonReadsOurFiles) {
  const std::string python = "/usr/bin/python3";
  DPT_REQUIRE_PYTHON("");
  const std::string script = temp_path("reader.py");
  const std::string path = temp_path("python.safetensors");
  std::ofstream(script) << kPythonReader;
  NamedTensors tensors = every_dtype();
  write_safetensors(path, tensors, {{"format", "pt"}});

  FILE* pipe = ::popen((python + " " + script + " " + path).c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0;) output.append(buffer, n);
  ASSERT_EQ(::pclose(pipe), 0) << output;
  std::filesystem::remove(script);
  std::filesystem::remove(path);

  const auto seen = nlohmann::json::parse(output);
  ASSERT_EQ(seen.size(), tensors.size());
  const std::map<at::ScalarType, std::string> names = {
      {at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kHalf, "F16"}, {at::kBFloat16, "BF16"}, {at::kLong, "I64"},
      {at::kInt, "I32"},   {at::kShort, "I16"},  {at::kChar, "I8"},  {at::kByte, "U8"},       {at::kBool, "BOOL"}};
  for (const auto& [name, tensor] : tensors) {
    SCOPED_TRACE(name);
    const auto& info = seen.at(name);
    EXPECT_EQ(info["dtype"], names.at(tensor.scalar_type()));
    EXPECT_EQ(info["shape"].get<std::vector<std::int64_t>>(), tensor.sizes().vec());
    const at::Tensor values = tensor.to(at::kDouble).contiguous();
    EXPECT_EQ(info["values"].get<std::vector<double>>(),
              std::vector<double>(values.data_ptr<double>(), values.data_ptr<double>() + values.numel()));
  }
}

}  // namespace
}  // namespace dpt::checkpoint
