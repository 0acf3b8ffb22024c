/* Cython's float32 Adam check pass + write pass (cython_cpu/optimizers.pxd, the same
   expressions) as plain C, timed per instruction set: what moving the update loops onto the
   activation loops' run-time ISA paths would gain (bench/results/update-refusal.md).
   mnist's 109,386 parameters, 2000 calls, thread CPU time, one core:

       for fl in "" "-mavx2" "-mavx512f -ffp-contract=off"; do
           gcc -O3 -fno-trapping-math -fno-math-errno $fl bench/update_isa_prototype.c -o /tmp/adam -lm
           taskset -c 1 /tmp/adam
       done

   No FMA (plain -mavx2; -ffp-contract=off with AVX-512), so every build should give the
   same bits (sqrt and division round correctly at any vector width); the printed checksum
   agrees, a bitwise test belongs with a real change. */
#include <math.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static int adam_flags(const float* p, const float* g, const float* m, const float* v, long n, float s, float r, float b1, float b2, float c1, float c2, float e, float wd) {
    int bg = 0, bad = 0; float big = FLT_MAX;
    for (long i = 0; i < n; i++) {
        float pi = p[i], gi = g[i], d = gi + wd * pi;
        float mi = m[i] * b1 + c1 * d, vi = v[i] * b2 + c2 * d * d;
        float nw = pi - s * mi / (sqrtf(vi) / r + e);
        bg |= !(fabsf(gi) <= big);
        bad |= (!(fabsf(nw) <= big)) | (!(fabsf(mi) <= big)) | (!(vi <= big));
    }
    return bg | bad * 2;
}
static void adam_write(float* restrict p, const float* restrict g, float* restrict m, float* restrict v, long n, float s, float r, float b1, float b2, float c1, float c2, float e, float wd) {
    for (long i = 0; i < n; i++) {
        float pi = p[i], d = g[i] + wd * pi;
        float mi = m[i] * b1 + c1 * d, vi = v[i] * b2 + c2 * d * d;
        m[i] = mi; v[i] = vi; p[i] = pi - s * mi / (sqrtf(vi) / r + e);
    }
}
int main(void) {
    long n = 109386; float *p = malloc(4*n), *g = malloc(4*n), *m = malloc(4*n), *v = malloc(4*n);
    for (long i = 0; i < n; i++) { p[i] = (i % 17) * 0.01f; g[i] = (i % 13) * 1e-3f; m[i] = 0; v[i] = 0; }
    int k = 2000, f = 0; struct timespec t0, t1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (int j = 0; j < k; j++) { f |= adam_flags(p, g, m, v, n, 1e-9f, 1.f, .9f, .999f, .1f, .001f, 1e-8f, 0.f); if (!f) adam_write(p, g, m, v, n, 1e-9f, 1.f, .9f, .999f, .1f, .001f, 1e-8f, 0.f); }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
    double us = ((t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3) / k;
    double sum = 0; for (long i = 0; i < n; i++) sum += p[i] + m[i] + v[i];
    printf("%.1f us per check+write (flags %d, checksum %.9g)\n", us, f, sum);
    return 0;
}
