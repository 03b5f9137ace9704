/* Reports of a load test: the console table, JSON (numbers at %.17g, so the statistics recompute
 * from "values" exactly), CSV, and a chart (aggregate output tok/s and TTFT p50/p90 per level). */
#include <math.h>
#include <string.h>

#include "base/memory.h"
#include "bench/bench.h"
#include "bench/loadtest.h"

static void level_name(const vlm_loadtest_level *l, char *out, size_t cap) {
    if (l->concurrency > 0) snprintf(out, cap, "%d", l->concurrency);
    else snprintf(out, cap, "%g", l->request_rate);
}

static void level_label(const vlm_loadtest_level *l, char *out, size_t cap) {
    if (l->concurrency > 0) snprintf(out, cap, "c=%d", l->concurrency);
    else snprintf(out, cap, "r=%g/s", l->request_rate);
}

/* ---- console ------------------------------------------------------------------------------------- */

static void errors_text(const vlm_loadtest_level *l, char *out, size_t cap) {
    out[0] = 0;
    size_t n = 0;
    for (int k = 0; k < l->n_error_kinds && n < cap; k++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s:%d", k ? " " : "", l->error_kinds[k], l->error_counts[k]);
    if (!l->n_error_kinds) snprintf(out, cap, "-");
}

void vlm_loadtest_print(FILE *f, const vlm_loadtest_results *r) {
    fprintf(f, "\nLOAD TEST: %s", r->target ? r->target : "?");
    if (r->model) fprintf(f, " (model %s)", r->model);
    fprintf(f, "\n  %d image(s), prompt \"%s\", max_tokens %d%s, ", r->n_images, r->prompt ? r->prompt : "",
            r->max_tokens, r->ignore_eos ? " (ignore_eos)" : "");
    if (r->requests > 0) fprintf(f, "%d requests per level", r->requests);
    else fprintf(f, "one round of N requests at concurrency N");
    fprintf(f, ", %d run(s)%s\n", r->runs, r->warmup ? " after one warm-up request" : "");
    fprintf(f, "%-9s %9s %8s %11s %26s %26s %26s  %s\n", "level", "ok/total", "req/s", "out tok/s",
            "TTFT p50/p90/p99 (s)", "ITL p50/p90/p99 (ms)", "E2E p50/p90/p99 (s)", "errors");
    for (int i = 0; i < r->n_levels; i++) {
        const vlm_loadtest_level *l = &r->levels[i];
        char name[32], ok[32], err[512], ttft[40], itl[40], e2e[40];
        level_label(l, name, sizeof name);
        snprintf(ok, sizeof ok, "%d/%d", l->n_ok, l->n_requests);
        errors_text(l, err, sizeof err);
        snprintf(ttft, sizeof ttft, "%.3f / %.3f / %.3f", l->s_ttft.median, l->s_ttft.p90, l->s_ttft.p99);
        snprintf(itl, sizeof itl, "%.1f / %.1f / %.1f", l->s_itl.median * 1e3, l->s_itl.p90 * 1e3, l->s_itl.p99 * 1e3);
        snprintf(e2e, sizeof e2e, "%.3f / %.3f / %.3f", l->s_e2e.median, l->s_e2e.p90, l->s_e2e.p99);
        fprintf(f, "%-9s %9s %8.3f %11.2f %26s %26s %26s  %s\n", name, ok, l->s_requests_per_sec.mean,
                l->s_tokens_per_sec.mean, ttft, itl, e2e, err);
        if (l->s_decode_tokens_per_sec.n)
            fprintf(f, "%-9s decode-only steps with all %d sequences: %.2f tok/s (mean of %d runs)\n", "",
                    l->concurrency, l->s_decode_tokens_per_sec.mean, l->s_decode_tokens_per_sec.n);
    }
    fprintf(f,
            "(req/s and out tok/s: mean over runs of successful requests / wall clock of the run; latencies over "
            "every successful request)\n");
}

/* ---- JSON ---------------------------------------------------------------------------------------- */

static void key(vlm_strbuf *b, int ind, const char *k) {
    vlm_sb_printf(b, "\n%*s", ind, "");
    vlm_sb_json_string(b, k, strlen(k));
    vlm_sb_append(b, ": ", 2);
}

static void str_or_null(vlm_strbuf *b, const char *s) {
    if (s) vlm_sb_json_string(b, s, strlen(s));
    else vlm_sb_append(b, "null", 4);
}

static void stat_object(vlm_strbuf *b, const vlm_loadtest_stats *s, const vlm_loadtest_values *v) {
    const double x[] = {s->mean, s->std, s->min, s->max, s->median, s->p90, s->p99};
    const char *names[] = {"mean", "std", "min", "max", "median", "p90", "p99"};
    vlm_sb_append(b, "{", 1);
    for (int i = 0; i < 7; i++) {
        vlm_sb_printf(b, "%s\"%s\": ", i ? ", " : "", names[i]);
        vlm_sb_json_number(b, x[i]);
    }
    vlm_sb_append(b, ", \"values\": [", 13);
    for (int i = 0; i < v->n; i++) {
        if (i) vlm_sb_append(b, ", ", 2);
        vlm_sb_json_number(b, v->v[i]);
    }
    vlm_sb_append(b, "]}", 2);
}

static void level_object(vlm_strbuf *b, const vlm_loadtest_level *l, int ind) {
    const struct {
        const char *name;
        const vlm_loadtest_stats *s;
        const vlm_loadtest_values *v;
    } m[] = {
        {"output_tokens_per_sec", &l->s_tokens_per_sec, &l->output_tokens_per_sec},
        {"requests_per_sec", &l->s_requests_per_sec, &l->requests_per_sec},
        {"duration", &l->s_duration, &l->duration},
        {"ttft", &l->s_ttft, &l->ttft},
        {"itl", &l->s_itl, &l->itl},
        {"e2e", &l->s_e2e, &l->e2e},
        {"output_tokens", &l->s_output_tokens, &l->output_tokens},
    };
    vlm_sb_append(b, "{", 1);
    for (size_t i = 0; i < sizeof m / sizeof *m; i++) {
        key(b, ind + 2, m[i].name);
        stat_object(b, m[i].s, m[i].v);
        vlm_sb_append(b, ",", 1);
    }
    if (l->decode_tokens_per_sec.n) { /* in-process levels */
        key(b, ind + 2, "decode_tokens_per_sec");
        stat_object(b, &l->s_decode_tokens_per_sec, &l->decode_tokens_per_sec);
        vlm_sb_append(b, ",", 1);
    }
    key(b, ind + 2, "num_runs");
    vlm_sb_printf(b, "%d,", l->n_runs);
    key(b, ind + 2, "num_requests");
    vlm_sb_printf(b, "%d,", l->n_requests);
    key(b, ind + 2, "num_ok");
    vlm_sb_printf(b, "%d,", l->n_ok);
    key(b, ind + 2, "errors");
    vlm_sb_append(b, "{", 1);
    for (int k = 0; k < l->n_error_kinds; k++) {
        vlm_sb_printf(b, "%s", k ? ", " : "");
        vlm_sb_json_string(b, l->error_kinds[k], strlen(l->error_kinds[k]));
        vlm_sb_printf(b, ": %d", l->error_counts[k]);
    }
    vlm_sb_append(b, "}", 1);
    vlm_sb_printf(b, "\n%*s}", ind, "");
}

/* "concurrency" or "request_rate": every level of that kind, keyed by its value. */
static int levels_member(vlm_strbuf *b, const vlm_loadtest_results *r, int concurrency) {
    int any = 0;
    for (int i = 0; i < r->n_levels; i++) {
        const vlm_loadtest_level *l = &r->levels[i];
        if ((l->concurrency > 0) != concurrency) continue;
        if (!any++) {
            key(b, 2, concurrency ? "concurrency" : "request_rate");
            vlm_sb_append(b, "{", 1);
        } else vlm_sb_append(b, ",", 1);
        char name[32];
        level_name(l, name, sizeof name);
        key(b, 4, name);
        level_object(b, l, 4);
    }
    if (any) vlm_sb_printf(b, "\n  },");
    return any;
}

vlm_status vlm_loadtest_json(const vlm_loadtest_results *r, vlm_strbuf *b) {
    vlm_sb_append(b, "{", 1);
    levels_member(b, r, 1);
    levels_member(b, r, 0);
    key(b, 2, "metadata");
    vlm_sb_append(b, "{", 1);
    key(b, 4, "target");
    str_or_null(b, r->target);
    vlm_sb_append(b, ",", 1);
    key(b, 4, "model");
    str_or_null(b, r->model);
    vlm_sb_append(b, ",", 1);
    key(b, 4, "prompt");
    str_or_null(b, r->prompt);
    vlm_sb_append(b, ",", 1);
    key(b, 4, "image_path");
    vlm_sb_append(b, "[", 1);
    for (int i = 0; i < r->n_images; i++) {
        if (i) vlm_sb_append(b, ", ", 2);
        str_or_null(b, r->images[i]);
    }
    vlm_sb_append(b, "],", 2);
    key(b, 4, "max_tokens");
    vlm_sb_printf(b, "%d,", r->max_tokens);
    key(b, 4, "ignore_eos");
    vlm_sb_printf(b, "%s,", r->ignore_eos ? "true" : "false");
    key(b, 4, "requests_per_run");
    if (r->requests > 0) vlm_sb_printf(b, "%d,", r->requests);
    else vlm_sb_printf(b, "\"N\",");
    key(b, 4, "runs");
    vlm_sb_printf(b, "%d,", r->runs);
    key(b, 4, "warmup");
    vlm_sb_printf(b, "%s,", r->warmup ? "true" : "false");
    key(b, 4, "version");
    vlm_sb_printf(b, "\"%s\",", VLM_VERSION);
    key(b, 4, "timestamp");
    str_or_null(b, r->timestamp);
    vlm_sb_append(b, "\n  }\n}\n", 7);
    if (b->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory writing the load-test JSON");
    return VLM_OK;
}

vlm_status vlm_loadtest_write_json(const vlm_loadtest_results *r, const char *path) {
    vlm_strbuf b = {0};
    vlm_status s = vlm_loadtest_json(r, &b);
    if (s == VLM_OK) s = vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s == VLM_OK ? s : vlm_err_ctx(s, "--output %s", path);
}

/* ---- CSV ----------------------------------------------------------------------------------------- */

vlm_status vlm_loadtest_csv(const vlm_loadtest_results *r, vlm_strbuf *b) {
    vlm_sb_printf(b, "Level,Metric,Mean,Std,Min,Max,Median,P90,P99,Count\n");
    for (int i = 0; i < r->n_levels; i++) {
        const vlm_loadtest_level *l = &r->levels[i];
        char name[32];
        level_label(l, name, sizeof name);
        const struct {
            const char *name;
            const vlm_loadtest_stats *s;
        } m[] = {{"output_tokens_per_sec", &l->s_tokens_per_sec},
                 {"requests_per_sec", &l->s_requests_per_sec},
                 {"duration", &l->s_duration},
                 {"ttft", &l->s_ttft},
                 {"itl", &l->s_itl},
                 {"e2e", &l->s_e2e},
                 {"output_tokens", &l->s_output_tokens}};
        for (size_t k = 0; k < sizeof m / sizeof *m; k++) {
            const vlm_loadtest_stats *s = m[k].s;
            vlm_sb_printf(b, "%s,%s,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d\n", name, m[k].name, s->mean, s->std, s->min,
                          s->max, s->median, s->p90, s->p99, s->n);
        }
        const vlm_loadtest_stats *d = &l->s_decode_tokens_per_sec;
        if (d->n)
            vlm_sb_printf(b, "%s,decode_tokens_per_sec,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%d\n", name, d->mean, d->std,
                          d->min, d->max, d->median, d->p90, d->p99, d->n);
    }
    if (b->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory writing the load-test CSV");
    return VLM_OK;
}

vlm_status vlm_loadtest_write_csv(const vlm_loadtest_results *r, const char *path) {
    vlm_strbuf b = {0};
    vlm_status s = vlm_loadtest_csv(r, &b);
    if (s == VLM_OK) s = vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s == VLM_OK ? s : vlm_err_ctx(s, "--csv %s", path);
}

/* ---- chart --------------------------------------------------------------------------------------- */

enum { W = 760, H = 600, LEFT = 80, PLOT_W = 560, PANEL_H = 200, TOP1 = 80, TOP2 = 360 };

static void xml_text(vlm_strbuf *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': vlm_sb_append(b, "&amp;", 5); break;
        case '<': vlm_sb_append(b, "&lt;", 4); break;
        case '>': vlm_sb_append(b, "&gt;", 4); break;
        case '"': vlm_sb_append(b, "&quot;", 6); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\n' || *s == '\t') vlm_sb_append(b, s, 1);
        }
    }
}

static double nice_top(double max, double *step) {
    if (!(max > 0) || !isfinite(max)) max = 1;
    double raw = max / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    *step = (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
    return *step * ceil(max / *step);
}

/* A bar panel: per level, n_series bars (values v[level * n_series + s]). */
static void panel(vlm_strbuf *b, const vlm_loadtest_results *r, int top, const char *title, const double *v,
                  int n_series, const char *const *colors, const char *const *names) {
    double max = 0, step;
    for (int i = 0; i < r->n_levels * n_series; i++) max = v[i] > max ? v[i] : max;
    double top_v = nice_top(max, &step);
    vlm_sb_printf(b, "<text x=\"%d\" y=\"%d\" class=\"title\">", LEFT, top - 14);
    xml_text(b, title);
    vlm_sb_printf(b, "</text>\n");
    for (int i = 0; i * step <= top_v * (1 + 1e-9); i++) {
        double y = top + PANEL_H - PANEL_H * (i * step / top_v);
        vlm_sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", LEFT, y,
                      LEFT + PLOT_W, y);
        vlm_sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 6, y + 4, i * step);
    }
    double slot = (double)PLOT_W / (r->n_levels ? r->n_levels : 1), bw = slot * 0.7 / n_series;
    for (int i = 0; i < r->n_levels; i++) {
        double x0 = LEFT + slot * i + slot * 0.15;
        for (int s = 0; s < n_series; s++) {
            double h = PANEL_H * (v[i * n_series + s] / top_v), x = x0 + bw * s;
            vlm_sb_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x,
                          top + PANEL_H - h, bw - 2, h, colors[s]);
            vlm_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"small\">%.3g</text>\n",
                          x + bw / 2, top + PANEL_H - h - 4, v[i * n_series + s]);
        }
        char name[32];
        level_label(&r->levels[i], name, sizeof name);
        vlm_sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", LEFT + slot * (i + 0.5),
                      top + PANEL_H + 18, name);
    }
    vlm_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", LEFT, top + PANEL_H,
                  LEFT + PLOT_W, top + PANEL_H);
    for (int s = 0; n_series > 1 && s < n_series; s++)
        vlm_sb_printf(
            b, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
            LEFT + PLOT_W + 20, top + 20 * s, colors[s], LEFT + PLOT_W + 38, top + 20 * s + 11, names[s]);
}

