// runOp table, memory and layout: copy, fill, cast, transpose (the list of ops with their inputs and attrs is at the top of ops.cc).
#include <cstring>

#include "ops_bind.h"

namespace vargpt::binding {

void add_memory_binders(BinderTable& table) {
  const BinderTable ops = {
      {"copy",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor src = in[0];
         if (c.attrs.has("slice")) {
           const auto s = c.attrs.integers("slice");
           VG_CHECK(s.size() == 3, c.op, ": slice must be [axis, begin, end]");
           src = src.slice(static_cast<int>(s[0]), s[1], s[2]);
         }
         if (!c.attrs.has("outShape")) {
           Tensor out = be.empty(src.dtype(), src.shape());
           return BoundOp{[&be, src, out] { be.copy(src, out); }, {out}};
         }
         Tensor zeros = Tensor::empty_host(src.dtype(), to_shape(c.attrs.integers("outShape"), c.op, "outShape"));
         std::memset(zeros.raw(), 0, zeros.nbytes());
         Tensor out = be.upload(zeros);
         Tensor dst = out;
         if (c.attrs.has("outSlice")) {
           const auto s = c.attrs.integers("outSlice");
           VG_CHECK(s.size() == 3, c.op, ": outSlice must be [axis, begin, end]");
           dst = dst.slice(static_cast<int>(s[0]), s[1], s[2]);
         }
         return BoundOp{[&be, src, dst] { be.copy(src, dst); }, {out}};
       }},
      {"fill",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 0, 0);
         Tensor out = be.empty(DType::F32, to_shape(c.attrs.integers("shape"), c.op, "shape"));
         const float value = static_cast<float>(c.attrs.number("value"));
         return BoundOp{[&be, out, value] { be.fill(out, value); }, {out}};
       }},
      {"cast",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         const std::string name = c.attrs.string("dtype");
         DType dtype = DType::F32;
         if (name == "bf16") dtype = DType::BF16;
         else if (name == "f16") dtype = DType::F16;
         else VG_CHECK(name == "f32", c.op, ": dtype \"", name, "\" must be f32, bf16 or f16");
         Tensor out = be.empty(dtype, in[0].shape());
         Tensor x = in[0];
         return BoundOp{[&be, x, out] { be.cast(x, out); }, {out}};
       }},
      {"transpose",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         VG_CHECK(x.rank() == 2 || x.rank() == 3, c.op, ": x ", x.describe(), " must be [R, C] or [B, R, C]");
         Shape s = x.shape();
         std::swap(s[s.size() - 1], s[s.size() - 2]);
         Tensor out = be.empty(x.dtype(), s);
         return BoundOp{[&be, x, out] { be.transpose(x, out); }, {out}};
       }},
  };
  table.insert(ops.begin(), ops.end());
}

}  // namespace vargpt::binding
