/* Internals of the engine (include/vlm.h, "The engine: many requests at once"), shared by its
 * files, each with one job:
 *   engine.c          the public API: queue, admission, the step loop, cancel, stop, stats
 *   engine_request.c  request preparation on the submitting thread: images decoded, resized and
 *                     hashed, chat template, tokenization, every check that can fail early
 *   engine_seq.c      one running request: its images encoded, its sequence (runtime/sequence.h),
 *                     detokenizer, stop strings, streaming, timings and result
 *
 * Threads: submit, cancel, stop and get_stats may be called from any thread; they touch the queue,
 * the id lookups and the counters under e->lock only. Everything else (the running sequences, the
 * model, the backend) belongs to the thread that steps the engine. Callbacks run on that thread,
 * never with the lock held, so they may call submit, cancel or get_stats. */
#ifndef VLM_RUNTIME_ENGINE_H
#define VLM_RUNTIME_ENGINE_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

#include "base/sha256.h"
#include "io/image_decode.h"
#include "runtime/pipeline.h"
#include "runtime/sequence.h"
#include "text/stop_strings.h"

/* One image of a request, as submit leaves it: resized to what the model sees, 8-bit (an eighth of
 * its pixel_values, which are made when the request runs). */
typedef struct {
    vlm_image resized;
    vlm_grid_thw grid;              /* patches (t, h, w) */
    int tokens;                     /* merged tokens: its <|image_pad|> count in the prompt */
    uint8_t hash[VLM_SHA256_BYTES]; /* of the encoded bytes: the image's identity */
    vlm_image_summary summary;
} vlm_job_image;

typedef enum { VLM_JOB_WAITING, VLM_JOB_RUNNING } vlm_job_state;

/* A request inside the engine. */
typedef struct vlm_job {
    struct vlm_job *next; /* in the waiting queue */
    vlm_request_id id;
    vlm_job_state state;
    atomic_int cancelled;

    /* prepared by submit */
    int32_t *ids; /* the prompt, image pads expanded */
    int n_ids;
    vlm_job_image *images;
    int n_images;
    int n_image_tokens;
    vlm_sampler_params sampling;
    int max_tokens;
    int32_t stop_ids[VLM_MAX_EOS];
    int n_stop_ids;
    vlm_stop_matcher stop; /* holds copies of the stop strings */
    int (*on_text)(void *user, const char *piece, size_t len);
    void *user;
    char *dump_path;
    vlm_done_fn on_done;
    void *done_user;
    double t_submit, preprocess_s;

    /* running state (engine_seq.c) */
    int started;
    vlm_seq seq;
    float *image_embeds; /* [n_image_tokens, hidden] on the device */
    vlm_grid_thw *grids;
    vlm_detok detok;
    int detok_ready;
    vlm_dump *dump;
    double *token_times; /* [max_tokens] */
    double t_admit, t_prefill, t_first, vision_s;
    uint64_t rss_before, gpu_before;
    int finished;
    vlm_stop_reason stop_reason;
} vlm_job;

struct vlm_engine {
    vlm_model *m;
    vlm_engine_options opt;
    pthread_mutex_t lock; /* the queue, the running list's membership, ids, counters */
    sem_t wake;           /* posted by submit, cancel and stop: what vlm_engine_run sleeps on */
    atomic_int stop_requested;
    vlm_job *wait_head, *wait_tail;
    int n_waiting;
    vlm_job **running; /* [max_running] */
    int n_running;
    vlm_request_id next_id;
    vlm_engine_stats stats;
};

/* engine_request.c: everything about a request that can be done and checked before it runs. */
vlm_status vlm_job_prepare(vlm_model *m, const vlm_request *r, vlm_job **out);
void vlm_job_free(vlm_model *m, vlm_job *j);

/* engine_seq.c */
/* Encodes the request's images, starts its sequence, detokenizer and dump. */
vlm_status vlm_job_start(vlm_engine *e, vlm_job *j);
/* One unit of work: the next prefill chunk, or the decode of the last token; then, when logits are
 * ready, the next token (which may finish the job: j->finished). */
vlm_status vlm_job_advance(vlm_engine *e, vlm_job *j);
/* Ends the job with reason (flushes held-back text to the stream unless cancelled). */
void vlm_job_finish(vlm_job *j, vlm_stop_reason reason);
/* The result of a finished job (owned by the caller: vlm_result_free). */
vlm_status vlm_job_result(vlm_engine *e, vlm_job *j, vlm_result *out);
/* Releases the running state (sequence, embeddings, detokenizer, dump). */
void vlm_job_release(vlm_engine *e, vlm_job *j);

/* generate.c */
vlm_status vlm_result_copy(const vlm_result *src, vlm_result *dst);

#endif
