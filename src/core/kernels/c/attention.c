// Causal grouped-query self-attention, forward and backward, in one kernel each way (see matmul.c
// for the module's conventions). Against the composed tfjs ops it saves:
// - half the products: only the blocks on or below the diagonal of each [T, T] score matrix are
//   computed (row blocks of RB rows, each to the end of its diagonal block);
// - the head transposes: q, k, v and y stay in the [B*T, heads*hd] layout of the projections and
//   are read through strides;
// - the mask, the softmax and its gradient as separate passes, and the key/value repeat of GQA
//   (query head h reads key/value head h / (nh / nkv); its gradients are summed in place).
// Layouts: q, y, dq, dy [B*T, nh*hd]; k, v, dk, dv [B*T, nkv*hd]; p [B*nh, T, T], the attention
// probabilities, zero above the diagonal (saved by the forward pass for the backward).
#include "gemm.h"
#include "simd.h"

#define RB 32 // rows per causal block: smaller skips more of the upper triangle, larger runs the matmul better

// S[i, j] = sum_d A[i, d] B[j, d] for j up to the end of i's diagonal block (S is [t, t]).
static void causal_scores(f32 *s, const f32 *a, int lda, const f32 *b, int ldb, f32 *pack, int t, int hd) {
  for (int i0 = 0; i0 < t; i0 += RB) {
    int rows = t - i0 < RB ? t - i0 : RB;
    steel_gemm(s + i0 * t, a + i0 * lda, b, pack, rows, i0 + rows, hd, lda, 1, 1, ldb, t, 0);
  }
}

// out[i, :] = sum_{j <= i} S[i, j] B[j, :]; S is zero above the diagonal, so each row block only
// reads to the end of its diagonal block.
static void causal_apply(f32 *out, int ldo, const f32 *s, const f32 *b, int ldb, f32 *pack, int t, int hd) {
  for (int i0 = 0; i0 < t; i0 += RB) {
    int rows = t - i0 < RB ? t - i0 : RB;
    steel_gemm(out + i0 * ldo, s + i0 * t, b, pack, rows, hd, i0 + rows, t, 1, ldb, 1, ldo, 0);
  }
}

// out[j, :] (+)= sum_{i >= j} S[i, j] B[i, :] (S transposed): each row block of out starts its
// depth at its own first row.
static void causal_apply_t(f32 *out, int ldo, const f32 *s, const f32 *b, int ldb, f32 *pack, int t, int hd, int accumulate) {
  for (int j0 = 0; j0 < t; j0 += RB) {
    int rows = t - j0 < RB ? t - j0 : RB;
    steel_gemm(out + j0 * ldo, s + j0 * t + j0, b + j0 * ldb, pack, rows, hd, t - j0, 1, t, ldb, 1, ldo, accumulate);
  }
}

// row[0..len) = softmax(scale * row[0..len)); row[len..t) = 0.
static void softmax_row(f32 *row, int len, int t, f32 scale) {
  v4 mx = wasm_f32x4_splat(-3.4e38f);
  int j = 0;
  for (; j + 4 <= len; j += 4) mx = wasm_f32x4_pmax(mx, wasm_v128_load(row + j));
  f32 m = hmax(mx);
  for (; j < len; j++) m = row[j] > m ? row[j] : m;
  v4 vs = wasm_f32x4_splat(scale), vm = wasm_f32x4_splat(m), sum = wasm_f32x4_splat(0);
  f32 tail = 0;
  for (j = 0; j + 4 <= len; j += 4) {
    v4 e = v_exp(wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(row + j), vm), vs));
    wasm_v128_store(row + j, e);
    sum = wasm_f32x4_add(sum, e);
  }
  for (; j < len; j++) {
    row[j] = s_exp((row[j] - m) * scale);
    tail += row[j];
  }
  f32 inv = 1.0f / (hsum(sum) + tail);
  v4 vinv = wasm_f32x4_splat(inv);
  for (j = 0; j + 4 <= len; j += 4) wasm_v128_store(row + j, wasm_f32x4_mul(wasm_v128_load(row + j), vinv));
  for (; j < len; j++) row[j] *= inv;
  for (; j < t; j++) row[j] = 0;
}

