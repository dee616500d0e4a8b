/* svc_host.h's functions: open a bundle (manifest, options, ONNX Runtime session), run the converter
 * graph on one window, and the whole-buffer conversion of svc_runtime/pipeline/convert.py. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "host_state.h"

#define DEFAULT_SEED 52468
#define ENCODER_RATE 16000
#define MIN_SEGMENT_FRAMES 16

static _Thread_local char g_open_error[SVC_ERROR_LEN];

static void vformat(char *dst, const char *fmt, va_list ap) { vsnprintf(dst, SVC_ERROR_LEN, fmt, ap); }

svc_status svc_fail(svc_host *h, svc_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vformat(h ? h->error : g_open_error, fmt, ap);
    va_end(ap);
    return code;
}

int svc_host_abi_version(void) { return SVC_HOST_ABI_VERSION; }

const char *svc_host_last_error(const svc_host *host) { return host ? host->error : g_open_error; }

/* ------------------------------------------------------------------ manifest */

static char *read_text(const char *path, long *size_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)size + 1))) {
        if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        } else {
            buf[size] = 0;
        }
    }
    fclose(f);
    *size_out = size;
    return buf;
}

/* A positive integer field of `obj` (named `where.key` in messages). */
static int manifest_int(svc_host *h, const char *mpath, const cJSON *obj, const char *where, const char *key,
                        int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        svc_fail(h, SVC_ERR_BUNDLE, "%s: %s.%s: required field is missing", mpath, where, key);
        return -1;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble <= 0 ||
        v->valuedouble > 1e9) {
        svc_fail(h, SVC_ERR_BUNDLE, "%s: %s.%s: must be a positive integer", mpath, where, key);
        return -1;
    }
    *out = (int)v->valuedouble;
    return 0;
}

