#include "mrope_positions.h"

#include <algorithm>
#include <limits>

#include "../../core/error.h"

namespace vargpt {

MropeIndex mrope_positions(const std::vector<int32_t>& ids, int32_t image_token, const std::vector<MergedGrid>& grids) {
  const int64_t T = static_cast<int64_t>(ids.size());
  MropeIndex out;
  out.positions.axes = 3;
  out.positions.ids.assign(static_cast<size_t>(3 * T), 0);
  int32_t* t_ax = out.positions.ids.data();
  int32_t* h_ax = t_ax + T;
  int32_t* w_ax = h_ax + T;
  int64_t next = 0;  // the position the next text token takes (largest so far + 1)
  size_t image = 0;
  auto fits = [](int64_t v) { return v <= std::numeric_limits<int32_t>::max(); };
  for (int64_t i = 0; i < T;) {
    if (ids[i] != image_token) {
      VG_CHECK(fits(next), "M-RoPE: position ", next, " does not fit 32 bits");
      t_ax[i] = h_ax[i] = w_ax[i] = static_cast<int32_t>(next);
      ++next;
      ++i;
      continue;
    }
    VG_CHECK(image < grids.size(), "the prompt holds more image tokens (id ", image_token, ") than the ", grids.size(),
             " image grid(s) given account for (at position ", i, ")");
    const MergedGrid& g = grids[image];
    VG_CHECK(g.t > 0 && g.h > 0 && g.w > 0, "image ", image, ": grid ", g.t, "x", g.h, "x", g.w, " is empty");
    VG_CHECK(i + g.tokens() <= T, "image ", image, " needs ", g.tokens(), " image tokens from position ", i,
             " but the prompt ends after ", T - i);
    for (int64_t k = 0; k < g.tokens(); ++k)
      VG_CHECK(ids[i + k] == image_token, "image ", image, " needs ", g.tokens(), " consecutive image tokens (id ",
               image_token, ") from position ", i, ", but position ", i + k, " holds id ", ids[i + k]);
    const int64_t s = next;
    VG_CHECK(fits(s + std::max({g.t, g.h, g.w})), "M-RoPE: image positions from ", s, " do not fit 32 bits");
    int64_t at = i;
    for (int tt = 0; tt < g.t; ++tt)
      for (int r = 0; r < g.h; ++r)
        for (int c = 0; c < g.w; ++c, ++at) {
          t_ax[at] = static_cast<int32_t>(s + tt);
          h_ax[at] = static_cast<int32_t>(s + r);
          w_ax[at] = static_cast<int32_t>(s + c);
        }
    next = s + std::max({g.t, g.h, g.w});
    i += g.tokens();
    ++image;
  }
  VG_CHECK(image == grids.size(), "the prompt holds image tokens for ", image, " image(s) but ", grids.size(),
           " image grid(s) were given");
  out.rope_delta = next - T;
  return out;
}

Positions mrope_decode_positions(int64_t start, int count, int64_t rope_delta) {
  Positions p;
  p.axes = 3;
  p.ids.resize(static_cast<size_t>(3) * count);
  for (int a = 0; a < 3; ++a)
    for (int k = 0; k < count; ++k) {
      const int64_t v = start + k + rope_delta;
      VG_CHECK(v >= 0 && v <= std::numeric_limits<int32_t>::max(), "M-RoPE: decode position ", v, " is out of range");
      p.ids[static_cast<size_t>(a) * count + k] = static_cast<int32_t>(v);
    }
  return p;
}

}  // namespace vargpt
