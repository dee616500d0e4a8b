/* Signal functions of the whole-file path, each a transcription of its svc_runtime function
 * (named in svc_internal.h); the tests compare them with the Python ones on the same inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <soxr.h>

#include "svc_internal.h"

double svc_round_half_even(double x) {
    double r = floor(x + 0.5);
    if (r - x == 0.5 && fmod(r, 2.0) != 0.0) r -= 1.0; /* a tie: Python rounds to the even neighbour */
    return r;
}

int64_t svc_resampled_length(int64_t n, int in_rate, int out_rate) {
    return (n * (int64_t)out_rate + in_rate / 2) / in_rate;
}

/* ------------------------------------------------------------------ resampling (audio/resample.py) */

#define RESAMPLE_CHUNK 48000

int svc_resample(const float *in, int64_t n, int in_rate, int out_rate, float *out) {
    int64_t want = svc_resampled_length(n, in_rate, out_rate);
    if (in_rate == out_rate) {
        memmove(out, in, (size_t)n * sizeof(float));
        return 0;
    }
    soxr_error_t err = NULL;
    soxr_io_spec_t io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, 0);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_t s = soxr_create((double)in_rate, (double)out_rate, 1, &err, &io, &q, &rt);
    if (!s || err) return -1;
    int64_t written = 0, pos = 0;
    float scratch[4096];
    /* Feed the input in chunks, then flush; keep the first `want` output samples (fit_length). */
    for (;;) {
        int last = pos >= n;
        size_t ilen = last ? 0 : (size_t)(n - pos < RESAMPLE_CHUNK ? n - pos : RESAMPLE_CHUNK);
        size_t idone = 0, odone = 0;
        do {
            err = soxr_process(s, last ? NULL : in + pos, ilen, &idone, scratch, sizeof scratch / sizeof *scratch,
                               &odone);
            if (err) {
                soxr_delete(s);
                return -1;
            }
            int64_t take = written + (int64_t)odone <= want ? (int64_t)odone : want - written;
            if (take > 0) memcpy(out + written, scratch, (size_t)take * sizeof(float));
            if (take > 0) written += take;
            if (!last) {
                pos += (int64_t)idone;
                ilen -= idone;
                if (ilen == 0) break;
            }
        } while (odone > 0 || (!last && ilen > 0));
        if (last) break;
    }
    soxr_delete(s);
    if (written < want) memset(out + written, 0, (size_t)(want - written) * sizeof(float));
    return 0;
}

/* ------------------------------------------------------------------ DC removal (audio/dsp.py) */

/* dsp.remove_dc computes, twice, `_moving_average`: a centred boxcar of odd `width` over the signal with numpy
 * "reflect" padding (half + 1 values before, half after), as differences of a sequential float64 cumulative sum.
 * Here both passes stream: each keeps the last width + 1 sums, the second pass keeps the first half + 2 and the
 * last half + 2 outputs of the first for its own reflections, so the scratch is O(width), not O(n), and every
 * value is the one numpy's whole-array cumsum gives. */
typedef struct {
    double *ring; /* [width + 1] cumulative sums */
    double sum;
    int64_t width, pushed;
} boxcar;

/* Push one padded value; returns 1 and sets *mean once the first `width` values are in. */
static int boxcar_push(boxcar *b, double v, double *mean) {
    b->sum += v;
    b->ring[b->pushed % (b->width + 1)] = b->sum;
    int ready = b->pushed >= b->width;
    if (ready) *mean = (b->sum - b->ring[(b->pushed - b->width) % (b->width + 1)]) / (double)b->width;
    b->pushed++;
    return ready;
}

typedef struct {
    const float *x;
    int64_t n, half, left, next_padded; /* pass 1 walks the reflect-padded x */
    boxcar box;
} first_pass;

/* The next output of the first moving average (outputs come in order 0, 1, ..., n - 1). */
static double first_next(first_pass *p) {
    double mean = 0.0;
    for (;;) {
        int64_t j = p->next_padded++, n = p->n;
        double v = j < p->left ? p->x[p->left - j] : (j < p->left + n ? p->x[j - p->left] : p->x[n - 2 - (j - p->left - n)]);
        if (boxcar_push(&p->box, v, &mean)) return mean;
    }
}

