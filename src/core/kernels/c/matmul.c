// steelscope's own wasm SIMD kernels. The module imports tfjs-backend-wasm's linear memory, so
// every pointer here is an offset into tfjs's heap: operands are read where tfjs keeps them and
// results written into tensors tfjs allocated. No libc, no data segment, no stack use (only
// scalar and v128 locals), so nothing here touches memory that tfjs did not hand over.
// Built with fused.c into one module by scripts/build-kernels.mjs (with @yowasp/clang):
//   clang --target=wasm32 -O3 -msimd128 -nostdlib -fno-builtin -Wl,--no-entry -Wl,--import-memory ...
#include <wasm_simd128.h>

// MADD(a, b, c) = a*b + c. Built with -mrelaxed-simd -DSTEEL_FMA (steel-kernels-fma.wasm), it is
// relaxed SIMD's madd, which V8 emits as one fused multiply-add where the CPU has FMA: 15-20%
// faster here (45 -> 52-54 GFLOP/s on one core), as the multiply and the add no longer compete
// for the same ports. Results then differ from the plain build in the last bits (one rounding
// instead of two), so every thread of a process uses the same build (steel.ts chooses once).
#ifdef STEEL_FMA
#define MADD(a, b, c) __builtin_wasm_relaxed_madd_f32x4(a, b, c)
#else
#define MADD(a, b, c) wasm_f32x4_add(c, wasm_f32x4_mul(a, b))
#endif

typedef float f32;
typedef v128_t v4;

#define MR 4   // rows of C per micro-tile
#define NR 8   // columns of C per micro-tile (two v128)
#define KC 256 // depth of one packed block of B
#define NC 256 // columns of one packed block of B

// Packs B(k, n) for k in [0,kc), n in [0,nc) into panels of NR columns: panel j holds
// rows k = 0..kc-1 of columns j*NR..j*NR+NR-1, contiguous, zero-padded past nc.
static void pack_b(f32 *dst, const f32 *b, int sbk, int sbn, int kc, int nc) {
  for (int j = 0; j < nc; j += NR) {
    int w = nc - j < NR ? nc - j : NR;
    const f32 *col = b + j * sbn;
    if (w == NR && sbn == 1) {
      for (int k = 0; k < kc; k++) {
        const f32 *src = col + k * sbk;
        wasm_v128_store(dst, wasm_v128_load(src));
        wasm_v128_store(dst + 4, wasm_v128_load(src + 4));
        dst += NR;
      }
    } else if (w == NR && sbk == 1) {
      // B stored transposed (column n contiguous in k): 4x4 transposes of 4 k-steps by 4 columns.
      int k = 0;
      for (; k + 4 <= kc; k += 4) {
        for (int h = 0; h < NR; h += 4) {
          v4 r0 = wasm_v128_load(col + (h + 0) * sbn + k);
          v4 r1 = wasm_v128_load(col + (h + 1) * sbn + k);
          v4 r2 = wasm_v128_load(col + (h + 2) * sbn + k);
          v4 r3 = wasm_v128_load(col + (h + 3) * sbn + k);
          v4 t0 = wasm_i32x4_shuffle(r0, r1, 0, 4, 1, 5); // r0[0] r1[0] r0[1] r1[1]
          v4 t1 = wasm_i32x4_shuffle(r2, r3, 0, 4, 1, 5);
          v4 t2 = wasm_i32x4_shuffle(r0, r1, 2, 6, 3, 7);
          v4 t3 = wasm_i32x4_shuffle(r2, r3, 2, 6, 3, 7);
          wasm_v128_store(dst + 0 * NR + h, wasm_i32x4_shuffle(t0, t1, 0, 1, 4, 5));
          wasm_v128_store(dst + 1 * NR + h, wasm_i32x4_shuffle(t0, t1, 2, 3, 6, 7));
          wasm_v128_store(dst + 2 * NR + h, wasm_i32x4_shuffle(t2, t3, 0, 1, 4, 5));
          wasm_v128_store(dst + 3 * NR + h, wasm_i32x4_shuffle(t2, t3, 2, 3, 6, 7));
        }
        dst += 4 * NR;
      }
      for (; k < kc; k++) {
        for (int c = 0; c < NR; c++) dst[c] = col[c * sbn + k];
        dst += NR;
      }
    } else {
      for (int k = 0; k < kc; k++) {
        const f32 *src = col + k * sbk;
        for (int c = 0; c < NR; c++) dst[c] = c < w ? src[c * sbn] : 0.0f;
        dst += NR;
      }
    }
  }
}

