/* svc_host.h: the C ABI of libsvchost, a host for svc-export bundles (singing voice conversion)
 * on ONNX Runtime's C API. Stable: functions are only ever added; structs are opaque.
 *
 * Every function that can fail returns an svc_status (SVC_OK = 0) and leaves a one-line
 * message, readable with svc_host_last_error(handle) (or svc_host_last_error(NULL) after a
 * failed svc_host_open, per thread). Audio is mono float32; the output is at the model's
 * sample rate (svc_host_sample_rate). One handle must not be used by two threads at once.
 * Reference: docs/embedding.md. */
#ifndef SVC_HOST_H
#define SVC_HOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define SVC_API __declspec(dllexport)
#else
#define SVC_API __attribute__((visibility("default")))
#endif

#define SVC_HOST_ABI_VERSION 1

typedef enum svc_status {
    SVC_OK = 0,
    SVC_ERR_ARGUMENT = 1, /* a NULL pointer, a wrong block size, a sample rate <= 0 */
    SVC_ERR_OPTIONS = 2,  /* the options JSON: malformed, an unknown key, a value out of range, an unknown speaker */
    SVC_ERR_BUNDLE = 3,   /* the bundle folder: missing, a corrupt manifest, a missing graph file */
    SVC_ERR_INPUT = 4,    /* the audio: non-finite samples, too short */
    SVC_ERR_RUNTIME = 5,  /* ONNX Runtime failed (message included) */
    SVC_ERR_MEMORY = 6    /* out of memory */
} svc_status;

typedef struct svc_host svc_host;

/* ABI version of the loaded library (SVC_HOST_ABI_VERSION it was built with). */
SVC_API int svc_host_abi_version(void);

/* Open the bundle folder `bundle_dir` (written by svc-export, manifest schema 3 with a converter graph).
 * options_json: NULL or a JSON object; keys (all optional):
 *   "speaker": name or id (required when the bundle has several speakers), "transpose": semitones [-48, 48],
 *   "seed": integer >= 0 (52468), "noise_scale": [0, 2] (0.4), "threads": ONNX Runtime intra-op threads (0 = its
 *   default), "slice_db": [-100, 0] (-40), "pad_seconds" (0.5), "max_window_seconds" (30), "clip_seconds" (0: whole
 *   slices up to the max window), "context_seconds" (1.0),
 *   "crossfade_seconds" (0.05), "remove_dc": bool (true), "block_size": samples per streamed block at the model
 *   rate (0 = no streaming), "stream_context_seconds" (0.5), "stream_generator_context_seconds" (0.03),
 *   "stream_crossfade_seconds" (0.005),
 *   "lookahead_seconds" (0.04).
 * On success *out is the handle (free it with svc_host_close); on failure *out is NULL. */
SVC_API svc_status svc_host_open(const char *bundle_dir, const char *options_json, svc_host **out);
SVC_API void svc_host_close(svc_host *host);

/* The last error of `host` (NULL: this thread's last svc_host_open failure); "" when none. Valid until the next call. */
SVC_API const char *svc_host_last_error(const svc_host *host);

SVC_API int svc_host_sample_rate(const svc_host *host);
SVC_API int svc_host_speaker_count(const svc_host *host);
/* Name of speaker `index` in [0, count) in the manifest's order, NULL when out of range. */
SVC_API const char *svc_host_speaker_name(const svc_host *host, int index);

/* Output length of a whole-buffer conversion of n samples at in_rate: round(n * model_rate / in_rate). */
SVC_API int64_t svc_host_output_length(const svc_host *host, int64_t n, int in_rate);

/* Convert a whole buffer (what `svc-run convert` does after decoding): resample to the model rate, remove DC,
 * slice on silence, convert each voiced slice in windows, crossfade. `out` must hold
 * svc_host_output_length(host, n, in_rate) samples. */
SVC_API svc_status svc_host_convert(svc_host *host, const float *in, int64_t n, int in_rate, float *out);

/* Resample n samples from in_rate to out_rate as the host does internally (soxr HQ, linear phase); `out`
 * holds round(n * out_rate / in_rate) samples (svc_host_output_length's rule). For a stream at another rate:
 * resample whole recordings, or run a streaming resampler of your own around the block API. */
SVC_API svc_status svc_host_resample(const float *in, int64_t n, int in_rate, int out_rate, float *out);

/* Streaming (needs "block_size" in the options): block_size samples at the model rate in, as many out (the
 * converted stream, delayed by svc_host_latency_samples - block_size). Non-finite input samples are
 * converted as 0 and reported with SVC_ERR_INPUT (the output is still written and the stream goes on). */
SVC_API int svc_host_block_size(const svc_host *host);
SVC_API svc_status svc_host_process_block(svc_host *host, const float *in, float *out, int64_t n);
/* Forget the stream: the next block starts a new one (as if preceded by silence). */
SVC_API svc_status svc_host_reset(svc_host *host);
/* Samples of audio one window spans (at the model rate): the history svc_host_reset_history takes. */
SVC_API int64_t svc_host_history_samples(const svc_host *host);
/* As svc_host_reset, with `history` (n = svc_host_history_samples samples at the model rate) as the audio that
 * precedes the stream (e.g. to resume one): the first window's left context is this audio. */
SVC_API svc_status svc_host_reset_history(svc_host *host, const float *history, int64_t n);
/* Algorithmic latency of the stream in samples at the model rate (one block + look-ahead + fade); 0 without streaming. */
SVC_API int64_t svc_host_latency_samples(const svc_host *host);

#ifdef __cplusplus
}
#endif
#endif
