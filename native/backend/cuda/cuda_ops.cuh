// The CUDA operators, one free function per Backend method (semantics in backend.h, reference in
// cpu/). Each validates its arguments, queues its kernels on ctx.stream and returns without
// waiting, except where it must read a result to report an error (embedding's ids, sample's NaN
// check). CudaBackend (cuda_backend.cu) forwards to these; one kernel family per file.
#pragma once

#include <cstdint>

#include "../backend.h"
#include "cuda_common.cuh"

namespace vargpt::cuda {

// memory.cu
void copy(const Ctx& ctx, const Tensor& src, const Tensor& dst);
void fill(const Ctx& ctx, const Tensor& dst, float value);
void cast(const Ctx& ctx, const Tensor& src, const Tensor& dst);
void transpose(const Ctx& ctx, const Tensor& x, const Tensor& y);
// A contiguous device copy of `t` (t itself when already contiguous).
Tensor contiguous(const Ctx& ctx, const Tensor& t, const char* op);

// gemm.cu
void linear(const Ctx& ctx, const Tensor& x, const Tensor& w, const Tensor* bias, const Tensor& y, Activation act,
            bool accumulate);

// gemm_quant.cu
void linear_q8(const Ctx& ctx, const Tensor& x, const Tensor& w, const Tensor& qparams, const Tensor* bias,
               const Tensor& y, Activation act, bool accumulate);
void linear_q4(const Ctx& ctx, const Tensor& x, const Tensor& w, const Tensor& scales, const Tensor* bias,
               const Tensor& y, Activation act, bool accumulate);

// attention.cu
void attention(const Ctx& ctx, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out,
               const AttentionParams& params);

// norm.cu
void rms_norm(const Ctx& ctx, const Tensor& x, const Tensor& weight, float eps, const Tensor& y);
void layer_norm(const Ctx& ctx, const Tensor& x, const Tensor* weight, const Tensor* bias, float eps, const Tensor& y);
void norm_modulate(const Ctx& ctx, const Tensor& x, NormKind norm, const Tensor* weight, const Tensor* bias, float eps,
                   const Tensor& scale, const Tensor* shift, const Tensor& y);
void gated_add(const Ctx& ctx, const Tensor& x, const Tensor& y, const Tensor& gate, Activation gate_act);
void group_norm(const Ctx& ctx, const Tensor& x, int groups, const Tensor& weight, const Tensor& bias, float eps,
                const Tensor& y);
void l2_normalize_heads(const Ctx& ctx, const Tensor& x, int head_dim, const Tensor* head_scale);

// elementwise.cu
void activation(const Ctx& ctx, const Tensor& x, Activation act, const Tensor& y);
void glu(const Ctx& ctx, const Tensor& gate, const Tensor& up, Activation act, const Tensor& y);
void add(const Ctx& ctx, const Tensor& a, const Tensor& b, const Tensor& y);
void binary(const Ctx& ctx, BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& y);
void axpby(const Ctx& ctx, float alpha, const Tensor& a, float beta, const Tensor& b, const Tensor& y);

// rope.cu
void rope(const Ctx& ctx, const Tensor& x, const Tensor& table, int head_dim, RopePairing pairing);

// conv.cu
void conv2d(const Ctx& ctx, const Tensor& x, const Tensor& weight, const Tensor* bias, const Conv2dParams& params,
            const Tensor& y);
void upsample_nearest2x(const Ctx& ctx, const Tensor& x, const Tensor& y);

// resize.cu
void resize_bicubic(const Ctx& ctx, const Tensor& x, const Tensor& y);
void resize_area(const Ctx& ctx, const Tensor& x, const Tensor& y);
void resize_bilinear(const Ctx& ctx, const Tensor& x, const Tensor& y);

// reduce.cu
void mean(const Ctx& ctx, const Tensor& x, int axis, const Tensor& y);

// codebook.cu
void embedding(const Ctx& ctx, const Tensor& ids, const Tensor& table, const Tensor& out);
void vq_nearest(const Ctx& ctx, const Tensor& z, const Tensor& codebook, const Tensor& idx);

// sampling.cu
void argmax(const Ctx& ctx, const Tensor& x, const Tensor& idx);
void sample(const Ctx& ctx, const Tensor& logits, const SamplingParams& params, const Tensor& idx, const Tensor* kept);
void randn(const Ctx& ctx, const Tensor& out, uint64_t seed, uint64_t stream);

// probes.cu: device ceilings for the benchmarks (not Backend methods). Each runs for about
// `seconds` (or `iterations` passes) and synchronises.
double peak_tflops_mma_bf16(const Ctx& ctx, double seconds);  // register-only mma.sync loop
double peak_tflops_fma_f32(const Ctx& ctx, double seconds);   // register-only FFMA loop
double read_bandwidth_gbs(const Ctx& ctx, int64_t bytes, int iterations);

}  // namespace vargpt::cuda
