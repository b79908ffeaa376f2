// runOp table, images: convolution and resizing (the list of ops with their inputs and attrs is at the top of ops.cc).
#include "ops_bind.h"

namespace vargpt::binding {

void add_image_binders(BinderTable& table) {
  const BinderTable ops = {
      {"conv2d",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 3);
         Tensor x = in[0], w = in[1];
         const Tensor* bp = in.optional(2);
         Tensor b = bp ? *bp : Tensor();
         const bool has_b = bp != nullptr;
         Conv2dParams p;
         p.stride = c.attrs.int32("stride", 1);
         if (c.attrs.has("padding")) {
           std::vector<int64_t> pad = c.attrs.integer_or_list("padding");
           VG_CHECK(pad.size() == 1 || pad.size() == 4, c.op, ": padding must be n or [top, bottom, left, right]");
           if (pad.size() == 1) pad = {pad[0], pad[0], pad[0], pad[0]};
           for (int64_t v : pad) VG_CHECK(v >= 0 && v < 65536, c.op, ": padding ", v, " is out of range");
           p.pad_top = static_cast<int>(pad[0]);
           p.pad_bottom = static_cast<int>(pad[1]);
           p.pad_left = static_cast<int>(pad[2]);
           p.pad_right = static_cast<int>(pad[3]);
         }
         VG_CHECK((x.rank() == 3 || x.rank() == 4) && w.rank() == 4, c.op, ": x ", x.describe(),
                  " must be [N?, C, H, W] and weight ", w.describe(), " [O, C, kh, kw]");
         VG_CHECK(p.stride >= 1, c.op, ": stride ", p.stride, " must be at least 1");
         const int64_t H = x.dim(-2) + p.pad_top + p.pad_bottom, W = x.dim(-1) + p.pad_left + p.pad_right;
         VG_CHECK(H >= w.dim(2) && W >= w.dim(3), c.op, ": kernel ", w.dim(2), "x", w.dim(3),
                  " is larger than the padded input of x ", x.describe());
         Shape s = x.shape();
         s[s.size() - 3] = w.dim(0);
         s[s.size() - 2] = (H - w.dim(2)) / p.stride + 1;
         s[s.size() - 1] = (W - w.dim(3)) / p.stride + 1;
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, w, b, has_b, p, out] { be.conv2d(x, w, has_b ? &b : nullptr, p, out); }, {out}};
       }},
      {"upsample_nearest2x",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         VG_CHECK(x.rank() == 3 || x.rank() == 4, c.op, ": x ", x.describe(), " must be [N?, C, H, W]");
         Shape s = x.shape();
         s[s.size() - 2] *= 2;
         s[s.size() - 1] *= 2;
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, out] { be.upsample_nearest2x(x, out); }, {out}};
       }},
      {"resize_bicubic",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0], out = be.empty(DType::F32, resized_shape(c, x));
         return BoundOp{[&be, x, out] { be.resize_bicubic(x, out); }, {out}};
       }},
      {"resize_area",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0], out = be.empty(DType::F32, resized_shape(c, x));
         return BoundOp{[&be, x, out] { be.resize_area(x, out); }, {out}};
       }},
      {"resize_bilinear",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0], out = be.empty(DType::F32, resized_shape(c, x));
         return BoundOp{[&be, x, out] { be.resize_bilinear(x, out); }, {out}};
       }},
  };
  table.insert(ops.begin(), ops.end());
}

}  // namespace vargpt::binding