static int manifest_bool(svc_host *h, const char *mpath, const cJSON *obj, const char *where, const char *key,
                         int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || !cJSON_IsBool(v)) {
        svc_fail(h, SVC_ERR_BUNDLE, "%s: %s.%s: %s", mpath, where, key,
                 v ? "expected a boolean" : "required field is missing");
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static svc_status read_manifest(svc_host *h) {
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/manifest.json", h->bundle_dir);
    struct stat st;
    if (stat(h->bundle_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return svc_fail(h, SVC_ERR_BUNDLE, "%s: bundle folder not found (svc-export writes one)", h->bundle_dir);
    long size = 0;
    char *text = read_text(mpath, &size);
    if (!text)
        return svc_fail(h, SVC_ERR_BUNDLE, "%s: not found; a bundle folder holds a manifest.json written by svc-export",
                        mpath);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        long at = end ? (long)(end - text) : -1;
        free(text);
        return svc_fail(h, SVC_ERR_BUNDLE, "%s: not valid JSON (parse error near byte %ld); re-export the bundle",
                        mpath, at);
    }
    free(text);
    svc_status rc = SVC_ERR_BUNDLE;
    svc_model_info *m = &h->model;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "schema_version");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(root, "speech_encoder");
    const cJSON *graphs = cJSON_GetObjectItemCaseSensitive(root, "graphs");
    if (!cJSON_IsObject(root)) {
        svc_fail(h, rc, "%s: expected a JSON object", mpath);
        goto done;
    }
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "svc-bundle") != 0) {
        svc_fail(h, rc, "%s: format: expected 'svc-bundle' (not an svc bundle manifest)", mpath);
        goto done;
    }
    if (!cJSON_IsNumber(ver) || ver->valueint != 3) {
        char had[32] = "none";
        if (cJSON_IsNumber(ver)) snprintf(had, sizeof had, "%d", ver->valueint);
        svc_fail(h, rc,
                 "%s: schema_version: this host reads version 3 (a converter graph with int32 phase limbs), the bundle "
                 "has %s; re-export the bundle with a matching svc-export",
                 mpath, had);
        goto done;
    }
    if (!cJSON_IsObject(model)) {
        svc_fail(h, rc, "%s: model: required field is missing", mpath);
        goto done;
    }
    if (manifest_int(h, mpath, model, "model", "sampling_rate", &m->sampling_rate) ||
        manifest_int(h, mpath, model, "model", "hop_length", &m->hop) ||
        manifest_int(h, mpath, model, "model", "ssl_dim", &m->ssl_dim) ||
        manifest_int(h, mpath, model, "model", "inter_channels", &m->inter_channels) ||
        manifest_int(h, mpath, model, "model", "n_harmonics", &m->n_harmonics) ||
        manifest_int(h, mpath, model, "model", "n_speakers", &m->n_speakers) ||
        manifest_bool(h, mpath, model, "model", "vol_embedding", &m->vol_embedding) ||
        manifest_bool(h, mpath, model, "model", "use_automatic_f0_prediction", &m->has_f0_predictor))
        goto done;
    m->encoder_rate = ENCODER_RATE;
    if (cJSON_IsObject(enc) && manifest_int(h, mpath, enc, "speech_encoder", "sampling_rate", &m->encoder_rate))
        goto done;
    const cJSON *speakers = cJSON_GetObjectItemCaseSensitive(model, "speakers");
    if (!cJSON_IsObject(speakers)) {
        svc_fail(h, rc, "%s: model.speakers: required field is missing", mpath);
        goto done;
    }
    int n_named = cJSON_GetArraySize(speakers);
    m->speaker_names = calloc((size_t)n_named + 1, sizeof(char *));
    m->speaker_ids = calloc((size_t)n_named + 1, sizeof(int));
    if (!m->speaker_names || !m->speaker_ids) {
        rc = svc_fail(h, SVC_ERR_MEMORY, "out of memory reading %s", mpath);
        goto done;
    }
    const cJSON *sp;
    cJSON_ArrayForEach(sp, speakers) {
        if (!cJSON_IsNumber(sp) || sp->valuedouble != floor(sp->valuedouble) || sp->valueint < 0 ||
            sp->valueint >= m->n_speakers) {
            svc_fail(h, rc, "%s: model.speakers.%s: id must be an integer in [0, %d)", mpath, sp->string,
                     m->n_speakers);
            goto done;
        }
        m->speaker_names[m->n_named] = strdup(sp->string);
        m->speaker_ids[m->n_named++] = sp->valueint;
    }
    if (!cJSON_IsObject(graphs)) {
        svc_fail(h, rc, "%s: graphs: required field is missing", mpath);
        goto done;
    }
    const cJSON *g, *chosen = NULL;
    cJSON_ArrayForEach(g, graphs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(g, "role");
        const cJSON *prec = cJSON_GetObjectItemCaseSensitive(g, "precision");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "converter") == 0 &&
            (!chosen || (cJSON_IsString(prec) && strcmp(prec->valuestring, "fp32") == 0)))
            chosen = g;
    }
    if (!chosen) {
        svc_fail(h, rc, "%s: the bundle has no converter graph (role 'converter'); re-export it with svc-export",
                 h->bundle_dir);
        goto done;
    }
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(chosen, "file");
    if (!cJSON_IsString(file) || !file->valuestring[0] || strchr(file->valuestring, '/') ||
        strchr(file->valuestring, '\\')) {
        svc_fail(h, rc, "%s: graphs.%s.file: must be a plain file name inside the bundle", mpath, chosen->string);
        goto done;
    }
    snprintf(m->converter_file, sizeof m->converter_file, "%s/%s", h->bundle_dir, file->valuestring);
    if (stat(m->converter_file, &st) != 0) {
        svc_fail(h, rc, "%s: graph %s listed in manifest.json is missing; re-export the bundle", m->converter_file,
                 chosen->string);
        goto done;
    }
    rc = SVC_OK;
done:
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ options */

static const char *const OPTION_KEYS[] = {
    "speaker", "transpose", "seed", "noise_scale", "threads", "slice_db", "pad_seconds", "max_window_seconds", "clip_seconds",
    "context_seconds", "crossfade_seconds", "remove_dc", "block_size", "stream_context_seconds",
    "stream_generator_context_seconds", "stream_crossfade_seconds", "lookahead_seconds", NULL};

static int number_option(svc_host *h, const cJSON *root, const char *key, double lo, double hi, const char *rule,
                         double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) {
        svc_fail(h, SVC_ERR_OPTIONS, "options: %s must be a number", key);
        return -1;
    }
    if (!(v->valuedouble >= lo && v->valuedouble <= hi)) {
        svc_fail(h, SVC_ERR_OPTIONS, "options: %s", rule);
        return -1;
    }
    *out = v->valuedouble;
    return 0;
}

/* Python's repr of the sorted speaker names: ['a', 'b']. */
static void speaker_list(const svc_model_info *m, char *dst, size_t cap) {
    const char **names = malloc(sizeof(char *) * ((size_t)m->n_named + 1));
    size_t used = 0;
    if (!names) {
        snprintf(dst, cap, "[...]");
        return;
    }
    for (int i = 0; i < m->n_named; i++) names[i] = m->speaker_names[i];
    for (int i = 1; i < m->n_named; i++) /* insertion sort: a few names */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    used += (size_t)snprintf(dst + used, cap - used, "[");
    for (int i = 0; i < m->n_named && used < cap; i++)
        used += (size_t)snprintf(dst + used, cap - used, "%s'%s'", i ? ", " : "", names[i]);
    if (used < cap) snprintf(dst + used, cap - used, "]");
    free(names);
}

