// Checked access to a checkpoint's tensors for the model loaders. Every getter names the tensor,
// the expected and the actual shape when something is missing or mis-shaped, and hands back a
// tensor the backend can compute with (backend.upload()).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "../../backend/backend.h"
#include "../../core/safetensors.h"

namespace vargpt {

// A small dense layer: y = x · w^T + b (b may be undefined).
struct LinearWeights {
  Tensor w;  // [out, in], stored dtype (f32/bf16/f16)
  Tensor b;  // [out] f32, or undefined
  int64_t out() const { return w.dim(0); }
  int64_t in() const { return w.dim(1); }
};

struct ConvWeights {
  Tensor w;  // [O, C, kh, kw] f32
  Tensor b;  // [O] f32, or undefined
};

struct NormWeights {
  Tensor w, b;  // [C] f32 (b undefined for RMSNorm)
};

// A Linear weight [N, K] as a layer reads it: in its stored float dtype; int8 (w i8 [N, K] with
// qparams [2, N] f32: scales and row sums); or 4-bit (w u8 [N, Kp / 2] with qparams [N, Kp / 32]
// f16 group scales), when the loader quantizes linear layers (core/quantize.h).
struct MatrixWeight {
  Tensor w;
  Tensor qparams;  // undefined for stored weights
  bool int8() const { return qparams.defined() && w.dtype() == DType::I8; }
  bool q4() const { return qparams.defined() && w.dtype() == DType::U8; }
};

// A Linear layer (weight [out, in] at the loader's linear precision, bias f32 [out] or undefined).
struct MatrixLinear {
  MatrixWeight w;
  Tensor b;
};

// y = act(x · w^T + bias) (or y += that) with whichever kernel the weight's precision takes.
void linear(Backend& b, const Tensor& x, const MatrixWeight& w, const Tensor* bias, const Tensor& y,
            Activation act = Activation::None, bool accumulate = false);
void linear(Backend& b, const Tensor& x, const MatrixLinear& l, const Tensor& y, Activation act = Activation::None,
            bool accumulate = false);

// How the loader holds the weights read through quantizable() (loadModel's weights option): as
// stored; converted to f32 or bf16; or quantized to int8 or q4 while loading.
enum class LinearPrecision { Stored, F32, BF16, Int8, Q4 };
const char* linear_precision_name(LinearPrecision precision);  // "stored", "f32", "bf16", "int8", "q4"
// The precision a layer runs in: "int8" or "q4" when quantized, else its weight's float dtype (as
// stored or as converted on load).
const char* matrix_weight_precision(const MatrixWeight& w);

class WeightLoader {
 public:
  // `progress(loaded_bytes, total_bytes)` is called after each tensor; `cancelled()` is polled
  // before each tensor and throws vargpt::Cancelled when it returns true.
  using Progress = std::function<void(uint64_t loaded, uint64_t total)>;
  using CancelCheck = std::function<bool()>;

  WeightLoader(std::shared_ptr<SafetensorsCheckpoint> checkpoint, Backend& backend, Progress progress,
               CancelCheck cancelled);

  const SafetensorsCheckpoint& checkpoint() const { return *checkpoint_; }
  Backend& backend() const { return backend_; }
  bool has(const std::string& name) const { return checkpoint_->has(name); }
  // Bytes of every tensor in the checkpoint (what progress counts up to).
  uint64_t total_bytes() const { return total_; }
  // Replaces the progress callback (a caller loading several checkpoints as one count).
  void set_progress(Progress progress) { progress_ = std::move(progress); }
  // The stored shape; throws "checkpoint has no tensor <name> (<what it is for>)".
  Shape shape(const std::string& name) const;
  // Size `axis` of a tensor that must have `rank` dimensions: a model size read from its weights.
  int dim(const std::string& name, int axis, int rank) const;
  // Number of consecutive indices i = 0, 1, ... for which `prefix + i + "."` starts some tensor name.
  int count_indexed(const std::string& prefix) const;

