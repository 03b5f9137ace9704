/* ONNX graph builder: nodes, attributes and initializers as protobuf-c structs in an arena. */
#include "runtime/onnx/export_graph.h"
#include "base/memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vlm_ox_block {
    vlm_ox_block *next;
    size_t size, used;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_BLOCK = 64 << 10 };

const char vlm_ox_end[] = "";

void vlm_ox_init_graph(vlm_ox_graph *g, int weights_f32) {
    memset(g, 0, sizeof *g);
    g->weights_f32 = weights_f32;
}

void vlm_ox_free_graph(vlm_ox_graph *g) {
    for (vlm_ox_block *b = g->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(g->nodes);
    free(g->inits);
    memset(g, 0, sizeof *g);
}

static void *fail(vlm_ox_graph *g, const char *what) {
    if (!g->failed) vlm_err(VLM_ERR_NOMEM, "out of memory building the ONNX graph (%s)", what);
    g->failed = 1;
    return NULL;
}

void *vlm_ox_alloc(vlm_ox_graph *g, size_t bytes) {
    if (g->failed) return NULL;
    bytes = (bytes + 15) & ~(size_t)15;
    vlm_ox_block *b = g->arena;
    if (!b || b->size - b->used < bytes) {
        size_t size = bytes > ARENA_BLOCK ? bytes : ARENA_BLOCK;
        b = vlm_calloc(1, sizeof *b + size, "the ONNX graph's arena");
        if (!b) return fail(g, "arena");
        b->size = size;
        /* a large allocation gets its own block behind the current one, so the current block
         * keeps serving small ones */
        if (bytes > ARENA_BLOCK && g->arena) {
            b->next = g->arena->next;
            g->arena->next = b;
        } else {
            b->next = g->arena;
            g->arena = b;
        }
    }
    void *p = b->data + b->used;
    b->used += bytes;
    return p;
}

char *vlm_ox_strdup(vlm_ox_graph *g, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = vlm_ox_alloc(g, n);
    if (p) memcpy(p, s, n);
    return p;
}

static int grow(vlm_ox_graph *g, void **arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    void *p = vlm_realloc(*arr, nc * elem, "the ONNX graph's node list");
    if (!p) {
        fail(g, "node list");
        return -1;
    }
    *arr = p;
    *cap = nc;
    return 0;
}

static Onnx__AttributeProto *make_attr(vlm_ox_graph *g, const vlm_ox_attr *a) {
    Onnx__AttributeProto *p = vlm_ox_alloc(g, sizeof *p);
    if (!p) return NULL;
    *p = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    p->name = (char *)a->name;
    p->has_type = 1;
    switch (a->kind) {
    case VLM_OX_INT:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        p->has_i = 1;
        p->i = a->i;
        break;
    case VLM_OX_FLOAT:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
        p->has_f = 1;
        p->f = a->f;
        break;
    case VLM_OX_INTS:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
        p->ints = vlm_ox_alloc(g, sizeof(int64_t) * (size_t)(a->n_ints ? a->n_ints : 1));
        if (!p->ints) return NULL;
        memcpy(p->ints, a->ints, sizeof(int64_t) * (size_t)a->n_ints);
        p->n_ints = (size_t)a->n_ints;
        break;
    }
    return p;
}

int vlm_ox_op_n(vlm_ox_graph *g, const char *type, const vlm_ox_attr *attrs, const char *const *in, int n_out,
                const char **out) {
    for (int i = 0; i < n_out; i++) out[i] = NULL;
    if (g->failed) return -1;
    size_t n_in = 0;
    for (; in[n_in] != vlm_ox_end; n_in++)
        if (!in[n_in]) { /* only an earlier failure makes a NULL, and that returned above */
            g->failed = 1;
            vlm_err(VLM_ERR_RUNTIME, "ONNX export: input %zu of a %s node is missing (exporter bug)", n_in, type);
            return -1;
        }
    size_t n_attr = 0;
    for (; attrs && attrs[n_attr].name; n_attr++) {}
    Onnx__NodeProto *node = vlm_ox_alloc(g, sizeof *node);
    char **ins = vlm_ox_alloc(g, sizeof(char *) * (n_in + 1));
    char **outs = vlm_ox_alloc(g, sizeof(char *) * (size_t)n_out);
    Onnx__AttributeProto **at = vlm_ox_alloc(g, sizeof(*at) * (n_attr + 1));
    char name[64];
    snprintf(name, sizeof name, "%s_%d", type, g->next_id++);
    char *node_name = vlm_ox_strdup(g, name);
    if (!node || !ins || !outs || !at || !node_name) return -1;
    *node = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
    for (size_t i = 0; i < n_in; i++) ins[i] = (char *)in[i];
    for (int i = 0; i < n_out; i++) {
        snprintf(name, sizeof name, "%s:%d", node_name, i);
        if (!(outs[i] = vlm_ox_strdup(g, name))) return -1;
    }
    for (size_t i = 0; i < n_attr; i++)
        if (!(at[i] = make_attr(g, &attrs[i]))) return -1;
    node->n_input = n_in;
    node->input = ins;
    node->n_output = (size_t)n_out;
    node->output = outs;
    node->name = node_name;
    node->op_type = (char *)type;
    node->n_attribute = n_attr;
    node->attribute = at;
    if (grow(g, (void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes)) return -1;
    g->nodes[g->n_nodes++] = node;
    for (int i = 0; i < n_out; i++) out[i] = outs[i];
    return 0;
}

const char *vlm_ox_op(vlm_ox_graph *g, const char *type, const vlm_ox_attr *attrs, const char *const *in) {
    const char *out = NULL;
    vlm_ox_op_n(g, type, attrs, in, 1, &out);
    return out;
}

const char *vlm_ox_output(vlm_ox_graph *g, const char *x, const char *name) {
    const char *out = OP(g, "Identity", x);
    if (!out) return NULL;
    Onnx__NodeProto *node = g->nodes[g->n_nodes - 1];
    node->output[0] = (char *)name;
    return name;
}

int vlm_ox_onnx_dtype(vlm_dtype t) {
    switch (t) {
    case VLM_DT_F32: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    case VLM_DT_F16: return ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16;
    case VLM_DT_BF16: return ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16;
    case VLM_DT_I64: return ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    case VLM_DT_I32: return ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
    case VLM_DT_I8: return ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
    case VLM_DT_U8: return ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
    default: return 0;
    }
}

static const char *add_init(vlm_ox_graph *g, const char *name, vlm_dtype dt, vlm_dtype out_dt, int ndim,
                            const int64_t *dims, const void *data, size_t nbytes, int is_weight) {
    if (g->failed) return NULL;
    if (grow(g, (void **)&g->inits, &g->cap_inits, g->n_inits, sizeof *g->inits)) return NULL;
    vlm_ox_init *in = &g->inits[g->n_inits];
    memset(in, 0, sizeof *in);
    if (!(in->name = vlm_ox_strdup(g, name))) return NULL;
    in->dtype = dt;
    in->out_dtype = out_dt;
    in->ndim = ndim;
    for (int i = 0; i < ndim; i++) in->dims[i] = dims[i];
    in->data = data;
    in->nbytes = nbytes;
    in->is_weight = is_weight;
    g->n_inits++;
    return in->name;
}

static const char *constant(vlm_ox_graph *g, vlm_dtype dt, int ndim, int n, const void *v) {
    size_t bytes = vlm_dtype_size(dt) * (size_t)n;
    void *copy = vlm_ox_alloc(g, bytes ? bytes : 1);
    if (!copy) return NULL;
    memcpy(copy, v, bytes);
    char name[32];
    snprintf(name, sizeof name, "const_%d", g->next_id++);
    int64_t dims[1] = {n};
    return add_init(g, name, dt, dt, ndim, dims, copy, bytes, 0);
}

const char *vlm_ox_i64(vlm_ox_graph *g, int n, const int64_t *v) { return constant(g, VLM_DT_I64, 1, n, v); }
const char *vlm_ox_i64_scalar(vlm_ox_graph *g, int64_t v) { return constant(g, VLM_DT_I64, 0, 1, &v); }
const char *vlm_ox_f32(vlm_ox_graph *g, int n, const float *v) { return constant(g, VLM_DT_F32, 1, n, v); }
const char *vlm_ox_f32_scalar(vlm_ox_graph *g, float v) { return constant(g, VLM_DT_F32, 0, 1, &v); }

const char *vlm_ox_weight(vlm_ox_graph *g, const char *name, const vlm_tensor *t, int ndim, const int64_t *dims) {
    if (t->dtype == VLM_DT_F32 || g->weights_f32)
        return add_init(g, name, t->dtype, VLM_DT_F32, ndim, dims, t->data, t->nbytes, 1);
    const char *w = add_init(g, name, t->dtype, t->dtype, ndim, dims, t->data, t->nbytes, 1);
    return OPA(g, "Cast", ATTRS(AI("to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)), w);
}