static svc_status parse_options(svc_host *h, const char *json) {
    svc_options *o = &h->opt;
    *o = (svc_options){.speaker_id = -1, .transpose = 0, .noise_scale = 0.4, .slice_db = -40, .pad_seconds = 0.5,
                       .max_window_seconds = 30, .context_seconds = 1.0, .crossfade_seconds = 0.05,
                       .seed = DEFAULT_SEED, .threads = 0, .remove_dc = 1, .block_size = 0,
                       .stream_context_seconds = 0.5,
                       .stream_generator_context_seconds = 0.03, .stream_crossfade_seconds = 0.005, .lookahead_seconds = 0.04};
    cJSON *root = NULL;
    const cJSON *speaker = NULL;
    if (json && json[0]) {
        const char *end = NULL;
        root = cJSON_ParseWithOpts(json, &end, 1);
        if (!root)
            return svc_fail(h, SVC_ERR_OPTIONS, "options: not valid JSON (parse error at character %ld of %zu)",
                            end ? (long)(end - json) : -1L, strlen(json));
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return svc_fail(h, SVC_ERR_OPTIONS, "options: expected a JSON object such as {\"speaker\": \"name\"}");
        }
        const cJSON *item;
        cJSON_ArrayForEach(item, root) {
            int known = 0;
            for (const char *const *k = OPTION_KEYS; *k; k++) known |= strcmp(*k, item->string) == 0;
            if (!known) {
                char keys[1024];
                size_t used = 0;
                for (const char *const *k = OPTION_KEYS; *k && used < sizeof keys; k++)
                    used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s", k == OPTION_KEYS ? "" : ", ", *k);
                svc_fail(h, SVC_ERR_OPTIONS, "options: unknown key '%s'; known keys: %s", item->string, keys);
                cJSON_Delete(root);
                return SVC_ERR_OPTIONS;
            }
        }
        double seed = DEFAULT_SEED, threads = 0, block = 0;
        const cJSON *rdc = cJSON_GetObjectItemCaseSensitive(root, "remove_dc");
        if (number_option(h, root, "transpose", -48, 48, "transpose must be within +-48 semitones", &o->transpose) ||
            number_option(h, root, "noise_scale", 0, 2, "noise scale must be in [0, 2]", &o->noise_scale) ||
            number_option(h, root, "seed", 0, 18446744073709549568.0, "seed must be an integer >= 0", &seed) ||
            number_option(h, root, "threads", 0, 1024, "threads must be an integer in [0, 1024]", &threads) ||
            number_option(h, root, "slice_db", -100, 0, "slice threshold must be in [-100, 0] dB", &o->slice_db) ||
            number_option(h, root, "pad_seconds", 0, 60, "pad seconds must be in [0, 60]", &o->pad_seconds) ||
            number_option(h, root, "max_window_seconds", 2, 3600, "max window must be at least 2 s",
                          &o->max_window_seconds) ||
            number_option(h, root, "clip_seconds", 0, 3600, "clip seconds must be >= 0 (0 = whole slices)",
                          &o->clip_seconds) ||
            number_option(h, root, "context_seconds", 0, 60, "context seconds must be in [0, 60]",
                          &o->context_seconds) ||
            number_option(h, root, "crossfade_seconds", 0, 60, "crossfade seconds must be >= 0",
                          &o->crossfade_seconds) ||
            number_option(h, root, "block_size", 0, 1e7, "block_size must be a sample count >= 0", &block) ||
            number_option(h, root, "stream_context_seconds", 0, 60, "stream context must be >= 0 s",
                          &o->stream_context_seconds) ||
            number_option(h, root, "stream_generator_context_seconds", 0, 60,
                          "stream generator context must be >= 0 s", &o->stream_generator_context_seconds) ||
            number_option(h, root, "stream_crossfade_seconds", 0, 1, "stream crossfade must be >= 0",
                          &o->stream_crossfade_seconds) ||
            number_option(h, root, "lookahead_seconds", 1e-9, 0.04, "look-ahead must be in (0, 40 ms]",
                          &o->lookahead_seconds)) {
            cJSON_Delete(root);
            return SVC_ERR_OPTIONS;
        }
        if (seed != floor(seed) || threads != floor(threads) || block != floor(block)) {
            cJSON_Delete(root);
            return svc_fail(h, SVC_ERR_OPTIONS, "options: seed, threads and block_size must be whole numbers");
        }
        if (rdc && !cJSON_IsBool(rdc)) {
            cJSON_Delete(root);
            return svc_fail(h, SVC_ERR_OPTIONS, "options: remove_dc must be true or false");
        }
        if (o->crossfade_seconds > o->context_seconds) {
            cJSON_Delete(root);
            return svc_fail(h, SVC_ERR_OPTIONS, "options: crossfade must not exceed the context");
        }
        o->remove_dc = rdc ? cJSON_IsTrue(rdc) : 1;
        o->seed = (uint64_t)seed;
        o->threads = (int)threads;
        o->block_size = (int64_t)block;
        speaker = cJSON_GetObjectItemCaseSensitive(root, "speaker");
    }
    const svc_model_info *m = &h->model;
    svc_status rc = SVC_OK;
    char names[1024];
    speaker_list(m, names, sizeof names);
    if (!speaker || cJSON_IsNull(speaker)) {
        if (m->n_named != 1) rc = svc_fail(h, SVC_ERR_OPTIONS, "choose a speaker: the bundle has %s", names);
        else o->speaker_id = m->speaker_ids[0];
    } else if (cJSON_IsString(speaker)) {
        for (int i = 0; i < m->n_named; i++)
            if (strcmp(m->speaker_names[i], speaker->valuestring) == 0) o->speaker_id = m->speaker_ids[i];
        if (o->speaker_id < 0)
            rc = svc_fail(h, SVC_ERR_OPTIONS, "unknown speaker '%s'; the bundle has %s", speaker->valuestring, names);
    } else if (cJSON_IsNumber(speaker) && speaker->valuedouble == floor(speaker->valuedouble)) {
        if (speaker->valuedouble < 0 || speaker->valuedouble >= m->n_speakers)
            rc = svc_fail(h, SVC_ERR_OPTIONS, "speaker id %.0f out of range: the model has %d speakers",
                          speaker->valuedouble, m->n_speakers);
        else o->speaker_id = speaker->valueint;
    } else {
        rc = svc_fail(h, SVC_ERR_OPTIONS, "options: speaker must be a name or an integer id");
    }
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------------ ONNX Runtime */

