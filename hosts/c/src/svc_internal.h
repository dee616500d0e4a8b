/* Internal pieces of libsvchost: the signal functions that mirror svc_runtime (one C
 * function per Python function; the tests compare them through ctypes), the manifest
 * reader and the conversion state. Not part of the stable ABI (svc_host.h is). */
#ifndef SVC_INTERNAL_H
#define SVC_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define SVC_INTERNAL_API __declspec(dllexport)
#else
#define SVC_INTERNAL_API __attribute__((visibility("default")))
#endif

/* ---------------------------------------------------------------- noise (svc_runtime/pipeline/noise.py) */

SVC_INTERNAL_API uint64_t svc_splitmix64(uint64_t x);
/* splitmix64(splitmix64(splitmix64(seed) ^ stream) ^ kind); kind 0 phase, 1 prior, 2 sine. */
SVC_INTERNAL_API uint64_t svc_noise_base(uint64_t seed, uint64_t stream, uint64_t kind);
/* The shared table of 2^20 standard normals (Box-Muller of key(0, 0, 3)), built on first use. */
SVC_INTERNAL_API const float *svc_noise_table(void);
/* normal(i) for i in [first, first + count): table[((splitmix64(base + (i >> 12)) >> 44) + (i & 4095)) mod 2^20]. */
SVC_INTERNAL_API void svc_noise_normals(uint64_t base, uint64_t first, size_t count, float *out);
/* Prior noise of frames [a, b): out [C, b - a], element (c, t) = normal((a + t) * C + c). */
SVC_INTERNAL_API void svc_noise_prior(uint64_t seed, uint64_t stream, int64_t a, int64_t b, int channels, float *out);
/* Sine noise of frames [a, b): out [(b - a) * hop, H], element (s, h) = normal((a*hop + s) * H + h). */
SVC_INTERNAL_API void svc_noise_sine(uint64_t seed, uint64_t stream, int64_t a, int64_t b, int hop, int harmonics,
                                     float *out);
/* The carried NSF phase (svc_runtime/signal/nsf_phase.py): fixed point cycles * 2^40 held as int32 limbs of 14 bits,
 * value = limb2 * 2^28 + limb1 * 2^14 + limb0 (limb2 < 2^12), laid out [3, H]: out[k * H + h] is limb k of harmonic h.
 * A window may have at most SVC_PHASE_MAX_FRAMES frames (the graph sums that many limbs in int32). */
#define SVC_PHASE_LIMBS 3
#define SVC_PHASE_LIMB_BITS 14
#define SVC_PHASE_MAX_FRAMES ((1 << 17) - 1)
/* Initial NSF phases, limbs [3, H] (see above): harmonic 0 is 0. */
SVC_INTERNAL_API void svc_noise_initial_phase(uint64_t seed, uint64_t stream, int harmonics, int32_t *out);

/* ---------------------------------------------------------------- signal (svc_runtime/audio, signal/slicer.py) */

/* round(n * out / in) with integers: (n * out + in / 2) / in. */
SVC_INTERNAL_API int64_t svc_resampled_length(int64_t n, int in_rate, int out_rate);
/* soxr HQ, exact length svc_resampled_length; out must hold that many samples. 0 ok, else -1. */
SVC_INTERNAL_API int svc_resample(const float *in, int64_t n, int in_rate, int out_rate, float *out);
/* dsp.remove_dc (zero-phase high-pass, twice a boxcar of width round(sr / cutoff) | 1); out may equal in. */
SVC_INTERNAL_API int svc_remove_dc(const float *in, int64_t n, int sample_rate, double cutoff_hz, float *out);

typedef struct {
    int64_t start, end;
    int silent;
} svc_segment;

/* slicer.slice_on_silence with SlicerConfig(threshold_db) and its other defaults.
 * Writes at most max_segments segments; returns how many there are (may exceed max_segments), -1 on error. */
SVC_INTERNAL_API int64_t svc_slice_on_silence(const float *x, int64_t n, int sample_rate, double threshold_db,
                                              svc_segment *out, int64_t max_segments);

typedef struct {
    int64_t win_start, win_end, keep_start, keep_end;
} svc_chunk;

/* slicer.plan_chunks; returns the number of chunks (may exceed max_chunks), -1 when the window is too small. */
SVC_INTERNAL_API int64_t svc_plan_chunks(int64_t n_frames, int64_t window, int64_t context, svc_chunk *out,
                                         int64_t max_chunks);

/* pipeline.convert.Converter._place: crossfade one window's audio `piece` [piece_len] into the file output.
 * seg_start / seg_pad / n_seg_samples: the slice's first input sample, padding and padded length (samples).
 * Returns 0, or -1 when the piece does not cover what the crossfade needs. */
SVC_INTERNAL_API int svc_place(float *out, int64_t n_out, int64_t seg_start, int64_t seg_end, int64_t seg_pad,
                               int64_t n_seg_samples, const float *piece, int64_t piece_start, int64_t piece_len,
                               int64_t keep_start, int64_t keep_end, int64_t fade);

/* Python's round() on a double (half to even). */
double svc_round_half_even(double x);

#endif