int svc_remove_dc(const float *in, int64_t n, int sample_rate, double cutoff_hz, float *out) {
    int64_t width = (int64_t)svc_round_half_even(sample_rate / cutoff_hz) | 1;
    if (width < 3) width = 3;
    if (n <= width) { /* short input: subtract the mean */
        double mean = 0.0;
        for (int64_t i = 0; i < n; i++) mean += in[i];
        float m = n ? (float)(mean / n) : 0.0f;
        for (int64_t i = 0; i < n; i++) out[i] = in[i] - m;
        return 0;
    }
    int64_t half = width / 2, left = half + 1;
    double *ring1 = malloc((size_t)(width + 1) * sizeof(double)), *ring2 = malloc((size_t)(width + 1) * sizeof(double));
    double *head = malloc((size_t)(left + 1) * sizeof(double)), *tail = malloc((size_t)(half + 2) * sizeof(double));
    if (!ring1 || !ring2 || !head || !tail) {
        free(ring1), free(ring2), free(head), free(tail);
        return -1;
    }
    first_pass p1 = {.x = in, .n = n, .half = half, .left = left, .box = {.ring = ring1, .width = width}};
    boxcar b2 = {.ring = ring2, .width = width};
    int64_t written = 0;
    double low;
    /* out[k] is written once the second pass emits its value: by then the first pass has read in[k] for the last
     * time (its reads run ahead, and the right-edge reflection is read before the last half + 1 are written),
     * so `out` may be `in`. */
#define PUSH2(v)                                                              \
    if (boxcar_push(&b2, (v), &low)) {                                        \
        out[written] = (float)((double)in[written] - low);                    \
        written++;                                                            \
    }
    for (int64_t m = 0; m <= left; m++) head[m] = first_next(&p1); /* y1[0 .. left]: the left reflection */
    for (int64_t j = 0; j < left; j++) PUSH2(head[left - j]);
    for (int64_t m = 0; m < n; m++) {
        double y = m <= left ? head[m] : first_next(&p1);
        tail[m % (half + 2)] = y;
        PUSH2(y);
    }
    for (int64_t k = 0; k < half; k++) PUSH2(tail[(n - 2 - k) % (half + 2)]);
#undef PUSH2
    free(ring1), free(ring2), free(head), free(tail);
    return written == n ? 0 : -1;
}

/* ------------------------------------------------------------------ slicer (signal/slicer.py) */

/* frame_rms: centred frames of `frame_length` every `hop` with zero padding, from sequential float64 sums. */
static double *frame_rms(const float *x, int64_t n, int64_t frame_length, int64_t hop, int64_t *n_frames_out) {
    int64_t half = frame_length / 2;
    int64_t span = n + 2 * half - frame_length;
    int64_t n_frames = 1 + (span >= 0 ? span / hop : -((-span + hop - 1) / hop));
    *n_frames_out = n_frames > 0 ? n_frames : 0;
    if (n_frames <= 0) return calloc(1, sizeof(double));
    double *rms = malloc((size_t)n_frames * sizeof(double));
    if (!rms) return NULL;
    double s_lo = 0.0, s_hi = 0.0;
    int64_t m_lo = 0, m_hi = 0;
    for (int64_t k = 0; k < n_frames; k++) {
        int64_t start = k * hop;
        int64_t lo = start - half, hi = start + frame_length - half;
        lo = lo < 0 ? 0 : (lo > n ? n : lo);
        hi = hi < 0 ? 0 : (hi > n ? n : hi);
        for (; m_lo < lo; m_lo++) s_lo += (double)x[m_lo] * (double)x[m_lo];
        for (; m_hi < hi; m_hi++) s_hi += (double)x[m_hi] * (double)x[m_hi];
        double power = (s_hi - s_lo) / (double)frame_length;
        rms[k] = sqrt(power > 0.0 ? power : 0.0);
    }
    return rms;
}

/* First index of the minimum of rms[a : b] (b clipped to total), plus a. */
static int64_t argmin_from(const double *rms, int64_t total, int64_t a, int64_t b) {
    if (b > total) b = total;
    int64_t best = a;
    for (int64_t i = a + 1; i < b; i++)
        if (rms[i] < rms[best]) best = i;
    return best;
}

