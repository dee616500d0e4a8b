/* Streaming: placeholder until the Python StreamingConverter on the converter graph lands. */
#include "host_state.h"

svc_status svc_stream_create(svc_host *h) {
    return svc_fail(h, SVC_ERR_OPTIONS, "options: streaming (block_size) is not available in this build yet");
}
void svc_stream_destroy(svc_stream *s) { (void)s; }
svc_status svc_stream_reset(svc_host *h) { return svc_stream_create(h); }
svc_status svc_stream_process(svc_host *h, const float *in, float *out) { (void)in; (void)out; return svc_stream_create(h); }
int64_t svc_stream_latency(const svc_host *h) { (void)h; return 0; }
