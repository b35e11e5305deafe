// The matmul of matmul.c, for the other kernels of the module (attention.c).
#ifndef STEEL_GEMM_H
#define STEEL_GEMM_H

// C(i,n) (+)= sum_k A(i,k) B(k,n) with A(i,k) = a[i*sam + k*sak], B(k,n) = b[k*sbk + n*sbn],
// C(i,n) = c[i*ldc + n]. pack: steel_pack_floats() floats of scratch.
void steel_gemm(float *c, const float *a, const float *b, float *pack, int m, int n, int k, int sam, int sak, int sbk, int sbn, int ldc,
                int accumulate);

#endif