// Packs A(i, k) for i in [0,mc), k in [0,kc) into panels of MR rows: panel p holds, for each k,
// rows p*MR..p*MR+MR-1 side by side (one v128), rows past mc repeated from the last valid one.
static void pack_a(f32 *dst, const f32 *a, int sam, int sak, int mc, int kc) {
  for (int i = 0; i < mc; i += MR) {
    const f32 *r0 = a + i * sam;
    const f32 *r1 = i + 1 < mc ? r0 + sam : r0;
    const f32 *r2 = i + 2 < mc ? r0 + 2 * sam : r0;
    const f32 *r3 = i + 3 < mc ? r0 + 3 * sam : r0;
    if (sam == 1 && i + MR <= mc) {
      for (int k = 0; k < kc; k++) wasm_v128_store(dst + k * MR, wasm_v128_load(r0 + k * sak));
    } else {
      for (int k = 0; k < kc; k++) {
        int o = k * sak;
        wasm_v128_store(dst + k * MR, wasm_f32x4_make(r0[o], r1[o], r2[o], r3[o]));
      }
    }
    dst += MR * kc;
  }
}

static inline void store_row(f32 *c, v4 lo, v4 hi, int w, int acc) {
  if (w == NR) {
    if (acc) {
      lo = wasm_f32x4_add(lo, wasm_v128_load(c));
      hi = wasm_f32x4_add(hi, wasm_v128_load(c + 4));
    }
    wasm_v128_store(c, lo);
    wasm_v128_store(c + 4, hi);
    return;
  }
  // A partial tile (N not a multiple of NR): lane by lane, without an array (that would need the stack).
  for (int i = 0; i < w; i++) {
    f32 t;
    switch (i) {
      case 0: t = wasm_f32x4_extract_lane(lo, 0); break;
      case 1: t = wasm_f32x4_extract_lane(lo, 1); break;
      case 2: t = wasm_f32x4_extract_lane(lo, 2); break;
      case 3: t = wasm_f32x4_extract_lane(lo, 3); break;
      case 4: t = wasm_f32x4_extract_lane(hi, 0); break;
      case 5: t = wasm_f32x4_extract_lane(hi, 1); break;
      default: t = wasm_f32x4_extract_lane(hi, 2); break;
    }
    c[i] = acc ? c[i] + t : t;
  }
}

// C tile (rows < mr, columns < w) (+)= A panel · packed B panel, depth kc, where row r of the
// panel at step k is ap[r*rs + k*ks]: a packed panel (rs 1, ks MR) or row-major A read in place
// (rs = its row stride, ks 1). Rows past mr re-read row 0 and are not stored.
// A's values are broadcast straight from memory (v128.load32_splat) rather than by shuffling one
// loaded vector: a shuffle competes with the multiplies for execution ports, a load does not
// (4x8 went from ~35 to ~45 GFLOP/s; 5x8 and 6x8 tiles were slower, as V8 then spills registers).
static void micro(const f32 *ap, int rs, int ks, int mr, const f32 *panel, int kc, f32 *c, int ldc, int w, int acc) {
  v4 c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  const f32 *a0 = ap, *a1 = mr > 1 ? ap + rs : ap, *a2 = mr > 2 ? ap + 2 * rs : ap, *a3 = mr > 3 ? ap + 3 * rs : ap;
  for (int k = 0; k < kc; k++) {
    v4 b0 = wasm_v128_load(panel);
    v4 b1 = wasm_v128_load(panel + 4);
    v4 x = wasm_v128_load32_splat(a0);
    c00 = MADD(x, b0, c00);
    c01 = MADD(x, b1, c01);
    x = wasm_v128_load32_splat(a1);
    c10 = MADD(x, b0, c10);
    c11 = MADD(x, b1, c11);
    x = wasm_v128_load32_splat(a2);
    c20 = MADD(x, b0, c20);
    c21 = MADD(x, b1, c21);
    x = wasm_v128_load32_splat(a3);
    c30 = MADD(x, b0, c30);
    c31 = MADD(x, b1, c31);
    panel += NR;
    a0 += ks;
    a1 += ks;
    a2 += ks;
    a3 += ks;
  }
  store_row(c, c00, c01, w, acc);
  if (mr > 1) store_row(c + ldc, c10, c11, w, acc);
  if (mr > 2) store_row(c + 2 * ldc, c20, c21, w, acc);
  if (mr > 3) store_row(c + 3 * ldc, c30, c31, w, acc);
}

