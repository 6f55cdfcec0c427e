// confusion_matrix_png: cells, a 3x5 digit font and the PNG chunks (IHDR, one zlib-compressed IDAT, IEND).
#include "cli/confusion_png.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/check.h"

namespace dpt::cli {
namespace {

using Rgb = std::array<unsigned char, 3>;

// Rows of 3 bits, top to bottom, for the digits 0-9.
constexpr std::array<std::array<unsigned char, 5>, 10> kDigits = {{{7, 5, 5, 5, 7},
                                                                   {2, 6, 2, 2, 7},
                                                                   {7, 1, 7, 4, 7},
                                                                   {7, 1, 7, 1, 7},
                                                                   {5, 5, 7, 1, 1},
                                                                   {7, 4, 7, 1, 7},
                                                                   {7, 4, 7, 5, 7},
                                                                   {7, 1, 1, 1, 1},
                                                                   {7, 5, 7, 5, 7},
                                                                   {7, 5, 7, 1, 7}}};
constexpr int kScale = 2;                    // font pixels per glyph pixel
constexpr int kAdvance = 4 * kScale;         // a glyph and its gap
constexpr int kGlyphHeight = 5 * kScale;

// Five stops of matplotlib's viridis, interpolated linearly.
Rgb viridis(double share) {
  static constexpr std::array<Rgb, 5> kStops = {
      {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
  const double at = std::clamp(share, 0.0, 1.0) * (kStops.size() - 1);
  const auto low = std::min(static_cast<std::size_t>(at), kStops.size() - 2);
  const double t = at - static_cast<double>(low);
  Rgb out{};
  for (std::size_t i = 0; i < 3; ++i) {
    out[i] = static_cast<unsigned char>(std::lround(kStops[low][i] * (1 - t) + kStops[low + 1][i] * t));
  }
  return out;
}

struct Image {
  int width, height;
  std::vector<unsigned char> pixels;  // RGB rows

  Image(int w, int h) : width(w), height(h), pixels(static_cast<std::size_t>(w) * h * 3, 255) {}

  void fill(int x0, int y0, int w, int h, const Rgb& colour) {
    for (int y = std::max(0, y0); y < std::min(height, y0 + h); ++y) {
      for (int x = std::max(0, x0); x < std::min(width, x0 + w); ++x) {
        std::copy(colour.begin(), colour.end(), pixels.begin() + (static_cast<std::ptrdiff_t>(y) * width + x) * 3);
      }
    }
  }

  // `text` (digits) centred on (cx, cy).
  void digits(const std::string& text, int cx, int cy, const Rgb& colour) {
    int x = cx - (static_cast<int>(text.size()) * kAdvance - kScale) / 2;
    const int y = cy - kGlyphHeight / 2;
    for (const char c : text) {
      const auto& glyph = kDigits.at(static_cast<std::size_t>(c - '0'));
      for (int row = 0; row < 5; ++row) {
        for (int column = 0; column < 3; ++column) {
          if (glyph[row] & (4 >> column)) fill(x + column * kScale, y + row * kScale, kScale, kScale, colour);
        }
      }
      x += kAdvance;
    }
  }
};

int text_width(const std::string& text) { return static_cast<int>(text.size()) * kAdvance; }

void put_u32(std::string& out, std::uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xff));
}

void chunk(std::string& png, const char* type, const std::string& data) {
  put_u32(png, static_cast<std::uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  png += body;
  put_u32(png, static_cast<std::uint32_t>(
                   crc32(0, reinterpret_cast<const Bytef*>(body.data()), static_cast<uInt>(body.size()))));
}

std::string encode_png(const Image& image) {
  std::string raw;
  const std::size_t row_bytes = static_cast<std::size_t>(image.width) * 3;
  for (int y = 0; y < image.height; ++y) {
    raw.push_back(0);  // filter: none
    raw.append(reinterpret_cast<const char*>(image.pixels.data()) + y * row_bytes, row_bytes);
  }
  uLongf size = compressBound(static_cast<uLong>(raw.size()));
  std::string compressed(size, '\0');
  DPT_CHECK(compress2(reinterpret_cast<Bytef*>(compressed.data()), &size, reinterpret_cast<const Bytef*>(raw.data()),
                      static_cast<uLong>(raw.size()), Z_BEST_COMPRESSION) == Z_OK,
            "zlib could not compress the confusion matrix image; check the zlib installation");
  compressed.resize(size);
  std::string header;
  put_u32(header, static_cast<std::uint32_t>(image.width));
  put_u32(header, static_cast<std::uint32_t>(image.height));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, adaptive filtering, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  chunk(png, "IHDR", header);
  chunk(png, "IDAT", compressed);
  chunk(png, "IEND", "");
  return png;
}

}  // namespace

std::string confusion_matrix_png(const std::vector<std::int64_t>& counts, std::int64_t classes) {
  DPT_CHECK(classes > 0 && counts.size() == static_cast<std::size_t>(classes * classes),
            "a confusion matrix of ", classes, " classes needs ", classes * classes, " counts, not ", counts.size());
  const int n = static_cast<int>(classes);
  // Cells of 48 px for up to 10 classes, smaller for more, at most about 1000 px in all, at least 1 px.
  const int cell = n <= 10 ? 48 : std::max(1, std::min(32, 1000 / n));
  const bool labels = cell >= kGlyphHeight + 2;
  const int margin = labels ? text_width(std::to_string(n - 1)) + 8 : 4;
  Image image(margin + n * cell + 4, margin + n * cell + 4);
  const Rgb black{0, 0, 0};
  const Rgb white{255, 255, 255};
  for (int label = 0; label < n; ++label) {
    std::int64_t row_total = 0;
    for (int p = 0; p < n; ++p) row_total += counts[static_cast<std::size_t>(label) * n + p];
    for (int p = 0; p < n; ++p) {
      const std::int64_t count = counts[static_cast<std::size_t>(label) * n + p];
      const double share = row_total > 0 ? static_cast<double>(count) / static_cast<double>(row_total) : 0.0;
      const int x = margin + p * cell;
      const int y = margin + label * cell;
      image.fill(x, y, cell, cell, viridis(share));
      const std::string text = std::to_string(count);
      if (labels && text_width(text) + 4 <= cell) image.digits(text, x + cell / 2, y + cell / 2, share < 0.6 ? white : black);
    }
    if (labels) {
      const std::string name = std::to_string(label);
      image.digits(name, margin - 4 - text_width(name) / 2, margin + label * cell + cell / 2, black);
      image.digits(name, margin + label * cell + cell / 2, margin / 2, black);
    }
  }
  return encode_png(image);
}

}  // namespace dpt::cli
