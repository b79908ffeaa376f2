// runOp table, element-wise ops, positions and reductions (the list of ops with their inputs and attrs is at the top of ops.cc).
#include "../backend/op_checks.h"
#include "ops_bind.h"

namespace vargpt::binding {

void add_elementwise_binders(BinderTable& table) {
  const BinderTable ops = {
      {"activation",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         const Activation act = parse_activation(c.op, c.attrs.string("act"));
         Tensor out = be.empty(DType::F32, x.shape());
         return BoundOp{[&be, x, act, out] { be.activation(x, act, out); }, {out}};
       }},
      {"glu",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor g = in[0], u = in[1];
         const Activation act = parse_activation(c.op, c.attrs.string("act"));
         Tensor out = be.empty(DType::F32, g.shape());
         return BoundOp{[&be, g, u, act, out] { be.glu(g, u, act, out); }, {out}};
       }},
      {"binary",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor a = in[0], b = in[1];
         const std::string name = c.attrs.string("op");
         VG_CHECK(name == "add" || name == "mul", c.op, ": op \"", name, "\" must be add or mul");
         const BinaryOp op = name == "mul" ? BinaryOp::Mul : BinaryOp::Add;
         Tensor out = be.empty(DType::F32, broadcast_shape("binary", a, b));
         return BoundOp{[&be, op, a, b, out] { be.binary(op, a, b, out); }, {out}};
       }},
      {"add",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor a = in[0], b = in[1];
         Tensor out = be.empty(DType::F32, a.shape());
         return BoundOp{[&be, a, b, out] { be.add(a, b, out); }, {out}};
       }},
      {"axpby",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor a = in[0], b = in[1];
         const float alpha = static_cast<float>(c.attrs.number("alpha"));
         const float beta = static_cast<float>(c.attrs.number("beta"));
         Tensor out = be.empty(DType::F32, a.shape());
         return BoundOp{[&be, alpha, a, beta, b, out] { be.axpby(alpha, a, beta, b, out); }, {out}};
       }},
      {"rope",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 2, 2);
         Tensor out = copy_of(be, in[0]);
         Tensor table = in[1];
         const int head_dim = c.attrs.int32("headDim");
         const std::string pairing = c.attrs.string("pairing", std::string("rotate_half"));
         VG_CHECK(pairing == "rotate_half" || pairing == "interleaved", c.op, ": pairing \"", pairing,
                  "\" must be rotate_half or interleaved");
         const RopePairing p = pairing == "rotate_half" ? RopePairing::RotateHalf : RopePairing::Interleaved;
         return BoundOp{[&be, out, table, head_dim, p] { be.rope(out, table, head_dim, p); }, {out}};
       }},
      {"mean",
       [](Backend& be, const OpCall& c) {
         Inputs in(be, c, 1, 1);
         Tensor x = in[0];
         const int axis = c.attrs.int32("axis");
         const bool keepdim = c.attrs.boolean("keepdim", false);
         VG_CHECK(x.rank() >= 1 && axis >= -x.rank() && axis < x.rank(), c.op, ": axis ", axis,
                  " is out of range for x ", x.describe());
         const int ax = axis < 0 ? axis + x.rank() : axis;
         Shape s = x.shape();
         if (keepdim) s[ax] = 1;
         else s.erase(s.begin() + ax);
         Tensor out = be.empty(DType::F32, s);
         return BoundOp{[&be, x, axis, out] { be.mean(x, axis, out); }, {out}};
       }},
  };
  table.insert(ops.begin(), ops.end());
}

}  // namespace vargpt::binding