#define MC 128 // rows of one packed block of A

// One product C[M,N] (+)= A·B with A(i,k) = a[i*sam + k*sak], B(k,n) = b[k*sbk + n*sbn] and
// C(i,n) = c[i*ldc + n]; accumulate adds to C instead of overwriting it.
// pack holds the packed B block (KC*NC floats) followed by the packed A block (MC*KC floats).
// Not static: attention.c runs its products through it (see gemm.h).
void steel_gemm(f32 *c, const f32 *a, const f32 *b, f32 *pack, int m, int n, int k, int sam, int sak, int sbk, int sbn, int ldc, int accumulate) {
  f32 *packA = pack + KC * NC;
  for (int jc = 0; jc < n; jc += NC) {
    int nc = n - jc < NC ? n - jc : NC;
    for (int pc = 0; pc < k; pc += KC) {
      int kc = k - pc < KC ? k - pc : KC;
      pack_b(pack, b + pc * sbk + jc * sbn, sbk, sbn, kc, nc);
      for (int ic = 0; ic < m; ic += MC) {
        int mc = m - ic < MC ? m - ic : MC;
        // Row-major A is read in place (4 rows stay in L1 across the panels of B): packing it cost
        // up to 14% where N is small (attention's head_dim). A transposed A is packed, as reading
        // it in place would touch a new page at every k.
        const f32 *ablock = a + ic * sam + pc * sak;
        int direct = sak == 1;
        if (!direct) pack_a(packA, ablock, sam, sak, mc, kc);
        for (int i = 0; i < mc; i += MR) {
          int mr = mc - i < MR ? mc - i : MR;
          const f32 *ap = direct ? ablock + i * sam : packA + i * kc;
          int rs = direct ? sam : 1, ks = direct ? 1 : MR;
          for (int j = 0; j < nc; j += NR) {
            int w = nc - j < NR ? nc - j : NR;
            micro(ap, rs, ks, mr, pack + j * kc, kc, c + (ic + i) * ldc + jc + j, ldc, w, pc > 0 || accumulate);
          }
        }
      }
    }
  }
}

// Batched product: for each of `batch` items, C_b = A_b · B_b with element strides as in steel_gemm
// and batch strides bsa, bsb (0 broadcasts one operand); C_b(i, n) = c[b*bsc + i*ldc + n] (for a
// whole product, [batch, M, N] contiguous: ldc = N, bsc = M*N; a slice of its columns keeps those).
__attribute__((export_name("steel_matmul")))
void steel_matmul(f32 *c, const f32 *a, const f32 *b, f32 *pack, int batch, int m, int n, int k,
                  int sam, int sak, int sbk, int sbn, int bsa, int bsb, int ldc, int bsc) {
  for (int i = 0; i < batch; i++) steel_gemm(c + i * bsc, a + i * bsa, b + i * bsb, pack, m, n, k, sam, sak, sbk, sbn, ldc, 0);
}

__attribute__((export_name("steel_pack_floats")))
int steel_pack_floats(void) { return KC * NC + MC * KC; }
