#include "pil_resize.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "../core/error.h"

namespace vargpt::image {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;
constexpr double kPi = 3.14159265358979323846;

// The filters of Resample.c, in double, with their supports.
double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * kPi;
  // Pillow writes the constants as floats (0.54f, 0.46f); keep them so.
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));
}

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * kPi;
  return std::sin(x) / x;
}

double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct FilterDef {
  double (*fn)(double);
  double support;
};

FilterDef filter_def(Filter filter) {
  switch (filter) {
    case Filter::Box: return {box_filter, 0.5};
    case Filter::Bilinear: return {bilinear_filter, 1.0};
    case Filter::Hamming: return {hamming_filter, 1.0};
    case Filter::Bicubic: return {bicubic_filter, 2.0};
    case Filter::Lanczos: return {lanczos_filter, 3.0};
    case Filter::Nearest: break;
  }
  fail("pil_resize: filter ", static_cast<int>(filter), " has no convolution kernel");
}

// precompute_coeffs + normalize_coeffs_8bpc of Resample.c: per output pixel, the first input
// index, the tap count, and ksize fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // 2 per output: xmin, count
  std::vector<int32_t> kk;  // ksize per output
};

Coeffs precompute_coeffs(int in_size, float in0, float in1, int out_size, const FilterDef& filter) {
  double scale = static_cast<double>(in1 - in0) / out_size;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = filter.support * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.assign(static_cast<size_t>(out_size) * 2, 0);
  c.kk.assign(static_cast<size_t>(out_size) * c.ksize, 0);
  std::vector<double> k(static_cast<size_t>(c.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    double ww = 0.0;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    std::fill(k.begin(), k.end(), 0.0);
    for (int x = 0; x < xmax; ++x) {
      const double w = filter.fn((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (int x = 0; x < xmax; ++x)
      if (ww != 0.0) k[x] /= ww;
    int32_t* out = &c.kk[static_cast<size_t>(xx) * c.ksize];
    for (int x = 0; x < c.ksize; ++x) {
      const double v = k[x];
      out[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits)) : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.bounds[xx * 2] = xmin;
    c.bounds[xx * 2 + 1] = xmax;
  }
  return c;
}

inline uint8_t clip8(int32_t in) {
  if (in >= (1 << kPrecisionBits << 8)) return 255;
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

// Rows [row0, row0 + out.height) of `in` resampled horizontally into `out`.
void resample_horizontal(const Image8& in, int row0, const Coeffs& c, Image8& out) {
  const int ch = in.channels;
  for (int yy = 0; yy < out.height; ++yy) {
    const uint8_t* src = &in.data[static_cast<size_t>(yy + row0) * in.width * ch];
    uint8_t* dst = &out.data[static_cast<size_t>(yy) * out.width * ch];
    for (int xx = 0; xx < out.width; ++xx) {
      const int xmin = c.bounds[xx * 2], xmax = c.bounds[xx * 2 + 1];
      const int32_t* k = &c.kk[static_cast<size_t>(xx) * c.ksize];
      for (int b = 0; b < ch; ++b) {
        int32_t ss = 1 << (kPrecisionBits - 1);
        for (int x = 0; x < xmax; ++x) ss += static_cast<int32_t>(src[(x + xmin) * ch + b]) * k[x];
        dst[xx * ch + b] = clip8(ss);
      }
    }
  }
}

void resample_vertical(const Image8& in, const Coeffs& c, int row_shift, Image8& out) {
  const int ch = in.channels;
  const size_t stride = static_cast<size_t>(in.width) * ch;
  for (int yy = 0; yy < out.height; ++yy) {
    const int ymin = c.bounds[yy * 2] - row_shift, ymax = c.bounds[yy * 2 + 1];
    const int32_t* k = &c.kk[static_cast<size_t>(yy) * c.ksize];
    uint8_t* dst = &out.data[static_cast<size_t>(yy) * out.width * ch];
    for (int xx = 0; xx < out.width * ch; ++xx) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int y = 0; y < ymax; ++y) ss += static_cast<int32_t>(in.data[(y + ymin) * stride + xx]) * k[y];
      dst[xx] = clip8(ss);
    }
  }
}

Image8 resize_nearest(const Image8& in, int out_width, int out_height) {
  Image8 out{out_width, out_height, in.channels, {}};
  out.data.resize(static_cast<size_t>(out_width) * out_height * in.channels);
  const double sx = static_cast<double>(in.width) / out_width, sy = static_cast<double>(in.height) / out_height;
  for (int y = 0; y < out_height; ++y) {
    const int iy = std::min(static_cast<int>((y + 0.5) * sy), in.height - 1);
    for (int x = 0; x < out_width; ++x) {
      const int ix = std::min(static_cast<int>((x + 0.5) * sx), in.width - 1);
      std::copy_n(&in.data[(static_cast<size_t>(iy) * in.width + ix) * in.channels], in.channels,
                  &out.data[(static_cast<size_t>(y) * out_width + x) * in.channels]);
    }
  }
  return out;
}

}  // namespace

Image8 pil_resize(const uint8_t* data, int width, int height, int channels, int out_width, int out_height, Filter filter) {
  VG_CHECK(width > 0 && height > 0, "pil_resize: input size ", width, "x", height, " must be positive");
  VG_CHECK(out_width > 0 && out_height > 0, "pil_resize: output size ", out_width, "x", out_height, " must be positive");
  VG_CHECK(channels >= 1 && channels <= 4, "pil_resize: channels must be 1..4, got ", channels);
  VG_CHECK(static_cast<int>(filter) >= 0 && static_cast<int>(filter) <= 5, "pil_resize: unknown filter ", static_cast<int>(filter));
  // Pillow's own guard: the coefficient table must fit.
  VG_CHECK(out_width < (1 << 24) && out_height < (1 << 24), "pil_resize: output size ", out_width, "x", out_height, " is too large");

  Image8 in{width, height, channels, std::vector<uint8_t>(data, data + static_cast<size_t>(width) * height * channels)};
  if (filter == Filter::Nearest) return resize_nearest(in, out_width, out_height);

  const FilterDef def = filter_def(filter);
  const bool need_horizontal = out_width != width;
  const bool need_vertical = out_height != height;
  const Coeffs horiz = precompute_coeffs(width, 0.0f, static_cast<float>(width), out_width, def);
  const Coeffs vert = precompute_coeffs(height, 0.0f, static_cast<float>(height), out_height, def);

  // The horizontal pass covers only the source rows the vertical pass reads.
  const int ybox_first = vert.bounds[0];
  const int ybox_last = vert.bounds[out_height * 2 - 2] + vert.bounds[out_height * 2 - 1];

  Image8 current = std::move(in);
  int row_shift = 0;
  if (need_horizontal) {
    Image8 temp{out_width, ybox_last - ybox_first, channels, {}};
    temp.data.resize(static_cast<size_t>(temp.width) * temp.height * channels);
    resample_horizontal(current, ybox_first, horiz, temp);
    current = std::move(temp);
    row_shift = ybox_first;
  }
  if (need_vertical) {
    Image8 out{current.width, out_height, channels, {}};
    out.data.resize(static_cast<size_t>(out.width) * out_height * channels);
    resample_vertical(current, vert, row_shift, out);
    current = std::move(out);
  }
  return current;
}

}  // namespace vargpt::image
