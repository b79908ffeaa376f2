// Token and codebook lookups: embedding rows by id, and the VQ nearest-codeword search.
#include <limits>
#include <vector>

#include "cpu_common.h"
#include "cpu_ops.h"
#include "gemm.h"

namespace vargpt::cpu {

void embedding(const Tensor& ids, const Tensor& table, const Tensor& out) {
  const char* op = "embedding";
  check_dtype(op, "ids", ids, DType::I32);
  check_float(op, "table", table);
  check_dtype(op, "out", out, DType::F32);
  const EmbeddingDims dims = check_embedding_args(op, ids, table, out);
  const int64_t N = dims.rows, V = dims.vocab, C = dims.channels;
  const int32_t* id = ids.data<int32_t>();
  const int64_t id_stride = ids.stride(0);
  // Every id is checked before anything is written, so a bad id leaves `out` untouched.
  for (int64_t n = 0; n < N; ++n) {
    const int64_t v = id[n * id_stride];
    VG_CHECK(v >= 0 && v < V, op, ": ids[", n, "] = ", v, " is outside the table ", table.describe(), " (valid 0..",
             V - 1, ")");
  }
  const size_t item = dtype_size(table.dtype());
  const int64_t table_stride = V > 1 ? table.stride(0) : C;
  const auto* base = static_cast<const char*>(table.raw());
  const Rows outr(out);
  parallel_for(N, grain_for(C), [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n)
      convert_to_f32(table.dtype(), base + static_cast<size_t>(id[n * id_stride] * table_stride) * item,
                     outr.row<float>(n), static_cast<size_t>(C));
  });
}

void vq_nearest(const Tensor& z, const Tensor& codebook, const Tensor& idx) {
  const char* op = "vq_nearest";
  check_dtype(op, "z", z, DType::F32);
  check_float(op, "codebook", codebook);
  check_dtype(op, "idx", idx, DType::I32);
  const VqDims dims = check_vq_nearest_args(op, z, codebook, idx);
  const int64_t N = dims.rows, C = dims.channels, V = dims.codes;
  if (N == 0) return;

  // Squared norms of the codewords, in f32 like the reference's torch.sum(e ** 2, dim=1).
  std::vector<float> e_norm(static_cast<size_t>(V));
  parallel_for(V, grain_for(C), [&](int64_t v0, int64_t v1) {
    std::vector<float> row(static_cast<size_t>(C));
    for (int64_t v = v0; v < v1; ++v) {
      convert_to_f32(codebook.dtype(), static_cast<const char*>(codebook.raw()) + v * C * dtype_size(codebook.dtype()),
                     row.data(), static_cast<size_t>(C));
      float s = 0.0f;
      for (int64_t c = 0; c < C; ++c) s += row[c] * row[c];
      e_norm[v] = s;
    }
  });
  const Rows zr(z);
  int32_t* out = idx.data<int32_t>();
  // d = (||z||^2 + ||e||^2) - 2 z.e, the reference's formula, evaluated for blocks of rows with
  // the GEMM computing z.e.
  constexpr int64_t kRowBlock = 256;
  std::vector<float> dots(static_cast<size_t>(std::min(N, kRowBlock) * V));
  std::vector<float> zd(static_cast<size_t>(std::min(N, kRowBlock) * C));
  for (int64_t n0 = 0; n0 < N; n0 += kRowBlock) {
    const int64_t rows = std::min(kRowBlock, N - n0);
    for (int64_t i = 0; i < rows; ++i) std::copy(zr.row<float>(n0 + i), zr.row<float>(n0 + i) + C, zd.begin() + i * C);
    gemm(rows, V, C, zd.data(), C, GemmB{codebook.raw(), codebook.dtype(), C, false}, dots.data(), V, GemmEpilogue{});
    parallel_for(rows, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const float* zi = zd.data() + i * C;
        float z_norm = 0.0f;
        for (int64_t c = 0; c < C; ++c) z_norm += zi[c] * zi[c];
        const float* di = dots.data() + i * V;
        float best = std::numeric_limits<float>::infinity();
        int32_t best_v = 0;
        for (int64_t v = 0; v < V; ++v) {
          const float d = (z_norm + e_norm[v]) - 2.0f * di[v];
          if (d < best) {  // strict: the first of equal distances wins, as torch.argmin
            best = d;
            best_v = static_cast<int32_t>(v);
          }
        }
        out[n0 + i] = best_v;
      }
    });
  }
}

}  // namespace vargpt::cpu