static void push_segment(svc_segment *out, int64_t max_segments, int64_t *count, int64_t start, int64_t end,
                         int silent) {
    if (*count < max_segments) {
        out[*count].start = start;
        out[*count].end = end;
        out[*count].silent = silent;
    }
    (*count)++;
}

int64_t svc_slice_on_silence(const float *x, int64_t n, int sample_rate, double threshold_db, svc_segment *out,
                             int64_t max_segments) {
    const double min_length_ms = 5000, min_interval_ms = 300, hop_ms = 20, max_silence_kept_ms = 5000;
    int64_t hop = (int64_t)svc_round_half_even(sample_rate * hop_ms / 1000);
    double min_interval_f = sample_rate * min_interval_ms / 1000;
    int64_t win = (int64_t)svc_round_half_even(min_interval_f);
    if (4 * hop < win) win = 4 * hop;
    int64_t min_length = (int64_t)svc_round_half_even(sample_rate * min_length_ms / 1000 / (double)hop);
    int64_t min_interval = (int64_t)svc_round_half_even(min_interval_f / (double)hop);
    int64_t max_kept = (int64_t)svc_round_half_even(sample_rate * max_silence_kept_ms / 1000 / (double)hop);
    double threshold = pow(10.0, threshold_db / 20.0);
    int64_t count = 0;
    if (n <= min_length) {
        push_segment(out, max_segments, &count, 0, n, 0);
        return count;
    }
    int64_t total = 0;
    double *rms = frame_rms(x, n, win, hop, &total);
    if (!rms) return -1;
    int64_t cap = 16, n_tags = 0;
    int64_t(*tags)[2] = malloc((size_t)cap * sizeof *tags);
    if (!tags) {
        free(rms);
        return -1;
    }
#define ADD_TAG(A, B)                                                     \
    do {                                                                  \
        if (n_tags == cap) {                                              \
            cap *= 2;                                                     \
            void *grown = realloc(tags, (size_t)cap * sizeof *tags);      \
            if (!grown) {                                                 \
                free(tags);                                               \
                free(rms);                                                \
                return -1;                                                \
            }                                                             \
            tags = grown;                                                 \
        }                                                                 \
        tags[n_tags][0] = (A);                                            \
        tags[n_tags][1] = (B);                                            \
        n_tags++;                                                         \
    } while (0)
    int64_t silence_start = -1, clip_start = 0;
    for (int64_t i = 0; i < total; i++) {
        if (rms[i] < threshold) {
            if (silence_start < 0) silence_start = i;
            continue;
        }
        if (silence_start < 0) continue;
        int leading = silence_start == 0 && i > max_kept;
        int middle = i - silence_start >= min_interval && i - clip_start >= min_length;
        if (!leading && !middle) {
            silence_start = -1;
            continue;
        }
        if (i - silence_start <= max_kept) {
            int64_t pos = argmin_from(rms, total, silence_start, i + 1);
            if (silence_start == 0) ADD_TAG(0, pos);
            else ADD_TAG(pos, pos);
            clip_start = pos;
        } else if (i - silence_start <= max_kept * 2) {
            int64_t pos = argmin_from(rms, total, i - max_kept, silence_start + max_kept + 1);
            int64_t pos_l = argmin_from(rms, total, silence_start, silence_start + max_kept + 1);
            int64_t pos_r = argmin_from(rms, total, i - max_kept, i + 1);
            if (silence_start == 0) {
                ADD_TAG(0, pos_r);
                clip_start = pos_r;
            } else {
                ADD_TAG(pos_l < pos ? pos_l : pos, pos_r > pos ? pos_r : pos);
                clip_start = pos_r > pos ? pos_r : pos;
            }
        } else {
            int64_t pos_l = argmin_from(rms, total, silence_start, silence_start + max_kept + 1);
            int64_t pos_r = argmin_from(rms, total, i - max_kept, i + 1);
            if (silence_start == 0) ADD_TAG(0, pos_r);
            else ADD_TAG(pos_l, pos_r);
            clip_start = pos_r;
        }
        silence_start = -1;
    }
    if (silence_start >= 0 && total - silence_start >= min_interval) {
        int64_t silence_end = silence_start + max_kept < total ? silence_start + max_kept : total;
        int64_t pos = argmin_from(rms, total, silence_start, silence_end + 1);
        ADD_TAG(pos, total + 1);
    }
#undef ADD_TAG
    free(rms);
    if (n_tags == 0) {
        free(tags);
        push_segment(out, max_segments, &count, 0, n, 0);
        return count;
    }
    int64_t cursor = 0;
    for (int64_t t = 0; t < n_tags; t++) {
        int64_t a_s = tags[t][0] * hop < n ? tags[t][0] * hop : n;
        int64_t b_s = tags[t][1] * hop < n ? tags[t][1] * hop : n;
        int64_t lo = a_s > cursor ? a_s : cursor;
        if (a_s > cursor) push_segment(out, max_segments, &count, cursor, a_s, 0);
        if (b_s > lo) push_segment(out, max_segments, &count, lo, b_s, 1);
        if (b_s > cursor) cursor = b_s;
    }
    if (cursor < n) push_segment(out, max_segments, &count, cursor, n, 0);
    free(tags);
    return count;
}

