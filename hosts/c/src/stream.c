/* Block streaming on the converter graph: a transcription of svc_runtime/streaming.py (StreamingConverter).
 *
 * Every block runs the graph once over a fixed window of `window` frames that ends at the newest complete
 * frame (left context + the frames the block finalises + look-ahead); the stream starts as if preceded by
 * one window of silence. Final frames are emitted, crossfaded over `fade` samples with the previous tail;
 * the NSF phase is carried from window to window and the noise is stream 0 of the counter-based generator,
 * by absolute frame. The output is the converted stream delayed by `delay` samples. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "host_state.h"

#define MIN_BLOCK_S 0.020
#define MAX_BLOCK_S 0.500

struct svc_stream {
    int64_t block, window, context, lookahead, fade, delay;
    int64_t decode_from; /* first window frame the decoder renders (StreamingConverter.decode_from) */
    float *ramp;       /* [fade] crossfade_weights */
    float *inp;        /* input history, inp[0] is stream sample inp_start */
    int64_t inp_len, inp_cap, inp_start, n_in;
    int64_t done;      /* frames emitted */
    int64_t origin;    /* the first window's first frame: frame 0 of the noise stream and of the phase */
    int32_t *phase;    /* [3, H] NSF phase limbs before frame phase_frame */
    int64_t phase_frame;
    float *tail;       /* [fade] faded-out tail waiting for the next piece */
    float *fifo;       /* output FIFO */
    int64_t fifo_len, fifo_cap;
    float *wav16k, *piece; /* scratch: the window at 16 kHz, the graph's audio */
    int64_t n16;
    /* noise of the frames [noise_start, noise_start + window): consecutive windows overlap in all but the
     * frames one block adds, so only those are drawn (the values depend on the absolute frame alone) */
    float *prior, *sine, *prior_tmp;
    int64_t noise_start;
};

void svc_stream_destroy(svc_stream *s) {
    if (!s) return;
    free(s->ramp), free(s->inp), free(s->phase), free(s->tail), free(s->fifo), free(s->wav16k), free(s->piece);
    free(s->prior), free(s->sine), free(s->prior_tmp);
    free(s);
}

int64_t svc_stream_latency(const svc_host *h) { return h->stream->block + h->stream->delay; }

svc_status svc_stream_create(svc_host *h) {
    const svc_model_info *m = &h->model;
    const svc_options *o = &h->opt;
    int sr = m->sampling_rate;
    int64_t hop = m->hop, block = o->block_size;
    if (!(MIN_BLOCK_S * sr - 1e-9 <= (double)block && (double)block <= MAX_BLOCK_S * sr + 1e-9))
        return svc_fail(h, SVC_ERR_OPTIONS, "block size %lld samples (%.1f ms) is outside %.0f-%.0f ms at %d Hz",
                        (long long)block, 1000.0 * (double)block / sr, MIN_BLOCK_S * 1000, MAX_BLOCK_S * 1000, sr);
    if (block < hop)
        return svc_fail(h, SVC_ERR_OPTIONS, "block size %lld is shorter than one frame (%lld samples)",
                        (long long)block, (long long)hop);
    if (!(o->stream_crossfade_seconds < o->lookahead_seconds))
        return svc_fail(h, SVC_ERR_OPTIONS, "crossfade must be >= 0 and shorter than the look-ahead");
    svc_stream *s = calloc(1, sizeof *s);
    if (!s) return svc_fail(h, SVC_ERR_MEMORY, "out of memory");
    h->stream = s;
    s->block = block;
    s->fade = (int64_t)svc_round_half_even(o->stream_crossfade_seconds * sr);
    if (s->fade > hop)
        return svc_fail(h, SVC_ERR_OPTIONS, "crossfade %.1f ms is longer than one frame (%.1f ms)",
                        o->stream_crossfade_seconds * 1000, 1000.0 * (double)hop / sr);
    int64_t budget = (int64_t)floor(o->lookahead_seconds * sr);
    int64_t num = budget - s->fade - (hop - 1);
    s->lookahead = num >= 0 ? num / hop : -1;
    if (s->lookahead < 0)
        return svc_fail(h, SVC_ERR_OPTIONS, "look-ahead %.0f ms is too short for hop %.1f ms and crossfade %.1f ms",
                        o->lookahead_seconds * 1000, 1000.0 * (double)hop / sr, o->stream_crossfade_seconds * 1000);
    if (!(o->stream_generator_context_seconds <= o->stream_context_seconds))
        return svc_fail(h, SVC_ERR_OPTIONS, "generator context must be >= 0 s and at most the context");
    s->context = (int64_t)ceil(o->stream_context_seconds * sr / (double)hop);
    if (s->context < 1) s->context = 1;
    /* the decoder renders from `generator context` frames before the first frame a block can emit (one frame
     * before the left context ends, for the crossfade): StreamingConverter.decode_from */
    int64_t generator_context = (int64_t)ceil(o->stream_generator_context_seconds * sr / (double)hop);
    s->decode_from = h->has_decode_from && s->context - 1 - generator_context > 0 ? s->context - 1 - generator_context : 0;
    s->window = s->context + (block + hop - 1) / hop + 1 + s->lookahead + 1;
    s->delay = s->lookahead * hop + hop - 1 + s->fade;
    s->ramp = malloc((size_t)(s->fade + 1) * sizeof(float));
    s->tail = calloc((size_t)(s->fade + 1), sizeof(float));
    s->phase = malloc((size_t)(SVC_PHASE_LIMBS * m->n_harmonics) * sizeof(int32_t));
    s->inp_cap = (s->window + 4) * hop + 3 * block;
    s->inp = malloc((size_t)s->inp_cap * sizeof(float));
    s->fifo_cap = s->delay + (s->window + 2) * hop + 2 * block;
    s->fifo = malloc((size_t)s->fifo_cap * sizeof(float));
    s->n16 = svc_resampled_length(s->window * hop, sr, m->encoder_rate);
    s->wav16k = malloc((size_t)s->n16 * sizeof(float));
    s->piece = malloc((size_t)(s->window * hop) * sizeof(float));
    s->prior = malloc((size_t)(s->window * m->inter_channels) * sizeof(float));
    s->prior_tmp = malloc((size_t)(s->window * m->inter_channels) * sizeof(float));
    s->sine = malloc((size_t)(s->window * hop * m->n_harmonics) * sizeof(float));
    if (!s->ramp || !s->tail || !s->phase || !s->inp || !s->fifo || !s->wav16k || !s->piece || !s->prior ||
        !s->prior_tmp || !s->sine)
        return svc_fail(h, SVC_ERR_MEMORY, "out of memory for the stream buffers");
    for (int64_t j = 0; j < s->fade; j++) s->ramp[j] = (float)(((double)j + 0.5) / (double)s->fade);
    return svc_stream_reset(h, NULL);
}

