// Fused element-wise kernels of the training step (see matmul.c for the module's conventions:
// pointers are offsets into tfjs's heap, no libc, no stack). Each replaces a chain of tfjs ops
// that would otherwise make one pass over memory, and one allocation, per op.
#include "simd.h"

// Softmax cross-entropy, forward: probs = softmax(logits) row by row; stats[2i] = row max,
// stats[2i+1] = sum of exp(x - max) (the caller takes the log: no libm here). v % 4 == 0.
__attribute__((export_name("steel_xent_fwd")))
void steel_xent_fwd(const f32 *logits, f32 *probs, f32 *stats, int n, int v) {
  for (int i = 0; i < n; i++) {
    const f32 *x = logits + i * v;
    f32 *p = probs + i * v;
    v4 mx = wasm_f32x4_splat(-3.4e38f);
    for (int j = 0; j < v; j += 4) mx = wasm_f32x4_pmax(mx, wasm_v128_load(x + j));
    f32 m = hmax(mx);
    v4 vm = wasm_f32x4_splat(m), sum = wasm_f32x4_splat(0);
    for (int j = 0; j < v; j += 4) {
      v4 e = v_exp(wasm_f32x4_sub(wasm_v128_load(x + j), vm));
      wasm_v128_store(p + j, e);
      sum = wasm_f32x4_add(sum, e);
    }
    f32 s = hsum(sum);
    v4 inv = wasm_f32x4_splat(1.0f / s);
    for (int j = 0; j < v; j += 4) wasm_v128_store(p + j, wasm_f32x4_mul(wasm_v128_load(p + j), inv));
    stats[2 * i] = m;
    stats[2 * i + 1] = s;
  }
}

// Backward: dlogits = dy[i] * (probs - onehot(target)); a row whose target is outside [0, v)
// has loss 0 whatever the logits (its one-hot is all zeros), so its gradient is 0.
__attribute__((export_name("steel_xent_bwd")))
void steel_xent_bwd(const f32 *probs, const int *targets, const f32 *dy, f32 *dx, int n, int v) {
  for (int i = 0; i < n; i++) {
    const f32 *p = probs + i * v;
    f32 *o = dx + i * v;
    int valid = targets[i] >= 0 && targets[i] < v;
    v4 g = wasm_f32x4_splat(valid ? dy[i] : 0.0f);
    for (int j = 0; j < v; j += 4) wasm_v128_store(o + j, wasm_f32x4_mul(wasm_v128_load(p + j), g));
    int t = targets[i];
    if (valid) o[t] = dy[i] * (p[t] - 1.0f);
  }
}

// RMSNorm forward: r = 1/sqrt(mean(x^2) + eps), y = (x * r) * w; rinv[i] = r. d % 4 == 0.
__attribute__((export_name("steel_rmsnorm_fwd")))
void steel_rmsnorm_fwd(const f32 *x, const f32 *w, f32 *y, f32 *rinv, int n, int d, f32 eps) {
  for (int i = 0; i < n; i++) {
    const f32 *xr = x + i * d;
    f32 *yr = y + i * d;
    v4 acc = wasm_f32x4_splat(0);
    for (int j = 0; j < d; j += 4) {
      v4 a = wasm_v128_load(xr + j);
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(a, a));
    }
    f32 r = 1.0f / __builtin_sqrtf(hsum(acc) / (f32)d + eps);
    v4 vr = wasm_f32x4_splat(r);
    for (int j = 0; j < d; j += 4) {
      wasm_v128_store(yr + j, wasm_f32x4_mul(wasm_f32x4_mul(wasm_v128_load(xr + j), vr), wasm_v128_load(w + j)));
    }
    rinv[i] = r;
  }
}

// RMSNorm backward, g = dy * w: dx = r*g - x * (r^3 * sum(g*x) / d); dw = sum over rows of dy*x*r.
__attribute__((export_name("steel_rmsnorm_bwd")))
void steel_rmsnorm_bwd(const f32 *x, const f32 *w, const f32 *rinv, const f32 *dy, f32 *dx, f32 *dw, int n, int d) {
  for (int j = 0; j < d; j += 4) wasm_v128_store(dw + j, wasm_f32x4_splat(0));
  for (int i = 0; i < n; i++) {
    const f32 *xr = x + i * d, *gr = dy + i * d;
    f32 *o = dx + i * d;
    f32 r = rinv[i];
    v4 vr = wasm_f32x4_splat(r), acc = wasm_f32x4_splat(0);
    for (int j = 0; j < d; j += 4) {
      v4 a = wasm_v128_load(xr + j), g = wasm_v128_load(gr + j);
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_mul(g, wasm_v128_load(w + j)), a));
      wasm_v128_store(dw + j, wasm_f32x4_add(wasm_v128_load(dw + j), wasm_f32x4_mul(wasm_f32x4_mul(g, a), vr)));
    }
    v4 c = wasm_f32x4_splat(r * r * r * hsum(acc) / (f32)d);
    for (int j = 0; j < d; j += 4) {
      v4 g = wasm_f32x4_mul(wasm_v128_load(gr + j), wasm_v128_load(w + j));
      wasm_v128_store(o + j, wasm_f32x4_sub(wasm_f32x4_mul(g, vr), wasm_f32x4_mul(wasm_v128_load(xr + j), c)));
    }
  }
}