static svc_status ort_check(svc_host *h, OrtStatus *st, const char *what) {
    if (!st) return SVC_OK;
    svc_fail(h, SVC_ERR_RUNTIME, "%s: %s: %s", h->model.converter_file, what, h->ort->GetErrorMessage(st));
    h->ort->ReleaseStatus(st);
    return SVC_ERR_RUNTIME;
}

static svc_status open_session(svc_host *h) {
    const OrtApiBase *base = OrtGetApiBase();
    h->ort = base ? base->GetApi(ORT_API_VERSION) : NULL;
    if (!h->ort)
        return svc_fail(h, SVC_ERR_RUNTIME,
                        "ONNX Runtime %s does not provide C API version %d; use ONNX Runtime 1.%d or later",
                        base ? base->GetVersionString() : "(unknown)", ORT_API_VERSION, ORT_API_VERSION);
    const OrtApi *ort = h->ort;
    OrtSessionOptions *so = NULL;
    svc_status rc = ort_check(h, ort->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "svc-host", &h->env), "CreateEnv");
    if (!rc) rc = ort_check(h, ort->CreateSessionOptions(&so), "CreateSessionOptions");
    if (!rc && h->opt.threads > 0) rc = ort_check(h, ort->SetIntraOpNumThreads(so, h->opt.threads), "threads");
    if (!rc) rc = ort_check(h, ort->SetInterOpNumThreads(so, 1), "threads");
    if (!rc) rc = ort_check(h, ort->SetSessionGraphOptimizationLevel(so, ORT_ENABLE_ALL), "optimization level");
    if (!rc) rc = ort_check(h, ort->CreateSession(h->env, h->model.converter_file, so, &h->session), "load");
    if (so) ort->ReleaseSessionOptions(so);
    if (!rc) rc = ort_check(h, ort->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &h->cpu), "memory info");
    if (rc) return rc;
    OrtAllocator *alloc = NULL;
    rc = ort_check(h, ort->GetAllocatorWithDefaultOptions(&alloc), "allocator");
    if (!rc) rc = ort_check(h, ort->SessionGetInputCount(h->session, &h->n_inputs), "inputs");
    if (!rc && h->n_inputs > SVC_MAX_INPUTS)
        return svc_fail(h, SVC_ERR_BUNDLE, "%s: %zu inputs; a converter graph has at most %d", h->model.converter_file,
                        h->n_inputs, SVC_MAX_INPUTS);
    for (size_t i = 0; !rc && i < h->n_inputs; i++) {
        char *name = NULL;
        rc = ort_check(h, ort->SessionGetInputName(h->session, i, alloc, &name), "input name");
        if (rc) break;
        h->input_names[i] = strdup(name);
        if (!strcmp(name, "decode_from")) h->has_decode_from = 1;
        OrtStatus *freed = ort->AllocatorFree(alloc, name);
        if (freed) ort->ReleaseStatus(freed);
    }
    return rc;
}

