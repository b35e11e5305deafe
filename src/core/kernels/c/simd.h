// Shared by fused.c and attention.c: types and the vector helpers of the element-wise kernels.
#ifndef STEEL_SIMD_H
#define STEEL_SIMD_H
#include <wasm_simd128.h>

typedef float f32;
typedef v128_t v4;

// e^x, Cephes-style: x = n*ln2 + r, e^r by a degree-7 polynomial, 2^n through the exponent bits.
// About 1 ulp over the clamped range [-87.3, 88.376]; below it the result is ~1e-38, not 0
// (harmless here).
static inline v4 v_exp(v4 x) {
  // pmin/pmax are one instruction each; min/max (NaN- and signed-zero-exact) are a sequence of
  // eight on x64, which made exp 2.3x slower. A NaN still comes through (pmax(NaN, c) is NaN).
  x = wasm_f32x4_pmin(wasm_f32x4_pmax(x, wasm_f32x4_splat(-87.3f)), wasm_f32x4_splat(88.376f));
  v4 fx = wasm_f32x4_floor(wasm_f32x4_add(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)), wasm_f32x4_splat(0.5f)));
  x = wasm_f32x4_sub(x, wasm_f32x4_mul(fx, wasm_f32x4_splat(0.693359375f)));
  x = wasm_f32x4_sub(x, wasm_f32x4_mul(fx, wasm_f32x4_splat(-2.12194440e-4f)));
  v4 y = wasm_f32x4_splat(1.9875691500e-4f);
  y = wasm_f32x4_add(wasm_f32x4_mul(y, x), wasm_f32x4_splat(1.3981999507e-3f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, x), wasm_f32x4_splat(8.3334519073e-3f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, x), wasm_f32x4_splat(4.1665795894e-2f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, x), wasm_f32x4_splat(1.6666665459e-1f));
  y = wasm_f32x4_add(wasm_f32x4_mul(y, x), wasm_f32x4_splat(5.0000001201e-1f));
  y = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(y, x), x), x), wasm_f32x4_splat(1.0f));
  // 2^n: fx + 127 is an integer in [1, 254]; added to 1.5 * 2^23 it sits in the low mantissa
  // bits, and a shift by 23 moves it into the exponent field (dropping everything above). Cheaper
  // than i32x4.trunc_sat, which V8 emits as a long sequence on x64.
  v4 n = wasm_i32x4_shl(wasm_f32x4_add(fx, wasm_f32x4_splat(12583039.0f)), 23);
  return wasm_f32x4_mul(y, n);
}

static inline f32 hsum(v4 v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) + (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

static inline f32 hmax(v4 v) {
  f32 a = wasm_f32x4_extract_lane(v, 0), b = wasm_f32x4_extract_lane(v, 1);
  f32 c = wasm_f32x4_extract_lane(v, 2), d = wasm_f32x4_extract_lane(v, 3);
  a = a > b ? a : b;
  c = c > d ? c : d;
  return a > c ? a : c;
}

static inline f32 s_exp(f32 x) { return wasm_f32x4_extract_lane(v_exp(wasm_f32x4_splat(x)), 0); }

#endif