  // Weight read in its stored float dtype (for linear() and embedding()).
  Tensor matrix(const std::string& name, const Shape& expected);
  // A Linear weight [N, K] at the loader's linear precision: stored, or quantized tensor by tensor
  // as it loads (the float copy is never held beside the rest). A checkpoint written by `vargpt
  // quantize` holds it quantized already (i8 with `<name>.q8_scale`, or u8 nibbles with
  // `<name>.q4_scale`): read as it is, checked, never widened.
  MatrixWeight quantizable(const std::string& name, const Shape& expected);
  MatrixLinear quantizable_linear(const std::string& prefix, int64_t out, int64_t in, bool bias);
  void set_linear_precision(LinearPrecision precision) { linear_precision_ = precision; }
  // false: weights the CPU backend would read in place from the mapped file (LoadOptions::map_weights)
  // are copied into weight buffers instead, and the file's pages released.
  void set_map_weights(bool map) { map_weights_ = map; }
  LinearPrecision linear_precision() const { return linear_precision_; }
  // An f32 copy (norms, biases, conv kernels, embeddings used in adds): backends take these in f32.
  Tensor f32(const std::string& name, const Shape& expected);
  // An f32 host copy, for values the loader computes with on the host.
  Tensor host_f32(const std::string& name, const Shape& expected);
  // Integer buffer (I64 or I32) as host int64 values.
  std::vector<int64_t> host_ints(const std::string& name, const Shape& expected);

  LinearWeights linear(const std::string& prefix, int64_t out, int64_t in, bool bias);
  // y = x W^T + b for a Linear layer the loader applies once and drops (VAR's AdaLN projections of
  // its fixed condition), at the precision quantizable_linear() gives: the weight is read in place
  // where the stored form serves, a converted or quantized copy gets a buffer of its own, freed on
  // return, never a place in the model's weight slabs, and the mapped pages are given back after.
  Tensor apply_once(const std::string& prefix, const Tensor& x, int64_t out, int64_t in);
  ConvWeights conv(const std::string& prefix, int64_t out, int64_t in, int64_t k, bool bias);
  NormWeights norm(const std::string& prefix, int64_t channels, bool bias);

  // Marks the bytes of tensors the runtime does not use (so progress reaches the total) and reports.
  void finish();

 private:
  const TensorInfo& checked(const std::string& name, const Shape& expected);
  MatrixWeight prequantized(const std::string& name, const Shape& expected);
  void account(const TensorInfo& info);
  // A host buffer for a weight the loader computes (a quantized matrix or its scales): large ones
  // are cut from shared slabs, so that matrices smaller than a huge page still sit on huge pages
  // (allocate_large, core/aligned.h) and consecutive layers' weights lie next to each other.
  Tensor weight_buffer(DType dtype, const Shape& shape);
  // `stored` (the checkpoint's mapped tensor `name`) as the model will hold it: in place, or with
  // map_weights off on the CPU a copy in a weight buffer, the file's pages released.
  Tensor resident(const std::string& name, const Tensor& stored);
  // Gives the pages of tensor `name` in the mapped checkpoint back (its bytes were converted into
  // memory of the loader's own); finish() does it again for all of them.
  void release(const std::string& name);

  std::shared_ptr<SafetensorsCheckpoint> checkpoint_;
  Backend& backend_;
  Progress progress_;
  CancelCheck cancelled_;
  LinearPrecision linear_precision_ = LinearPrecision::Stored;
  bool map_weights_ = true;
  bool one_use_ = false;  // inside apply_once(): copies get buffers of their own
  uint64_t total_ = 0, loaded_ = 0;
  std::shared_ptr<Storage> slab_;  // the slab weight_buffer() cuts from; each tensor shares its ownership
  size_t slab_used_ = 0;
  std::vector<std::string> released_;
};

}  // namespace vargpt