int64_t svc_stream_history_samples(const svc_host *h) { return h->stream->window * h->model.hop; }

svc_status svc_stream_reset(svc_host *h, const float *history) {
    svc_stream *s = h->stream;
    int64_t hop = h->model.hop;
    svc_noise_initial_phase(h->opt.seed, 0, h->model.n_harmonics, s->phase);
    s->inp_len = s->window * hop; /* one window of silence (or the history) before the stream */
    int64_t bad = 0;
    for (int64_t j = 0; j < s->inp_len; j++) {
        float v = history ? history[j] : 0.0f;
        if (!isfinite(v)) v = 0.0f, bad++;
        s->inp[j] = v;
    }
    s->inp_start = 0;
    s->n_in = s->inp_len;
    s->origin = (s->n_in + s->block) / hop - s->window;
    s->phase_frame = s->origin;
    s->done = s->window;
    memset(s->tail, 0, (size_t)(s->fade + 1) * sizeof(float));
    s->noise_start = -1; /* nothing drawn */
    s->fifo_len = s->delay - s->fade;
    memset(s->fifo, 0, (size_t)s->fifo_len * sizeof(float));
    if (bad)
        return svc_fail(h, SVC_ERR_INPUT, "the history held %lld non-finite samples (NaN or Inf); they were taken as 0",
                        (long long)bad);
    return SVC_OK;
}

/* Bring the noise buffers to frames [ga, ga + window), keeping what the previous window drew. */
static void slide_noise(svc_host *h, int64_t ga) {
    svc_stream *s = h->stream;
    int64_t W = s->window, hop = h->model.hop, C = h->model.inter_channels, H = h->model.n_harmonics;
    uint64_t seed = h->opt.seed;
    int64_t shift = s->noise_start < 0 ? W : ga - s->noise_start;
    if (shift == 0) return;
    if (shift < 0 || shift >= W) { /* nothing reusable */
        svc_noise_prior(seed, 0, ga, ga + W, (int)C, s->prior);
        svc_noise_sine(seed, 0, ga, ga + W, (int)hop, (int)H, s->sine);
    } else {
        int64_t keep = W - shift;
        for (int64_t c = 0; c < C; c++) memmove(s->prior + c * W, s->prior + c * W + shift, (size_t)keep * sizeof(float));
        svc_noise_prior(seed, 0, ga + keep, ga + W, (int)C, s->prior_tmp); /* [C, shift] */
        for (int64_t c = 0; c < C; c++)
            memcpy(s->prior + c * W + keep, s->prior_tmp + c * shift, (size_t)shift * sizeof(float));
        memmove(s->sine, s->sine + shift * hop * H, (size_t)(keep * hop * H) * sizeof(float));
        svc_noise_sine(seed, 0, ga + keep, ga + W, (int)hop, (int)H, s->sine + keep * hop * H);
    }
    s->noise_start = ga;
}