/* ------------------------------------------------------------------ chunks and crossfade (signal/chunking.py) */

int64_t svc_plan_chunks(int64_t n_frames, int64_t window, int64_t context, svc_chunk *out, int64_t max_chunks) {
    if (n_frames <= 0) return 0;
    if (window <= 0 || n_frames <= window) {
        if (max_chunks > 0) out[0] = (svc_chunk){0, n_frames, 0, n_frames};
        return 1;
    }
    int64_t step = window - 2 * context;
    if (step <= 0) return -1;
    int64_t n_starts = (n_frames - window + step - 1) / step + 1; /* range(0, n - window, step) + [n - window] */
    int64_t keep_start = 0;
    for (int64_t i = 0; i < n_starts; i++) {
        int64_t s = i + 1 < n_starts ? i * step : n_frames - window;
        int64_t keep_end = n_frames;
        if (i + 1 < n_starts) {
            int64_t next = i + 2 < n_starts ? (i + 1) * step : n_frames - window;
            keep_end = (next + s + window) / 2;
        }
        if (i < max_chunks) out[i] = (svc_chunk){s, s + window, keep_start, keep_end};
        keep_start = keep_end;
    }
    return n_starts;
}

int svc_place(float *out, int64_t n_out, int64_t seg_start, int64_t seg_end, int64_t seg_pad, int64_t n_seg,
              const float *piece, int64_t piece_start, int64_t piece_len, int64_t keep_start, int64_t keep_end,
              int64_t fade) {
    int64_t half = fade / 2;
    int64_t lo = keep_start > 0 && fade > 0 ? keep_start - half : keep_start;
    int64_t hi = keep_end < n_seg && fade > 0 ? keep_end + (fade - half) : keep_end;
    if (lo < 0) lo = 0;
    if (hi > n_seg) hi = n_seg;
    if (lo < piece_start || hi > piece_start + piece_len) return -1;
    int64_t own_lo = seg_pad, own_hi = seg_pad + (seg_end < n_out ? seg_end : n_out) - seg_start;
    int64_t a = lo > own_lo ? lo : own_lo, z = hi < own_hi ? hi : own_hi;
    int64_t shift = seg_start - seg_pad;
    for (int64_t s = a; s < z; s++) {
        float v = piece[s - piece_start];
        /* crossfade_weights: float32((j + 0.5) / fade); the fade-out multiplies by float32(1 - w) */
        if (fade > 0 && keep_start > 0) {
            int64_t r = keep_start - half;
            if (s >= r && s < r + fade) v *= (float)(((double)(s - r) + 0.5) / (double)fade);
        }
        if (fade > 0 && keep_end < n_seg) {
            int64_t r = keep_end - half;
            if (s >= r && s < r + fade) v *= 1.0f - (float)(((double)(s - r) + 0.5) / (double)fade);
        }
        out[s + shift] += v;
    }
    return 0;
}
