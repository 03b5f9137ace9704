/* One sequence being generated, at the token level: its prompt (ids, image rows, M-RoPE positions
 * and rope delta), its block table in the KV pool, its sampler and the ids chosen so far. Passes
 * run many sequences at once (vlm_seqs_forward); vlm_text_generate and the engine drive them the
 * same way:
 *
 *   vlm_seq_start(&s, model, &request, block_tokens);   checks, allocates, computes the rope index
 *   (the caller fills s.blocks with the blocks of the positions the sequence will hold)
 *   while (!s.prefilled) vlm_seqs_forward(..., {&s}, {rows}, 1);   a chunk of the prompt per pass
 *   for (;;) { vlm_seq_sample(&s, &b, &id); if (stop) break; vlm_seqs_forward(..., {&s}, {1}, 1); }
 *   vlm_seq_free(&s);
 *
 * The request's arrays (ids, image features, grids, hook embeddings) are borrowed: they must
 * outlive the sequence. */
#ifndef VLM_RUNTIME_SEQUENCE_H
#define VLM_RUNTIME_SEQUENCE_H

#include "runtime/text_generate.h"

typedef struct {
    vlm_text_model *m;
    vlm_gen_request r; /* a copy; its arrays are borrowed */
    vlm_sampler *smp;
    int32_t *pos;      /* [3, L] prompt positions (t, h, w rows) */
    int32_t *img_pos;  /* prompt positions of the image tokens, in order */
    int32_t *img_rows; /* [L] pass rows of the image tokens of one chunk */
    float *dump_buf;   /* [3, L, D] inputs_embeds, layer-0 output, final norm (dump only) */
    vlm_text_taps taps;
    int32_t rope_delta;
    int32_t *blocks; /* block table: blocks[i] holds positions [i * block_tokens, (i + 1) * block_tokens) */
    int n_blocks;    /* blocks needed for every position the sequence can reach */
    int block_tokens;
    int n_past;     /* positions in the cache */
    int prefilled;  /* the whole prompt is in the cache and its last logits are ready */
    int pass_rows;  /* rows in the pass being run */
    int logits_row; /* its row of the last pass's logits; -1 when none */
    int32_t *out;   /* [max_new_tokens + 1] chosen ids */
    int n_out;
} vlm_seq;

/* Checks the request (prompt, vocabulary, image rows against grids, context length), allocates
 * the sequence's host memory and block table (n_blocks entries for prompt + max_new_tokens - 1
 * positions, to be filled by the caller) and computes the positions. */
vlm_status vlm_seq_start(vlm_seq *s, vlm_text_model *m, const vlm_gen_request *r, int block_tokens);
/* The first n prompt positions are already in the cache (blocks shared with another sequence):
 * prefill starts after them. n must be below the prompt length (the last row is always run), and
 * the request's image rows must start at or before the first image row after them. */
vlm_status vlm_seq_skip(vlm_seq *s, int n);
/* Rows the sequence takes in the next pass with at most `budget` rows: the next chunk of its
 * prompt, or its last chosen token. */
int vlm_seq_next_rows(const vlm_seq *s, int budget);

/* One forward pass over n sequences, rows[i] rows of sequence i (vlm_seq_next_rows), their rows
 * consecutive in that order; afterwards each sequence with logits has its logits_row. ts: scratch
 * of n entries. */
vlm_status vlm_seqs_forward(vlm_text_model *m, vlm_text_batch *b, vlm_kv_pool *pool, vlm_seq *const *seqs,
                            const int *rows, int n, vlm_text_seq *ts, int32_t *pos_scratch);

/* Chooses the next id from its logits of the last pass and records it (result ids, repetition
 * penalty). */
vlm_status vlm_seq_sample(vlm_seq *s, const vlm_text_batch *b, int32_t *id);
/* 1 when id is one of the request's stop ids. */
int vlm_seq_is_stop(const vlm_seq *s, int32_t id);
/* Records the ids generated so far in the dump (no-op without a dump). */
vlm_status vlm_seq_dump_ids(vlm_seq *s);
void vlm_seq_free(vlm_seq *s);

#endif