static inline v4 v_sigmoid(v4 g) {
  v4 one = wasm_f32x4_splat(1.0f);
  return wasm_f32x4_div(one, wasm_f32x4_add(one, v_exp(wasm_f32x4_neg(g))));
}

// SwiGLU forward: out = (g * sigmoid(g)) * u. size % 4 == 0.
__attribute__((export_name("steel_swiglu_fwd")))
void steel_swiglu_fwd(const f32 *g, const f32 *u, f32 *out, int size) {
  for (int i = 0; i < size; i += 4) {
    v4 a = wasm_v128_load(g + i);
    wasm_v128_store(out + i, wasm_f32x4_mul(wasm_f32x4_mul(a, v_sigmoid(a)), wasm_v128_load(u + i)));
  }
}

// SwiGLU backward: du = dy * silu(g); dg = dy * u * s * (1 + g * (1 - s)), s = sigmoid(g).
__attribute__((export_name("steel_swiglu_bwd")))
void steel_swiglu_bwd(const f32 *g, const f32 *u, const f32 *dy, f32 *dg, f32 *du, int size) {
  v4 one = wasm_f32x4_splat(1.0f);
  for (int i = 0; i < size; i += 4) {
    v4 a = wasm_v128_load(g + i), s = v_sigmoid(a), d = wasm_v128_load(dy + i);
    wasm_v128_store(du + i, wasm_f32x4_mul(d, wasm_f32x4_mul(a, s)));
    v4 ds = wasm_f32x4_mul(s, wasm_f32x4_add(one, wasm_f32x4_mul(a, wasm_f32x4_sub(one, s))));
    wasm_v128_store(dg + i, wasm_f32x4_mul(wasm_f32x4_mul(d, wasm_v128_load(u + i)), ds));
  }
}

// Rotary positions on x [rows, heads * hd], row r at position r % t (so [bh, t, hd] with heads 1,
// or the [B*T, n_head*hd] output of a projection), with tables [t, hd], h = hd/2:
// forward  y[j] = x[j]*cos[j] - x[j+h]*sin[j],  y[j+h] = x[j+h]*cos[j+h] + x[j]*sin[j+h];
// backward dx[j] = dy[j]*cos[j] + dy[j+h]*sin[j+h],  dx[j+h] = dy[j+h]*cos[j+h] - dy[j]*sin[j].
// hd % 8 == 0.
__attribute__((export_name("steel_rotary")))
void steel_rotary(const f32 *x, const f32 *cosT, const f32 *sinT, f32 *y, int rows, int t, int hd, int heads, int backward) {
  int h = hd / 2;
  for (int r = 0; r < rows; r++) {
    int p = r % t; // position of the row in its sequence
    const f32 *c = cosT + p * hd, *s = sinT + p * hd;
    for (int head = 0; head < heads; head++) {
      const f32 *xr = x + (r * heads + head) * hd;
      f32 *yr = y + (r * heads + head) * hd;
      for (int j = 0; j < h; j += 4) {
        v4 x1 = wasm_v128_load(xr + j), x2 = wasm_v128_load(xr + j + h);
        v4 s1 = wasm_v128_load(s + (backward ? j + h : j)), s2 = wasm_v128_load(s + (backward ? j : j + h));
        v4 y1 = wasm_f32x4_mul(x1, wasm_v128_load(c + j)), y2 = wasm_f32x4_mul(x2, wasm_v128_load(c + j + h));
        if (backward) {
          y1 = wasm_f32x4_add(y1, wasm_f32x4_mul(x2, s1));
          y2 = wasm_f32x4_sub(y2, wasm_f32x4_mul(x1, s2));
        } else {
          y1 = wasm_f32x4_sub(y1, wasm_f32x4_mul(x2, s1));
          y2 = wasm_f32x4_add(y2, wasm_f32x4_mul(x1, s2));
        }
        wasm_v128_store(yr + j, y1);
        wasm_v128_store(yr + j + h, y2);
      }
    }
  }
}

