/* The handle behind svc_host.h: bundle facts from the manifest, options, the ONNX Runtime session. */
#ifndef SVC_HOST_STATE_H
#define SVC_HOST_STATE_H

#include <stdarg.h>
#include <stdint.h>

#include <onnxruntime_c_api.h>

#include "svc_host.h"
#include "svc_internal.h"

#define SVC_MAX_INPUTS 16
#define SVC_ERROR_LEN 2048

typedef struct {
    int sampling_rate, hop, ssl_dim, inter_channels, n_harmonics, n_speakers, vol_embedding, has_f0_predictor;
    int encoder_rate;
    int n_named;                 /* speakers with a name */
    char **speaker_names;        /* [n_named] in manifest order */
    int *speaker_ids;            /* [n_named] */
    char converter_file[4096];   /* path of converter.onnx */
} svc_model_info;

typedef struct {
    int speaker_id;
    double transpose, noise_scale, slice_db, pad_seconds, max_window_seconds, clip_seconds, context_seconds,
        crossfade_seconds;
    uint64_t seed;
    int threads, remove_dc;
    int64_t block_size;
    double stream_context_seconds, stream_generator_context_seconds, stream_crossfade_seconds, lookahead_seconds;
} svc_options;

typedef struct svc_stream svc_stream;

struct svc_host {
    char error[SVC_ERROR_LEN];
    char bundle_dir[4096];
    svc_model_info model;
    svc_options opt;
    const OrtApi *ort;
    OrtEnv *env;
    OrtSession *session;
    OrtMemoryInfo *cpu;
    size_t n_inputs;
    char *input_names[SVC_MAX_INPUTS];
    int has_decode_from; /* the converter renders from a given frame on (bundles of late schema 3 on) */
    svc_stream *stream;
};

/* One converter run: the window's inputs (B = 1) and where its outputs go. */
typedef struct {
    const float *wav16k;
    int64_t n16;
    const float *audio; /* [T * hop] model-rate window (vol_embedding models) */
    int64_t frames;     /* T */
    int64_t noise_frame; /* absolute frame of the window's frame 0 in its noise stream */
    uint64_t stream;
    int32_t *phase;     /* [3, H] limbs (SVC_PHASE_LIMBS) in: phase_in, out: phase_out */
    int64_t state_frame;
    int64_t decode_from; /* first frame the decoder renders (0: all; the graph's `decode_from` input) */
    float *out_audio;   /* [(T - decode_from) * hop] */
    const float *prior; /* [C, T] noise of the window's frames, or NULL: drawn here */
    const float *sine;  /* [T * hop, H], or NULL: drawn here */
} svc_window;

svc_status svc_fail(svc_host *h, svc_status code, const char *fmt, ...);
svc_status svc_run_window(svc_host *h, const svc_window *w);

svc_status svc_stream_create(svc_host *h);
void svc_stream_destroy(svc_stream *s);
svc_status svc_stream_reset(svc_host *h, const float *history);
int64_t svc_stream_history_samples(const svc_host *h);
svc_status svc_stream_process(svc_host *h, const float *in, float *out);
int64_t svc_stream_latency(const svc_host *h);

#endif