// Softmax backward on one row, in place on dP: dS = scale * P * (dP - sum(P * dP)); zero past len.
static void softmax_grad_row(f32 *dp, const f32 *p, int len, int t, f32 scale) {
  v4 acc = wasm_f32x4_splat(0);
  int j = 0;
  for (; j + 4 <= len; j += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(p + j), wasm_v128_load(dp + j)));
  f32 dot = hsum(acc);
  for (; j < len; j++) dot += p[j] * dp[j];
  v4 vdot = wasm_f32x4_splat(dot), vs = wasm_f32x4_splat(scale);
  for (j = 0; j + 4 <= len; j += 4) {
    v4 g = wasm_f32x4_mul(wasm_v128_load(p + j), wasm_f32x4_sub(wasm_v128_load(dp + j), vdot));
    wasm_v128_store(dp + j, wasm_f32x4_mul(g, vs));
  }
  for (; j < len; j++) dp[j] = p[j] * (dp[j] - dot) * scale;
  for (; j < t; j++) dp[j] = 0;
}

// The softmax scale 1/sqrt(hd), computed here so that every argument is an integer (threads.ts
// hands calls to its helper threads as Int32 slots).
static f32 score_scale(int hd) { return 1.0f / __builtin_sqrtf((f32)hd); }

// y = softmax(q k^T / sqrt(hd) + causal mask) v per (batch, head); p gets the probabilities.
__attribute__((export_name("steel_attn_fwd")))
void steel_attn_fwd(const f32 *q, const f32 *k, const f32 *v, f32 *y, f32 *p, f32 *pack, int batch, int t, int nh, int nkv, int hd) {
  int ldq = nh * hd, ldkv = nkv * hd, rep = nh / nkv;
  f32 scale = score_scale(hd);
  for (int b = 0; b < batch; b++) {
    for (int h = 0; h < nh; h++) {
      f32 *P = p + (b * nh + h) * t * t;
      int qo = b * t * ldq + h * hd, kvo = b * t * ldkv + (h / rep) * hd;
      causal_scores(P, q + qo, ldq, k + kvo, ldkv, pack, t, hd);
      for (int i = 0; i < t; i++) softmax_row(P + i * t, i + 1, t, scale);
      causal_apply(y + qo, ldq, P, v + kvo, ldkv, pack, t, hd);
    }
  }
}

// Gradients of steel_attn_fwd: dq, dk, dv from dy, with p from the forward pass and ds a [t, t]
// scratch. dk and dv sum over the nh / nkv query heads that share a key/value head.
__attribute__((export_name("steel_attn_bwd")))
void steel_attn_bwd(const f32 *q, const f32 *k, const f32 *v, const f32 *p, const f32 *dy, f32 *dq, f32 *dk, f32 *dv, f32 *ds, f32 *pack,
                    int batch, int t, int nh, int nkv, int hd) {
  int ldq = nh * hd, ldkv = nkv * hd, rep = nh / nkv;
  f32 scale = score_scale(hd);
  for (int b = 0; b < batch; b++) {
    for (int h = 0; h < nh; h++) {
      const f32 *P = p + (b * nh + h) * t * t;
      int qo = b * t * ldq + h * hd, kvo = b * t * ldkv + (h / rep) * hd, shared = h % rep != 0;
      causal_apply_t(dv + kvo, ldkv, P, dy + qo, ldq, pack, t, hd, shared); // dV = P^T dY
      causal_scores(ds, dy + qo, ldq, v + kvo, ldkv, pack, t, hd);           // dP = dY V^T
      for (int i = 0; i < t; i++) softmax_grad_row(ds + i * t, P + i * t, i + 1, t, scale);
      causal_apply(dq + qo, ldq, ds, k + kvo, ldkv, pack, t, hd);            // dQ = dS K
      causal_apply_t(dk + kvo, ldkv, ds, q + qo, ldq, pack, t, hd, shared);  // dK = dS^T Q
    }
  }
}
