/* Internals of the engine (include/vlm.h, "The engine: many requests at once"), shared by its
 * files, each with one job:
 *   engine.c          the public API: options, create (the KV pool sized), submit, cancel, run,
 *                     stop, stats, free
 *   engine_step.c     the scheduler: admission (KV blocks, prefix reuse), one batched pass over
 *                     every running sequence's next rows, sampling, completions
 *   engine_request.c  request preparation on the submitting thread: images decoded, resized and
 *                     hashed, chat template, tokenization, block hashes, every check that can fail
 *   engine_seq.c      one running request: its images (cache or encoder), its sequence
 *                     (runtime/sequence.h), detokenizer, stop strings, streaming, timings, result
 *   kv_cache.c        the KV blocks' references, free list and prefix hashes
 *   image_cache.c     the image-embedding LRU
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
#include "runtime/image_cache.h"
#include "runtime/kv_cache.h"
#include "runtime/pipeline.h"
#include "runtime/sequence.h"
#include "text/stop_strings.h"

/* One image of a request, as submit leaves it: resized to what the model sees, 8-bit (an eighth of
 * its pixel_values, which are made when the request runs); or, for an image the engine has seen
 * before, only its sizes and its encoded bytes (decoded when the request runs, if it must be). */
typedef struct {
    vlm_image resized; /* empty for an image seen before */
    char *encoded;     /* its bytes while `resized` is empty */
    size_t n_encoded;
    long long min_pixels, max_pixels; /* its pixel limits, resolved */
    vlm_grid_thw grid;                /* patches (t, h, w) */
    int tokens;                       /* merged tokens: its <|image_pad|> count in the prompt */
    uint8_t hash[VLM_SHA256_BYTES];   /* of the encoded bytes: the image's identity */
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
    int *image_start;           /* [n_images] prompt position of each image's first pad */
    vlm_block_hash *block_hash; /* [n_ids / block_tokens] identities of the full prompt blocks */
    int n_block_hash;
    int n_blocks; /* KV blocks for every position it can reach (prompt + max_tokens - 1) */
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
    int n_shared;    /* leading blocks found in the prefix cache */
    int n_published; /* leading full prompt blocks findable by others */
    int first_image; /* images before this one lie wholly in the shared prefix: never encoded */
    int image_hits, image_misses;
    float *image_embeds; /* [image tokens from first_image on, hidden] on the device */
    vlm_grid_thw *grids;
    vlm_detok detok;
    int detok_ready;
    vlm_dump *dump;
    double *token_times; /* [max_tokens] */
    double t_admit, t_prefill, t_first, vision_s;
    uint64_t rss_before, gpu_before;
    int finished;
    vlm_stop_reason stop_reason;
    vlm_status failed; /* a failure while running: the request ends with it */
    char error[512];
} vlm_job;

struct vlm_engine {
    vlm_model *m;
    vlm_engine_options opt;
    /* engine thread: the KV pool and its blocks, the pass buffers, the image cache */
    vlm_kv_pool pool;
    vlm_kv_cache kvc;
    vlm_text_batch batch;
    vlm_text_seq *ts;  /* [max_running] */
    vlm_seq **seqs;    /* [max_running] sequences of a pass */
    vlm_job **in_pass; /* [max_running] their jobs */
    int *rows;         /* [max_running] */
    int32_t *pos;      /* [3, batch rows] */
    vlm_image_cache images;
    vlm_image_sizes sizes; /* any thread (its own lock) */
    pthread_mutex_t lock;  /* the queue, the running list's membership, ids, counters */
    sem_t wake;            /* posted by submit, cancel and stop: what vlm_engine_run sleeps on */
    atomic_int stop_requested;
    vlm_job *wait_head, *wait_tail;
    int n_waiting;
    vlm_job **running; /* [max_running] */
    int n_running;
    vlm_request_id next_id;
    vlm_engine_stats stats;
};

/* engine.c */
/* An engine whose KV pool has n_blocks blocks (0: sized by the options, stated at start). */
vlm_status vlm_engine_create_sized(vlm_model *m, const vlm_engine_options *o, int n_blocks, vlm_engine **out);
/* Queues a prepared job (checks it against the pool; frees it on failure). */
vlm_status vlm_engine_enqueue(vlm_engine *e, vlm_job *j, vlm_done_fn on_done, void *done_user, vlm_request_id *id);

/* engine_request.c: everything about a request that can be done and checked before it runs. */
/* sizes (may be NULL): images seen before skip decoding and resizing. */
vlm_status vlm_job_prepare(vlm_model *m, const vlm_request *r, vlm_image_sizes *sizes, vlm_job **out);
/* The 8-bit resized image of image i (decoded and resized now when submit skipped it). */
vlm_status vlm_job_image_pixels(vlm_model *m, vlm_job *j, int i);
/* Its KV blocks and, for the prefix cache, the identities of its full prompt blocks. */
vlm_status vlm_job_plan_blocks(vlm_job *j, int block_tokens, int hash_blocks);
void vlm_job_free(vlm_model *m, vlm_job *j);

/* engine_seq.c */
/* KV blocks the job needs from the free list now, its shared prefix counted out (*shared: how
 * many leading blocks the prefix cache holds). */
int vlm_job_blocks_needed(vlm_engine *e, const vlm_job *j, int *shared);
/* Admits the job: takes its blocks, gets its images' embeddings (cache, or the encoder: *encoded
 * tells), starts its sequence, detokenizer and dump. */
vlm_status vlm_job_start(vlm_engine *e, vlm_job *j, int *encoded);
/* After a pass: makes the job's newly completed prompt blocks findable by others. */
void vlm_job_publish(vlm_engine *e, vlm_job *j);
/* Samples the next token from the last pass's logits and streams it (which may finish the job:
 * j->finished). */
vlm_status vlm_job_next_token(vlm_engine *e, vlm_job *j);
/* Ends the job with reason (flushes held-back text to the stream unless cancelled). */
void vlm_job_finish(vlm_job *j, vlm_stop_reason reason);
/* The result of a finished job (owned by the caller: vlm_result_free). */
vlm_status vlm_job_result(vlm_engine *e, vlm_job *j, vlm_result *out);
/* Releases the running state (KV blocks, sequence, embeddings, detokenizer, dump). */
void vlm_job_release(vlm_engine *e, vlm_job *j);

/* engine_step.c: ends and hands back a job (on_done, counters, free). Engine thread, lock free. */
void vlm_engine_complete(vlm_engine *e, vlm_job *j, vlm_status status, const char *error);

/* generate.c */
vlm_status vlm_result_copy(const vlm_result *src, vlm_result *dst);

#endif