vlm_status vlm_loadtest_plot_svg(const vlm_loadtest_results *r, vlm_strbuf *b) {
    int n = r->n_levels;
    double *tok = vlm_calloc((size_t)n + 1, sizeof *tok, "chart values");
    double *ttft = vlm_calloc((size_t)n * 2 + 1, sizeof *ttft, "chart values");
    if (!tok || !ttft) {
        vlm_free(tok);
        vlm_free(ttft);
        return VLM_ERR_NOMEM;
    }
    for (int i = 0; i < n; i++) {
        tok[i] = r->levels[i].s_tokens_per_sec.mean;
        ttft[2 * i] = r->levels[i].s_ttft.median;
        ttft[2 * i + 1] = r->levels[i].s_ttft.p90;
    }
    vlm_sb_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n<style>.title{font-size:14px;font-weight:bold}"
                  ".small{font-size:10px}</style>\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                  W, H, W, H);
    vlm_sb_printf(b, "<text x=\"%d\" y=\"30\" class=\"title\">Load test: ", LEFT);
    xml_text(b, r->target);
    vlm_sb_printf(b, "</text>\n");
    static const char *const c1[] = {"#66c2a5"}, *const c2[] = {"#8da0cb", "#fc8d62"};
    static const char *const n1[] = {"tok/s"}, *const n2[] = {"p50", "p90"};
    panel(b, r, TOP1, "Aggregate output tokens/s", tok, 1, c1, n1);
    panel(b, r, TOP2, "Time to first token (s): p50 and p90", ttft, 2, c2, n2);
    vlm_sb_printf(b, "</svg>\n");
    vlm_free(tok);
    vlm_free(ttft);
    return b->failed ? vlm_err(VLM_ERR_NOMEM, "out of memory writing the chart") : VLM_OK;
}