// One AdamW update in the exact float32 operation order of src/core/train/adamw.ts (each op
// rounded on its own, as a chain of tfjs ops rounds; wasm has no fused multiply-add to blur it):
//   g = g0 * clip (if clipping); decayed = p * decay (if decaying);
//   m' = m*b1 + g*omb1; v' = v*b2 + (g*g)*omb2; denom = sqrt(v')/bc2 + eps;
//   p' = decayed - (m'/denom) * step.   size % 4 == 0.
__attribute__((export_name("steel_adamw")))
void steel_adamw(const f32 *p, const f32 *g0, const f32 *m, const f32 *v, f32 *po, f32 *mo, f32 *vo, int size,
                 int clip, f32 clipCoef, int decays, f32 decay, f32 b1, f32 omb1, f32 b2, f32 omb2, f32 bc2, f32 eps, f32 step) {
  v4 vc = wasm_f32x4_splat(clipCoef), vd = wasm_f32x4_splat(decay), vb1 = wasm_f32x4_splat(b1), vo1 = wasm_f32x4_splat(omb1);
  v4 vb2 = wasm_f32x4_splat(b2), vo2 = wasm_f32x4_splat(omb2), vbc = wasm_f32x4_splat(bc2), ve = wasm_f32x4_splat(eps);
  v4 vs = wasm_f32x4_splat(step);
  for (int i = 0; i < size; i += 4) {
    v4 g = wasm_v128_load(g0 + i);
    if (clip) g = wasm_f32x4_mul(g, vc);
    v4 w = wasm_v128_load(p + i);
    if (decays) w = wasm_f32x4_mul(w, vd);
    v4 m1 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(m + i), vb1), wasm_f32x4_mul(g, vo1));
    v4 v1 = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(v + i), vb2), wasm_f32x4_mul(wasm_f32x4_mul(g, g), vo2));
    v4 denom = wasm_f32x4_add(wasm_f32x4_div(wasm_f32x4_sqrt(v1), vbc), ve);
    wasm_v128_store(mo + i, m1);
    wasm_v128_store(vo + i, v1);
    wasm_v128_store(po + i, wasm_f32x4_sub(w, wasm_f32x4_mul(wasm_f32x4_div(m1, denom), vs)));
  }
}

// Sum of squares of x[0..n) for the global gradient norm: each square rounded to float32 (as
// tfjs's Square rounds it), the sum kept in float64, so a 262k-element gradient does not drift.
__attribute__((export_name("steel_sumsq")))
double steel_sumsq(const f32 *x, int n) {
  v128_t acc0 = wasm_f64x2_splat(0), acc1 = acc0;
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    v4 v = wasm_v128_load(x + i);
    v4 sq = wasm_f32x4_mul(v, v);
    acc0 = wasm_f64x2_add(acc0, wasm_f64x2_promote_low_f32x4(sq));
    acc1 = wasm_f64x2_add(acc1, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(sq, sq, 2, 3, 0, 1)));
  }
  v128_t acc = wasm_f64x2_add(acc0, acc1);
  double total = wasm_f64x2_extract_lane(acc, 0) + wasm_f64x2_extract_lane(acc, 1);
  for (; i < n; i++) {
    f32 sq = x[i] * x[i];
    total += (double)sq;
  }
  return total;
}

// Column sums out[j] = sum_i x[i*cols + j] (a bias gradient: Sum over every axis but the last),
// row by row in float32, 4 columns at a time. tfjs's Sum transposes first for such axes (~0.5 ms
// for [1024, 128]).
__attribute__((export_name("steel_colsum")))
void steel_colsum(const f32 *x, f32 *out, int rows, int cols) {
  int j = 0;
  for (; j + 4 <= cols; j += 4) {
    v4 acc = wasm_f32x4_splat(0);
    for (int i = 0; i < rows; i++) acc = wasm_f32x4_add(acc, wasm_v128_load(x + i * cols + j));
    wasm_v128_store(out + j, acc);
  }
  for (; j < cols; j++) {
    f32 acc = 0;
    for (int i = 0; i < rows; i++) acc += x[i * cols + j];
    out[j] = acc;
  }
}

// out = a + b over `rows` rows of `cols`, b either the same shape (b_rows 1) or one row added to
// every row (b_rows 0: a bias). The residual adds, bias adds and gradient sums of a training step.
__attribute__((export_name("steel_add")))
void steel_add(const f32 *a, const f32 *b, f32 *out, int rows, int cols, int b_rows) {
  for (int r = 0; r < rows; r++) {
    const f32 *ar = a + r * cols, *br = b_rows ? b + r * cols : b;
    f32 *o = out + r * cols;
    int j = 0;
    for (; j + 4 <= cols; j += 4) wasm_v128_store(o + j, wasm_f32x4_add(wasm_v128_load(ar + j), wasm_v128_load(br + j)));
    for (; j < cols; j++) o[j] = ar[j] + br[j];
  }
}
