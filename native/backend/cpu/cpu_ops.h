// The CPU operators, one free function per Backend method (semantics in backend.h). Each
// validates its arguments and throws vargpt::Error naming the op and the tensors at fault.
// CpuBackend (cpu_backend.cc) forwards to these; one kernel family per file.
#pragma once

#include <cstdint>

#include "../backend.h"

namespace vargpt::cpu {

// memory.cc
void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, float value);
void cast(const Tensor& src, const Tensor& dst);
void transpose(const Tensor& x, const Tensor& y);

// linear.cc
void linear(const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act, bool accumulate);
// gemm_q8.cc
void linear_q8(const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias, const Tensor& y,
               Activation act, bool accumulate);
void linear_q4(const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias, const Tensor& y,
               Activation act, bool accumulate);

// attention.cc
void attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out, const AttentionParams& params);

// norm.cc
void rms_norm(const Tensor& x, const Tensor& weight, float eps, const Tensor& y);
void layer_norm(const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, const Tensor& y);
void norm_modulate(const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                   const Tensor& scale, const Tensor* shift, const Tensor& y);
void gated_add(const Tensor& x, const Tensor& y, const Tensor& gate, Activation gate_act);
void group_norm(const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps, const Tensor& y);
void l2_normalize_heads(const Tensor& x, int head_dim, const Tensor* head_scale);

// elementwise.cc
void activation(const Tensor& x, Activation act, const Tensor& y);
void glu(const Tensor& gate, const Tensor& up, Activation act, const Tensor& y);
void add(const Tensor& a, const Tensor& b, const Tensor& y);
void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y);
void axpby(float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y);
void rope(const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing);

// conv.cc
void conv2d(const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& params, const Tensor& y);
void upsample_nearest2x(const Tensor& x, const Tensor& y);

// resize.cc
void resize_bicubic(const Tensor& x, const Tensor& y);
void resize_area(const Tensor& x, const Tensor& y);
void resize_bilinear(const Tensor& x, const Tensor& y);

// reduce.cc
void mean(const Tensor& x, int axis, const Tensor& y);

// codebook.cc
void embedding(const Tensor& ids, const Tensor& table, const Tensor& out);
void vq_nearest(const Tensor& z, const Tensor& codebook, const Tensor& idx);

// sampling.cc
void argmax(const Tensor& x, const Tensor& idx);
void sample(const Tensor& logits, const SamplingParams& params, const Tensor& idx, const Tensor* kept);
void randn(const Tensor& out, uint64_t seed, uint64_t stream);

// probes.cc: machine ceilings for the benchmarks (not Backend methods).
double peak_gflops(double seconds, bool tiles = false);    // all-thread register-only FMA (or AMX tile) rate
double read_bandwidth_gbs(int64_t bytes, int iterations);  // all-thread streaming read of a buffer

}  // namespace vargpt::cpu
