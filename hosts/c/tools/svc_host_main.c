/* svc-host: convert a file with a bundle through libsvchost (no Python).
 *
 *   svc-host convert IN OUT --bundle DIR [--speaker NAME] [--transpose K] [--seed N] [--noise-scale X]
 *                    [--threads N] [--max-window S] [--context-seconds S] [--block-ms MS]
 *                    [--subtype pcm16|float]
 *   svc-host info --bundle DIR
 *
 * Decoding mirrors svc_runtime/audio/decode.py (mono mix, non-finite and length checks, peaks above full
 * scale scaled down), writing svc_runtime/audio/write.py (WAV, PCM 16 by default, clipped to [-1, 1]).
 * --block-ms streams the file through the block API (svc_host_process_block) instead of converting it
 * whole; the output is the stream with its delay removed, as long as the input at the model rate. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sndfile.h>

#include "svc_host.h"

#define MIN_DURATION_S 0.1

static int usage(void) {
    fprintf(stderr,
            "usage: svc-host convert IN OUT --bundle DIR [--speaker NAME] [--transpose K] [--seed N]\n"
            "                [--noise-scale X] [--threads N] [--max-window S] [--context-seconds S]\n"
            "                [--block-ms MS] [--subtype pcm16|float]\n"
            "       svc-host info --bundle DIR\n");
    return 2;
}

/* Decode `path` to mono float32 like decode_audio; returns NULL (message printed) on failure. */
static float *decode(const char *path, int64_t *n_out, int *rate_out) {
    struct stat st;
    if (stat(path, &st) != 0) return fprintf(stderr, "%s: file does not exist\n", path), NULL;
    if (!S_ISREG(st.st_mode)) return fprintf(stderr, "%s: not a regular file\n", path), NULL;
    if (st.st_size == 0) return fprintf(stderr, "%s: file is empty (0 bytes); nothing to convert\n", path), NULL;
    SF_INFO info = {0};
    SNDFILE *f = sf_open(path, SFM_READ, &info);
    if (!f) {
        fprintf(stderr, "%s: not a readable audio file (%s); supported: WAV, FLAC, OGG/Vorbis, MP3 and other formats "
                "libsndfile reads\n", path, sf_strerror(NULL));
        return NULL;
    }
    int ch = info.channels;
    int64_t cap = info.frames > 0 ? info.frames : 1 << 16, n = 0, bad = 0;
    float *mono = malloc((size_t)cap * sizeof(float));
    float *block = malloc((size_t)(1 << 14) * (size_t)ch * sizeof(float));
    sf_count_t got;
    while (mono && block && (got = sf_readf_float(f, block, 1 << 14)) > 0) {
        if (n + got > cap) {
            cap = 2 * (n + got);
            float *grown = realloc(mono, (size_t)cap * sizeof(float));
            if (!grown) break;
            mono = grown;
        }
        for (sf_count_t i = 0; i < got; i++) {
            double sum = 0.0;
            for (int c = 0; c < ch; c++) {
                float v = block[i * ch + c];
                bad += !isfinite(v);
                sum += v;
            }
            mono[n + i] = ch == 1 ? block[i] : (float)(sum / ch);
        }
        n += got;
    }
    sf_close(f);
    free(block);
    if (!mono) return fprintf(stderr, "%s: out of memory\n", path), NULL;
    const char *why = NULL;
    char msg[256];
    if (n == 0) why = "contains no audio samples (0 frames); nothing to convert";
    else if (bad) snprintf(msg, sizeof msg, "contains %lld non-finite samples (NaN or Inf); repair or re-export the file",
                           (long long)bad), why = msg;
    else if ((double)n / info.samplerate < MIN_DURATION_S)
        snprintf(msg, sizeof msg, "too short: %.0f ms; the minimum is %.0f ms (a few content-encoder and F0 frames)",
                 1000.0 * n / info.samplerate, MIN_DURATION_S * 1000), why = msg;
    if (why) {
        fprintf(stderr, "%s: %s\n", path, why);
        free(mono);
        return NULL;
    }
    float hi = mono[0], lo = mono[0];
    for (int64_t i = 1; i < n; i++) hi = mono[i] > hi ? mono[i] : hi, lo = mono[i] < lo ? mono[i] : lo;
    double peak = hi > -lo ? hi : -lo;
    if (peak > 1.0) { /* limit_peak: scale instead of clipping */
        float gain = (float)(1.0 / peak);
        for (int64_t i = 0; i < n; i++) mono[i] *= gain;
        fprintf(stderr, "%s: peak %.2f above full scale; scaled by %.3f\n", path, peak, (double)gain);
    }
    *n_out = n;
    *rate_out = info.samplerate;
    return mono;
}