svc_status svc_run_window(svc_host *h, const svc_window *w) {
    const OrtApi *ort = h->ort;
    const svc_model_info *m = &h->model;
    int64_t T = w->frames, hop = m->hop, H = m->n_harmonics, C = m->inter_channels, S = m->n_speakers;
    if (T > SVC_PHASE_MAX_FRAMES)
        return svc_fail(h, SVC_ERR_OPTIONS, "a window of %lld frames is longer than the converter's phase accumulator "
                        "allows (%d frames); use a shorter max_window_seconds", (long long)T, SVC_PHASE_MAX_FRAMES);
    float *speaker = calloc((size_t)(T * S), sizeof(float));
    float *own_prior = w->prior ? NULL : malloc((size_t)(C * T) * sizeof(float));
    float *own_sine = w->sine ? NULL : malloc((size_t)(T * hop * H) * sizeof(float));
    float *centres = calloc((size_t)m->ssl_dim, sizeof(float));
    if (!speaker || (!w->prior && !own_prior) || (!w->sine && !own_sine) || !centres) {
        free(speaker), free(own_prior), free(own_sine), free(centres);
        return svc_fail(h, SVC_ERR_MEMORY, "out of memory for a window of %lld frames", (long long)T);
    }
    for (int64_t t = 0; t < T; t++) speaker[t * S + h->opt.speaker_id] = 1.0f;
    if (own_prior) svc_noise_prior(h->opt.seed, w->stream, w->noise_frame, w->noise_frame + T, (int)C, own_prior);
    if (own_sine) svc_noise_sine(h->opt.seed, w->stream, w->noise_frame, w->noise_frame + T, (int)hop, (int)H, own_sine);
    float *prior = own_prior ? own_prior : (float *)w->prior, *sine = own_sine ? own_sine : (float *)w->sine;
    float f0_scale = (float)pow(2.0, h->opt.transpose / 12.0);
    float noise_scale = (float)h->opt.noise_scale, zero = 0.0f;
    int64_t state_frame = w->state_frame, decode_from = w->decode_from;
    OrtValue *inputs[SVC_MAX_INPUTS] = {0};
    svc_status rc = SVC_OK;
    for (size_t i = 0; i < h->n_inputs && !rc; i++) {
        const char *name = h->input_names[i];
        void *data = NULL;
        int64_t shape[3];
        size_t rank = 0, elem = 4;
        ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
#define SHAPE(...)                                  \
    {                                               \
        int64_t dims_[] = {__VA_ARGS__};            \
        rank = sizeof dims_ / sizeof *dims_;        \
        memcpy(shape, dims_, sizeof dims_);         \
    }
        if (!strcmp(name, "wav16k")) { data = (void *)w->wav16k; SHAPE(1, w->n16) }
        else if (!strcmp(name, "audio_in") || !strcmp(name, "audio")) { data = (void *)w->audio; SHAPE(1, T * hop) }
        else if (!strcmp(name, "speaker")) { data = speaker; SHAPE(1, T, S) }
        else if (!strcmp(name, "f0_scale")) { data = &f0_scale; SHAPE(1) }
        else if (!strcmp(name, "noise_scale")) { data = &noise_scale; SHAPE(1) }
        else if (!strcmp(name, "noise_prior")) { data = prior; SHAPE(1, C, T) }
        else if (!strcmp(name, "sine_noise")) { data = sine; SHAPE(1, T * hop, H) }
        else if (!strcmp(name, "phase_in")) {
            data = w->phase; SHAPE(1, SVC_PHASE_LIMBS, H)
            type = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32, elem = 4;
        } else if (!strcmp(name, "state_frame")) {
            data = &state_frame; SHAPE(1)
            type = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, elem = 8;
        } else if (!strcmp(name, "decode_from")) {
            data = &decode_from; SHAPE(1)
            type = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64, elem = 8;
        } else if (!strcmp(name, "cluster_centres")) { data = centres; SHAPE(1, m->ssl_dim) }
        else if (!strcmp(name, "cluster_ratio") || !strcmp(name, "auto_f0")) { data = &zero; SHAPE(1) }
        else {
            rc = svc_fail(h, SVC_ERR_BUNDLE, "%s: unexpected input '%s'; this host feeds the converter inputs of "
                          "docs/bundle.md", m->converter_file, name);
            break;
        }
#undef SHAPE
        size_t count = 1;
        for (size_t d = 0; d < rank; d++) count *= (size_t)shape[d];
        rc = ort_check(h, ort->CreateTensorWithDataAsOrtValue(h->cpu, data, count * elem, shape, rank, type,
                                                              &inputs[i]), name);
    }
    const char *out_names[2] = {"audio", "phase_out"};
    OrtValue *outputs[2] = {NULL, NULL};
    if (!rc)
        rc = ort_check(h, ort->Run(h->session, NULL, (const char *const *)h->input_names,
                                   (const OrtValue *const *)inputs, h->n_inputs, out_names, 2, outputs), "run");
    if (!rc) {
        float *audio = NULL;
        int32_t *phase = NULL;
        OrtTensorTypeAndShapeInfo *info = NULL;
        size_t n_audio = 0;
        rc = ort_check(h, ort->GetTensorMutableData(outputs[0], (void **)&audio), "audio");
        if (!rc) rc = ort_check(h, ort->GetTensorTypeAndShape(outputs[0], &info), "audio shape");
        if (!rc) rc = ort_check(h, ort->GetTensorShapeElementCount(info, &n_audio), "audio size");
        if (info) ort->ReleaseTensorTypeAndShapeInfo(info);
        if (!rc && n_audio != (size_t)((T - decode_from) * hop))
            rc = svc_fail(h, SVC_ERR_RUNTIME, "%s: audio has %zu samples for %lld frames of %lld", m->converter_file,
                          n_audio, (long long)(T - decode_from), (long long)hop);
        if (!rc) rc = ort_check(h, ort->GetTensorMutableData(outputs[1], (void **)&phase), "phase_out");
        if (!rc) {
            memcpy(w->out_audio, audio, n_audio * sizeof(float));
            memcpy(w->phase, phase, (size_t)(SVC_PHASE_LIMBS * H) * sizeof(int32_t));
        }
    }
    for (size_t i = 0; i < h->n_inputs; i++)
        if (inputs[i]) ort->ReleaseValue(inputs[i]);
    for (int i = 0; i < 2; i++)
        if (outputs[i]) ort->ReleaseValue(outputs[i]);
    free(speaker), free(own_prior), free(own_sine), free(centres);
    return rc;
}

