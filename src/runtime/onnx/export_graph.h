/* A small ONNX graph builder over protobuf-c's generated onnx.proto structs (used only by the
 * exporter). Every string and node lives in an arena freed with the graph.
 *
 * Errors are sticky: a builder call that cannot allocate records the message, sets g->failed and
 * returns NULL; later calls given a NULL input return NULL too, so graph code reads as straight-line
 * math and checks g->failed once at the end. */
#ifndef VLM_RUNTIME_ONNX_EXPORT_GRAPH_H
#define VLM_RUNTIME_ONNX_EXPORT_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "onnx.pb-c.h"
#include "tensor/tensor.h"

typedef struct vlm_ox_block vlm_ox_block;

/* An initializer: a weight view into the checkpoint mapping, or a small constant in the arena. */
typedef struct {
    const char *name;
    vlm_dtype dtype;     /* of data */
    vlm_dtype out_dtype; /* in the file: dtype, or F32 when converted at export */
    int ndim;
    int64_t dims[4];
    const void *data;
    size_t nbytes; /* of data */
    int is_weight; /* may go to the external data file */
} vlm_ox_init;

typedef struct {
    vlm_ox_block *arena;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    vlm_ox_init *inits;
    size_t n_inits, cap_inits;
    int next_id;
    int weights_f32; /* convert BF16 / F16 weights to F32 at export instead of Cast nodes */
    int failed;
} vlm_ox_graph;

typedef enum { VLM_OX_INT = 1, VLM_OX_FLOAT, VLM_OX_INTS } vlm_ox_attr_kind;

typedef struct {
    const char *name; /* NULL ends a list */
    vlm_ox_attr_kind kind;
    int64_t i;
    float f;
    const int64_t *ints;
    int n_ints;
} vlm_ox_attr;

void vlm_ox_init_graph(vlm_ox_graph *g, int weights_f32);
void vlm_ox_free_graph(vlm_ox_graph *g);
/* Arena allocation (zeroed) and string copy; NULL after a failure. */
void *vlm_ox_alloc(vlm_ox_graph *g, size_t bytes);
char *vlm_ox_strdup(vlm_ox_graph *g, const char *s);

/* The end marker of input lists (a NULL input is a failed earlier call, not the end). */
extern const char vlm_ox_end[];

/* Adds a node of op type with inputs (ending with vlm_ox_end; "" = an absent optional input) and
 * attributes (NULL or ending with {0}); returns its single output's name. */
const char *vlm_ox_op(vlm_ox_graph *g, const char *type, const vlm_ox_attr *attrs, const char *const *in);
/* The same with n_out outputs written to out[]. Returns 0 on success. */
int vlm_ox_op_n(vlm_ox_graph *g, const char *type, const vlm_ox_attr *attrs, const char *const *in, int n_out,
                const char **out);
/* An Identity node writing the given graph-output name. */
const char *vlm_ox_output(vlm_ox_graph *g, const char *x, const char *name);

/* Constants (initializers in the graph itself). */
const char *vlm_ox_i64(vlm_ox_graph *g, int n, const int64_t *v); /* 1-D [n] */
const char *vlm_ox_i64_scalar(vlm_ox_graph *g, int64_t v);        /* 0-D */
const char *vlm_ox_f32(vlm_ox_graph *g, int n, const float *v);   /* 1-D [n] */
const char *vlm_ox_f32_scalar(vlm_ox_graph *g, float v);          /* 0-D */
/* A checkpoint weight (a view, never copied) as a float32 value: the initializer itself, or a Cast
 * of it when it is stored as BF16 / F16 and the graph keeps stored dtypes. dims override the
 * tensor's shape (same element count). */
const char *vlm_ox_weight(vlm_ox_graph *g, const char *name, const vlm_tensor *t, int ndim, const int64_t *dims);

/* Convenience wrappers: OP(g, "Add", a, b), OPA(g, "Softmax", ATTRS(AI("axis", -1)), x). */
#define OX_IN(...) ((const char *const[]){__VA_ARGS__, vlm_ox_end})
#define OP(g, type, ...) vlm_ox_op((g), (type), NULL, OX_IN(__VA_ARGS__))
#define OPA(g, type, attrs, ...) vlm_ox_op((g), (type), (attrs), OX_IN(__VA_ARGS__))
#define ATTRS(...) ((const vlm_ox_attr[]){__VA_ARGS__, {0}})
#define AI(n, v)                                                                                                       \
    { .name = (n), .kind = VLM_OX_INT, .i = (v) }
#define AF(n, v)                                                                                                       \
    { .name = (n), .kind = VLM_OX_FLOAT, .f = (v) }
#define AINTS(n, ...)                                                                                                  \
    {                                                                                                                  \
        .name = (n), .kind = VLM_OX_INTS, .ints = (const int64_t[]){__VA_ARGS__},                                      \
        .n_ints = (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))                                      \
    }
#define I64S(g, ...)                                                                                                   \
    vlm_ox_i64((g), (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__})

/* ONNX TensorProto data type of a vlm dtype (0 when it has none). */
int vlm_ox_onnx_dtype(vlm_dtype t);

#endif