/* PCM 16 as svc-run writes it: soundfile's libsndfile (1.2.2) turns a float x in [-1, 1] into
 * floor(x * 32768) clipped to [-32768, 32767]; Debian's 1.2.0 rounds x * 32767 instead, so the samples are
 * converted here and written as shorts, and the files are byte-identical whichever libsndfile is installed. */
static short to_pcm16(float x) {
    double v = floor((double)x * 32768.0);
    return (short)(v > 32767.0 ? 32767.0 : (v < -32768.0 ? -32768.0 : v));
}

static int write_wav(const char *path, const float *x, int64_t n, int rate, int pcm16) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.partial", path);
    SF_INFO info = {.samplerate = rate, .channels = 1, .format = SF_FORMAT_WAV | (pcm16 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT)};
    SNDFILE *f = sf_open(tmp, SFM_WRITE, &info);
    if (!f) return fprintf(stderr, "%s: cannot write (%s)\n", path, sf_strerror(NULL)), 1;
    float block[4096];
    short pcm[4096];
    for (int64_t i = 0; i < n; i += 4096) {
        int64_t k = n - i < 4096 ? n - i : 4096;
        for (int64_t j = 0; j < k; j++) block[j] = x[i + j] > 1.0f ? 1.0f : (x[i + j] < -1.0f ? -1.0f : x[i + j]);
        for (int64_t j = 0; pcm16 && j < k; j++) pcm[j] = to_pcm16(block[j]);
        if ((pcm16 ? sf_writef_short(f, pcm, k) : sf_writef_float(f, block, k)) != k) {
            sf_close(f);
            remove(tmp);
            return fprintf(stderr, "%s: write failed\n", path), 1;
        }
    }
    sf_close(f);
    if (rename(tmp, path) != 0) return fprintf(stderr, "%s: cannot rename the finished file into place\n", path), 1;
    return 0;
}