/* ------------------------------------------------------------------ open / close / queries */

svc_status svc_host_open(const char *bundle_dir, const char *options_json, svc_host **out) {
    if (!out) return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_open: out is NULL");
    *out = NULL;
    g_open_error[0] = 0;
    if (!bundle_dir) return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_open: bundle_dir is NULL");
    svc_host *h = calloc(1, sizeof *h);
    if (!h) return svc_fail(NULL, SVC_ERR_MEMORY, "out of memory");
    snprintf(h->bundle_dir, sizeof h->bundle_dir, "%s", bundle_dir);
    svc_status rc = read_manifest(h);
    if (!rc) rc = parse_options(h, options_json);
    if (!rc) rc = open_session(h);
    if (!rc && h->opt.block_size > 0) rc = svc_stream_create(h);
    if (rc) {
        snprintf(g_open_error, sizeof g_open_error, "%s", h->error);
        svc_host_close(h);
        return rc;
    }
    *out = h;
    return SVC_OK;
}

void svc_host_close(svc_host *h) {
    if (!h) return;
    svc_stream_destroy(h->stream);
    for (size_t i = 0; i < SVC_MAX_INPUTS; i++) free(h->input_names[i]);
    if (h->ort) {
        if (h->session) h->ort->ReleaseSession(h->session);
        if (h->cpu) h->ort->ReleaseMemoryInfo(h->cpu);
        if (h->env) h->ort->ReleaseEnv(h->env);
    }
    for (int i = 0; i < h->model.n_named; i++) free(h->model.speaker_names[i]);
    free(h->model.speaker_names);
    free(h->model.speaker_ids);
    free(h);
}

int svc_host_sample_rate(const svc_host *h) { return h ? h->model.sampling_rate : 0; }
int svc_host_speaker_count(const svc_host *h) { return h ? h->model.n_named : 0; }
const char *svc_host_speaker_name(const svc_host *h, int index) {
    return h && index >= 0 && index < h->model.n_named ? h->model.speaker_names[index] : NULL;
}
int64_t svc_host_output_length(const svc_host *h, int64_t n, int in_rate) {
    return h && n >= 0 && in_rate > 0 ? svc_resampled_length(n, in_rate, h->model.sampling_rate) : -1;
}

/* ------------------------------------------------------------------ whole-buffer conversion */