vlm_status vlm_loadtest_write_plot(const vlm_loadtest_results *r, const char *path) {
    vlm_strbuf svg = {0}, page = {0};
    vlm_status s = vlm_loadtest_plot_svg(r, &svg);
    size_t n = strlen(path);
    int html = n >= 5 && !strcmp(path + n - 5, ".html");
    if (s == VLM_OK && html) {
        vlm_sb_printf(&page,
                      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"/><title>vlm load test</title>"
                      "</head><body>\n");
        vlm_sb_append(&page, svg.data, svg.len);
        vlm_sb_printf(&page, "<pre>\n");
        vlm_strbuf csv = {0};
        s = vlm_loadtest_csv(r, &csv);
        if (s == VLM_OK) xml_text(&page, csv.data);
        vlm_sb_free(&csv);
        vlm_sb_printf(&page, "</pre>\n</body></html>\n");
    }
    const vlm_strbuf *out = html ? &page : &svg;
    if (s == VLM_OK)
        s = out->failed ? vlm_err(VLM_ERR_NOMEM, "out of memory writing the chart")
                        : vlm_write_file(path, out->data, out->len);
    vlm_sb_free(&svg);
    vlm_sb_free(&page);
    return s == VLM_OK ? s : vlm_err_ctx(s, "--plot %s", path);
}
