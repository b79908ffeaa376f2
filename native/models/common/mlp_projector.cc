#include "mlp_projector.h"

namespace vargpt {

MlpProjector::MlpProjector(int in, int mid, int out, Activation act, WeightLoader& w, const std::string& first,
                           const std::string& second)
    : backend_(w.backend()), act_(act), first_(w.linear(first, mid, in, true)), second_(w.linear(second, out, mid, true)) {}

void MlpProjector::run(const Tensor& x, const Tensor& y) const {
  Shape mid_shape = x.shape();
  mid_shape.back() = first_.out();
  Tensor mid = backend_.empty(DType::F32, mid_shape);
  backend_.linear(x, first_.w, &first_.b, mid, act_);
  backend_.linear(mid, second_.w, &second_.b, y);
}

}  // namespace vargpt