/* One voiced slice [start, end) of x (model rate) into out: pad, windows, converter runs, crossfade. */
static svc_status convert_slice(svc_host *h, const float *x, int64_t start, int64_t end, int64_t n_out,
                                uint64_t stream, float *out) {
    const svc_model_info *m = &h->model;
    int sr = m->sampling_rate;
    int64_t hop = m->hop;
    const svc_options *o = &h->opt;
    double frames_per_s = (double)sr / (double)hop;
    int64_t context = (int64_t)ceil(o->context_seconds * frames_per_s);
    double kept = o->clip_seconds > 0 ? o->clip_seconds : o->max_window_seconds;
    int64_t window = (int64_t)ceil(kept * frames_per_s) + 2 * context;
    int64_t fade = (int64_t)svc_round_half_even(o->crossfade_seconds * sr);
    int64_t pad = (int64_t)svc_round_half_even(o->pad_seconds * sr);
    int64_t length = end - start;
    int64_t n = (length + 2 * pad + hop - 1) / hop;
    if (n < MIN_SEGMENT_FRAMES) n = MIN_SEGMENT_FRAMES;
    int64_t n_chunks = svc_plan_chunks(n, window, context, NULL, 0);
    if (n_chunks < 0) return svc_fail(h, SVC_ERR_OPTIONS, "chunk window (%lld frames) must exceed twice the context "
                                      "(%lld frames)", (long long)window, (long long)context);
    int64_t win_max = n < window ? n : window;
    if (win_max > SVC_PHASE_MAX_FRAMES)
        return svc_fail(h, SVC_ERR_OPTIONS, "a window of %lld frames is longer than the converter's phase accumulator "
                        "allows (%d frames); use a shorter max_window_seconds", (long long)win_max, SVC_PHASE_MAX_FRAMES);
    int64_t n16 = svc_resampled_length(n * hop, sr, m->encoder_rate);
    float *audio = calloc((size_t)(n * hop), sizeof(float));
    float *audio16 = malloc((size_t)(n16 > 0 ? n16 : 1) * sizeof(float));
    svc_chunk *chunks = malloc((size_t)n_chunks * sizeof(svc_chunk));
    float *piece = malloc((size_t)(win_max * hop) * sizeof(float));
    int32_t *phase = malloc((size_t)(SVC_PHASE_LIMBS * m->n_harmonics) * sizeof(int32_t));
    svc_status rc = SVC_OK;
    if (!audio || !audio16 || !chunks || !piece || !phase) {
        rc = svc_fail(h, SVC_ERR_MEMORY, "out of memory for a slice of %lld frames", (long long)n);
        goto done;
    }
    memcpy(audio + pad, x + start, (size_t)length * sizeof(float));
    if (svc_resample(audio, n * hop, sr, m->encoder_rate, audio16)) {
        rc = svc_fail(h, SVC_ERR_RUNTIME, "soxr could not resample %d Hz -> %d Hz", sr, m->encoder_rate);
        goto done;
    }
    svc_plan_chunks(n, window, context, chunks, n_chunks);
    svc_noise_initial_phase(o->seed, stream, m->n_harmonics, phase);
    for (int64_t i = 0; i < n_chunks && !rc; i++) {
        const svc_chunk *ch = &chunks[i];
        int64_t a = ch->win_start, b = ch->win_end;
        int64_t s16a = (a * hop * m->encoder_rate + sr / 2) / sr, s16b = (b * hop * m->encoder_rate + sr / 2) / sr;
        svc_window w = {
            .wav16k = audio16 + s16a, .n16 = s16b - s16a, .audio = audio + a * hop, .frames = b - a,
            .noise_frame = a, .stream = stream, .phase = phase,
            .state_frame = i + 1 < n_chunks ? chunks[i + 1].win_start - a : b - a, .out_audio = piece};
        rc = svc_run_window(h, &w);
        if (!rc && svc_place(out, n_out, start, end, pad, n * hop, piece, a * hop, (b - a) * hop, ch->keep_start * hop,
                             ch->keep_end * hop, fade))
            rc = svc_fail(h, SVC_ERR_RUNTIME, "window [%lld, %lld) does not cover its crossfade", (long long)a,
                          (long long)b);
    }
done:
    free(audio), free(audio16), free(chunks), free(piece), free(phase);
    return rc;
}