/* Run the graph over the window ending at the newest complete frame; emit frames [done, k1), if any (at the
 * start of a stream the first blocks only fill the look-ahead). */
static svc_status advance(svc_host *h, int64_t k1) {
    svc_stream *s = h->stream;
    const svc_model_info *m = &h->model;
    int64_t hop = m->hop, fe = s->n_in / hop, ga = fe - s->window;
    if (ga != s->phase_frame)
        return svc_fail(h, SVC_ERR_RUNTIME, "stream state out of step: window starts at frame %lld, phase is for %lld",
                        (long long)ga, (long long)s->phase_frame);
    int64_t next_ga = (s->n_in + s->block) / hop - s->window;
    const float *audio = s->inp + (ga * hop - s->inp_start);
    if (svc_resample(audio, s->window * hop, m->sampling_rate, m->encoder_rate, s->wav16k))
        return svc_fail(h, SVC_ERR_RUNTIME, "soxr could not resample the window to %d Hz", m->encoder_rate);
    slide_noise(h, ga - s->origin);
    svc_window w = {.wav16k = s->wav16k, .n16 = s->n16, .audio = audio, .frames = s->window,
                    .noise_frame = ga - s->origin,
                    .stream = 0, .phase = s->phase, .state_frame = next_ga - ga, .decode_from = s->decode_from,
                    .out_audio = s->piece,
                    .prior = s->prior, .sine = s->sine};
    svc_status rc = svc_run_window(h, &w);
    if (rc) return rc;
    s->phase_frame = next_ga;
    if (k1 <= s->done) return SVC_OK;
    /* _emit: the piece for frames [done, k1), crossfaded over the fade before the join */
    int64_t base = (ga + s->decode_from) * hop, fade = s->fade, lo = s->done * hop - fade, hi = k1 * hop - fade;
    int64_t len = hi - lo;
    if (lo < base)
        return svc_fail(h, SVC_ERR_RUNTIME, "stream: the decoder starts at sample %lld, after the crossfade at %lld",
                        (long long)base, (long long)lo);
    if (s->fifo_len + len > s->fifo_cap)
        return svc_fail(h, SVC_ERR_RUNTIME, "stream output buffer overflow (%lld + %lld samples)",
                        (long long)s->fifo_len, (long long)len);
    float *dst = s->fifo + s->fifo_len;
    const float *src = s->piece + (lo - base);
    memcpy(dst, src, (size_t)len * sizeof(float));
    if (fade) {
        for (int64_t j = 0; j < fade && j < len; j++) dst[j] = s->tail[j] + src[j] * s->ramp[j];
        const float *next = s->piece + (hi - base);
        for (int64_t j = 0; j < fade; j++) s->tail[j] = next[j] * (1.0f - s->ramp[j]);
    }
    s->fifo_len += len;
    s->done = k1;
    return SVC_OK;
}

svc_status svc_stream_process(svc_host *h, const float *in, float *out) {
    svc_stream *s = h->stream;
    int64_t hop = h->model.hop, block = s->block, bad = 0;
    if (s->inp_len + block > s->inp_cap) return svc_fail(h, SVC_ERR_RUNTIME, "stream input buffer overflow");
    float *dst = s->inp + s->inp_len;
    for (int64_t j = 0; j < block; j++) {
        float v = in[j];
        if (!isfinite(v)) v = 0.0f, bad++;
        dst[j] = v;
    }
    s->inp_len += block;
    s->n_in += block;
    int64_t k1 = (s->n_in - s->lookahead * hop) / hop;
    svc_status rc = advance(h, k1); /* one run per block, always */
    int64_t drop = s->inp_len - (s->window + 2) * hop - block;
    if (drop > 0) {
        memmove(s->inp, s->inp + drop, (size_t)(s->inp_len - drop) * sizeof(float));
        s->inp_len -= drop;
        s->inp_start += drop;
    }
    int64_t take = s->fifo_len < block ? s->fifo_len : block;
    memcpy(out, s->fifo, (size_t)take * sizeof(float));
    if (take < block) memset(out + take, 0, (size_t)(block - take) * sizeof(float));
    memmove(s->fifo, s->fifo + take, (size_t)(s->fifo_len - take) * sizeof(float));
    s->fifo_len -= take;
    if (rc) return rc;
    if (bad)
        return svc_fail(h, SVC_ERR_INPUT, "the block held %lld non-finite samples (NaN or Inf); they were converted as 0",
                        (long long)bad);
    return SVC_OK;
}