/* Resample to the model rate and stream through the block API; out gets n_x samples (delay removed). */
static int stream_file(svc_host *h, const float *in, int64_t n, int rate, float *out, int64_t n_x) {
    int sr = svc_host_sample_rate(h);
    int64_t block = svc_host_block_size(h), delay = svc_host_latency_samples(h) - block;
    float *x = (float *)in;
    if (rate != sr) { /* the whole recording to the model rate first, as svc_host_convert does */
        x = malloc((size_t)(n_x > 0 ? n_x : 1) * sizeof(float));
        if (!x || svc_host_resample(in, n, rate, sr, x) != SVC_OK) {
            fprintf(stderr, "svc-host: %s\n", x ? svc_host_last_error(NULL) : "out of memory");
            free(x);
            return 1;
        }
        n = n_x;
    }
    int64_t total = n_x + delay;
    float *buf_in = calloc((size_t)block, sizeof(float)), *buf_out = malloc((size_t)block * sizeof(float));
    int rc = 0;
    for (int64_t pos = 0; pos < total && !rc; pos += block) {
        for (int64_t j = 0; j < block; j++) buf_in[j] = pos + j < n ? x[pos + j] : 0.0f;
        svc_status st = svc_host_process_block(h, buf_in, buf_out, block);
        if (st != SVC_OK && st != SVC_ERR_INPUT) {
            fprintf(stderr, "svc-host: %s\n", svc_host_last_error(h));
            rc = 1;
        }
        for (int64_t j = 0; j < block; j++) {
            int64_t t = pos + j - delay;
            if (t >= 0 && t < n_x) out[t] = buf_out[j];
        }
    }
    free(buf_in);
    free(buf_out);
    if (x != in) free(x);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) return usage() - 2;
    const char *cmd = argv[1], *in_path = NULL, *out_path = NULL, *bundle = NULL, *speaker = NULL;
    double transpose = 0, noise_scale = 0.4, block_ms = 0, max_window = 30, context = 1.0;
    long long seed = 52468, threads = 0;
    int pcm16 = 1;
    int positional = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bundle") || !strcmp(a, "-m")) bundle = v, i++;
        else if (!strcmp(a, "--speaker") || !strcmp(a, "-s")) speaker = v, i++;
        else if (!strcmp(a, "--transpose") || !strcmp(a, "-t")) transpose = v ? atof(v) : 0, i++;
        else if (!strcmp(a, "--seed")) seed = v ? atoll(v) : 0, i++;
        else if (!strcmp(a, "--noise-scale")) noise_scale = v ? atof(v) : 0, i++;
        else if (!strcmp(a, "--threads")) threads = v ? atoll(v) : 0, i++;
        else if (!strcmp(a, "--block-ms")) block_ms = v ? atof(v) : 0, i++;
        else if (!strcmp(a, "--max-window")) max_window = v ? atof(v) : 0, i++;
        else if (!strcmp(a, "--context-seconds")) context = v ? atof(v) : 0, i++;
        else if (!strcmp(a, "--subtype")) {
            if (!v || (strcmp(v, "pcm16") && strcmp(v, "float"))) return usage();
            pcm16 = !strcmp(v, "pcm16"), i++;
        } else if (a[0] == '-') {
            fprintf(stderr, "svc-host: unknown option %s\n", a);
            return usage();
        } else if (positional == 0) in_path = a, positional++;
        else if (positional == 1) out_path = a, positional++;
        else return usage();
        if (i >= argc) return usage();
    }
    if (!bundle) return usage();
    char options[1024], speaker_json[600] = "";
    if (speaker) {
        int numeric = speaker[0] != 0;
        for (const char *p = speaker; *p; p++) numeric &= *p >= '0' && *p <= '9';
        char escaped[512];
        size_t k = 0;
        for (const char *p = speaker; *p && k + 2 < sizeof escaped; p++) {
            if (*p == '"' || *p == '\\') escaped[k++] = '\\';
            escaped[k++] = *p;
        }
        escaped[k] = 0;
        snprintf(speaker_json, sizeof speaker_json, numeric ? "\"speaker\": %s, " : "\"speaker\": \"%s\", ", escaped);
    }
    if (!strcmp(cmd, "info")) {
        svc_host *h = NULL;
        if (svc_host_open(bundle, speaker_json[0] ? NULL : "{\"speaker\": 0}", &h) != SVC_OK) {
            fprintf(stderr, "svc-host: %s\n", svc_host_last_error(NULL));
            return 1;
        }
        printf("sample_rate %d\nspeakers", svc_host_sample_rate(h));
        for (int i = 0; i < svc_host_speaker_count(h); i++) printf(" %s", svc_host_speaker_name(h, i));
        printf("\n");
        svc_host_close(h);
        return 0;
    }
    if (strcmp(cmd, "convert") || !in_path || !out_path) return usage();
    int64_t n = 0;
    int rate = 0;
    float *in = decode(in_path, &n, &rate);
    if (!in) return 1;
    /* the block size is known only once the model rate is: open once to read it when streaming */
    int model_rate = 0;
    if (block_ms > 0) {
        svc_host *probe = NULL;
        snprintf(options, sizeof options, "{%s\"seed\": %lld}", speaker_json, seed);
        if (svc_host_open(bundle, options, &probe) != SVC_OK) {
            fprintf(stderr, "svc-host: %s\n", svc_host_last_error(NULL));
            free(in);
            return 1;
        }
        model_rate = svc_host_sample_rate(probe);
        svc_host_close(probe);
    }
    long long block = block_ms > 0 ? (long long)floor(block_ms * model_rate / 1000.0 + 0.5) : 0;
    snprintf(options, sizeof options,
             "{%s\"transpose\": %.17g, \"seed\": %lld, \"noise_scale\": %.17g, \"threads\": %lld, \"block_size\": %lld, "
             "\"max_window_seconds\": %.17g, \"context_seconds\": %.17g}",
             speaker_json, transpose, seed, noise_scale, threads, block, max_window, context);
    svc_host *h = NULL;
    if (svc_host_open(bundle, options, &h) != SVC_OK) {
        fprintf(stderr, "svc-host: %s\n", svc_host_last_error(NULL));
        free(in);
        return 1;
    }
    int64_t n_x = svc_host_output_length(h, n, rate);
    float *out = calloc((size_t)n_x, sizeof(float));
    int rc = 0;
    if (!out) {
        fprintf(stderr, "svc-host: out of memory\n");
        rc = 1;
    } else if (block > 0) {
        rc = stream_file(h, in, n, rate, out, n_x);
    } else if (svc_host_convert(h, in, n, rate, out) != SVC_OK) {
        fprintf(stderr, "svc-host: %s: %s\n", in_path, svc_host_last_error(h));
        rc = 1;
    }
    if (!rc) rc = write_wav(out_path, out, n_x, svc_host_sample_rate(h), pcm16);
    svc_host_close(h);
    free(in);
    free(out);
    return rc;
}
