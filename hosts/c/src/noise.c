/* The counter-based noise of docs/bundle.md (svc_runtime/pipeline/noise.py implements the same):
 * every element is a pure function of (seed, stream, kind, index), so any window of a stream
 * draws exactly the numbers the whole-file conversion draws for the same frames. */
#include <math.h>
#include <pthread.h>

#include "svc_internal.h"

static const double TWO_POW_M53 = 1.0 / 9007199254740992.0; /* 2^-53 */
static const double TWO_PI = 2.0 * 3.14159265358979311600; /* 2 * numpy.pi */

uint64_t svc_splitmix64(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

uint64_t svc_noise_base(uint64_t seed, uint64_t stream, uint64_t kind) {
    return svc_splitmix64(svc_splitmix64(svc_splitmix64(seed) ^ stream) ^ kind);
}

/* The Box-Muller pair p: (r cos, r sin) in double. */
static void normal_pair(uint64_t base, uint64_t p, double *c, double *s) {
    double u1 = (double)((svc_splitmix64(base + 2 * p) >> 11) + 1) * TWO_POW_M53;
    double u2 = (double)(svc_splitmix64(base + 2 * p + 1) >> 11) * TWO_POW_M53;
    double r = sqrt(-2.0 * log(u1));
    double angle = TWO_PI * u2;
    *c = r * cos(angle);
    *s = r * sin(angle);
}

/* Box-Muller standard normals [first, first + count) of the sequence of `base`: the shared table's source. */
static void gaussians(uint64_t base, uint64_t first, size_t count, float *out) {
    size_t k = 0;
    uint64_t i = first;
    double c, s;
    if (count == 0) return;
    if (i & 1) { /* odd start: the sine half of its pair */
        normal_pair(base, i >> 1, &c, &s);
        out[k++] = (float)s;
        i++;
    }
    while (k + 1 < count) {
        normal_pair(base, i >> 1, &c, &s);
        out[k++] = (float)c;
        out[k++] = (float)s;
        i += 2;
    }
    if (k < count) {
        normal_pair(base, i >> 1, &c, &s);
        out[k] = (float)c;
    }
}

#define TABLE_BITS 20
#define RUN_BITS 12
#define KIND_TABLE 3

/* The shared table of 2^20 standard normals: gauss(key(0, 0, KIND_TABLE), j), built once per process
 * (pthread_once: several handles on several threads may draw noise at once). */
static float noise_table[1u << TABLE_BITS];
static pthread_once_t noise_table_once = PTHREAD_ONCE_INIT;

static void build_table(void) { gaussians(svc_noise_base(0, 0, KIND_TABLE), 0, (size_t)1 << TABLE_BITS, noise_table); }

const float *svc_noise_table(void) {
    pthread_once(&noise_table_once, build_table);
    return noise_table;
}

/* element i = table[((splitmix64(base + (i >> 12)) >> 44) + (i & 4095)) mod 2^20]  (i as two's complement) */
void svc_noise_normals(uint64_t base, uint64_t first, size_t count, float *out) {
    const float *t = svc_noise_table();
    const uint64_t mask = ((uint64_t)1 << TABLE_BITS) - 1;
    size_t k = 0;
    while (k < count) {
        uint64_t i = first + (uint64_t)k;
        uint64_t run = (uint64_t)((int64_t)i >> RUN_BITS);
        uint64_t place = svc_splitmix64(base + run) >> (64 - TABLE_BITS);
        uint64_t within = i & (((uint64_t)1 << RUN_BITS) - 1);
        size_t take = (size_t)(((uint64_t)1 << RUN_BITS) - within);
        if (take > count - k) take = count - k;
        for (size_t j = 0; j < take; j++) out[k + j] = t[(place + within + j) & mask];
        k += take;
    }
}

void svc_noise_prior(uint64_t seed, uint64_t stream, int64_t a, int64_t b, int channels, float *out) {
    uint64_t base = svc_noise_base(seed, stream, 1);
    int64_t n = b - a;
    float column[4096];
    for (int64_t t = 0; t < n; t++) {
        /* frame a + t holds the elements [(a + t) * C, (a + t + 1) * C) */
        int c0 = 0;
        while (c0 < channels) {
            int take = channels - c0 < 4096 ? channels - c0 : 4096;
            svc_noise_normals(base, (uint64_t)(a + t) * (uint64_t)channels + (uint64_t)c0, (size_t)take, column);
            for (int c = 0; c < take; c++) out[(int64_t)(c0 + c) * n + t] = column[c];
            c0 += take;
        }
    }
}

void svc_noise_sine(uint64_t seed, uint64_t stream, int64_t a, int64_t b, int hop, int harmonics, float *out) {
    uint64_t base = svc_noise_base(seed, stream, 2);
    uint64_t first = (uint64_t)a * (uint64_t)hop * (uint64_t)harmonics;
    svc_noise_normals(base, first, (size_t)((b - a) * hop * harmonics), out);
}

void svc_noise_initial_phase(uint64_t seed, uint64_t stream, int harmonics, int32_t *out) {
    uint64_t base = svc_noise_base(seed, stream, 0);
    for (int h = 0; h < harmonics; h++) {
        uint64_t phase = h ? svc_splitmix64(base + (uint64_t)h) >> 24 : 0; /* cycles * 2^40 */
        for (int k = 0; k < SVC_PHASE_LIMBS; k++)
            out[k * harmonics + h] = (int32_t)((phase >> (k * SVC_PHASE_LIMB_BITS)) & ((1u << SVC_PHASE_LIMB_BITS) - 1));
    }
}