svc_status svc_host_convert(svc_host *h, const float *in, int64_t n, int in_rate, float *out) {
    if (!h) return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_convert: host is NULL");
    if (!in || !out || n <= 0) return svc_fail(h, SVC_ERR_ARGUMENT, "svc_host_convert: need n > 0 samples in and out");
    if (in_rate <= 0) return svc_fail(h, SVC_ERR_ARGUMENT, "svc_host_convert: sample rate %d must be > 0", in_rate);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += !isfinite(in[i]);
    if (bad)
        return svc_fail(h, SVC_ERR_INPUT, "input contains %lld non-finite samples (NaN or Inf); repair or re-export "
                        "the audio", (long long)bad);
    const svc_model_info *m = &h->model;
    int sr = m->sampling_rate;
    int64_t n_x = svc_resampled_length(n, in_rate, sr);
    float *x = malloc((size_t)(n_x > 0 ? n_x : 1) * sizeof(float));
    if (!x) return svc_fail(h, SVC_ERR_MEMORY, "out of memory for %lld samples", (long long)n_x);
    svc_status rc = SVC_OK;
    if (svc_resample(in, n, in_rate, sr, x)) rc = svc_fail(h, SVC_ERR_RUNTIME, "soxr could not resample %d Hz -> %d Hz",
                                                          in_rate, sr);
    if (!rc && h->opt.remove_dc && svc_remove_dc(x, n_x, sr, 25.0, x))
        rc = svc_fail(h, SVC_ERR_MEMORY, "out of memory in the DC filter");
    memset(out, 0, (size_t)n_x * sizeof(float));
    int64_t n_seg = rc ? 0 : svc_slice_on_silence(x, n_x, sr, h->opt.slice_db, NULL, 0);
    svc_segment *segs = n_seg > 0 ? malloc((size_t)n_seg * sizeof *segs) : NULL;
    if (!rc && (n_seg < 0 || (n_seg > 0 && !segs))) rc = svc_fail(h, SVC_ERR_MEMORY, "out of memory in the slicer");
    if (!rc) svc_slice_on_silence(x, n_x, sr, h->opt.slice_db, segs, n_seg);
    uint64_t stream = 0; /* noise stream: the slice's index among the converted (voiced) slices */
    for (int64_t i = 0; i < n_seg && !rc; i++) {
        if (segs[i].silent || segs[i].end == segs[i].start) continue;
        rc = convert_slice(h, x, segs[i].start, segs[i].end, n_x, stream++, out);
    }
    if (!rc)
        for (int64_t i = 0; i < n_x; i++)
            if (!isfinite(out[i])) {
                rc = svc_fail(h, SVC_ERR_RUNTIME, "the generator produced non-finite samples");
                break;
            }
    free(segs);
    free(x);
    return rc;
}

svc_status svc_host_resample(const float *in, int64_t n, int in_rate, int out_rate, float *out) {
    if (!in || !out || n < 0 || in_rate <= 0 || out_rate <= 0)
        return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_resample: need samples, n >= 0 and positive rates");
    if (svc_resample(in, n, in_rate, out_rate, out))
        return svc_fail(NULL, SVC_ERR_RUNTIME, "soxr could not resample %d Hz -> %d Hz", in_rate, out_rate);
    return SVC_OK;
}

/* ------------------------------------------------------------------ streaming entry points */

int svc_host_block_size(const svc_host *h) { return h ? (int)h->opt.block_size : 0; }

int64_t svc_host_latency_samples(const svc_host *h) { return h && h->stream ? svc_stream_latency(h) : 0; }

svc_status svc_host_reset(svc_host *h) {
    if (!h) return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_reset: host is NULL");
    if (!h->stream) return svc_fail(h, SVC_ERR_ARGUMENT, "streaming is off: open the bundle with \"block_size\" set");
    return svc_stream_reset(h, NULL);
}

int64_t svc_host_history_samples(const svc_host *h) { return h && h->stream ? svc_stream_history_samples(h) : 0; }

svc_status svc_host_reset_history(svc_host *h, const float *history, int64_t n) {
    if (!h) return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_reset_history: host is NULL");
    if (!h->stream) return svc_fail(h, SVC_ERR_ARGUMENT, "streaming is off: open the bundle with \"block_size\" set");
    if (!history) return svc_fail(h, SVC_ERR_ARGUMENT, "svc_host_reset_history: history is NULL");
    if (n != svc_stream_history_samples(h))
        return svc_fail(h, SVC_ERR_ARGUMENT, "history must be %lld samples (one window), got %lld",
                        (long long)svc_stream_history_samples(h), (long long)n);
    return svc_stream_reset(h, history);
}

svc_status svc_host_process_block(svc_host *h, const float *in, float *out, int64_t n) {
    if (!h) return svc_fail(NULL, SVC_ERR_ARGUMENT, "svc_host_process_block: host is NULL");
    if (!h->stream) return svc_fail(h, SVC_ERR_ARGUMENT, "streaming is off: open the bundle with \"block_size\" set");
    if (!in || !out) return svc_fail(h, SVC_ERR_ARGUMENT, "svc_host_process_block: in and out must not be NULL");
    if (n != h->opt.block_size)
        return svc_fail(h, SVC_ERR_ARGUMENT, "expected a block of %lld samples, got %lld", (long long)h->opt.block_size,
                        (long long)n);
    return svc_stream_process(h, in, out);
}
