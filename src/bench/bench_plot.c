/* A self-contained chart of a benchmark (no tool or script needed to read it): per mode, the mean
 * duration stacked by stage (preprocess, vision, prefill, decode, and what the stages leave of the
 * wall clock) with one-std error bars, and the mean throughput with its std. SVG, or an HTML page
 * with the SVG inline and the numbers in a table. Both are well-formed XML. */
#include <math.h>
#include <string.h>
#include <strings.h>

#include "bench/bench.h"

enum { W = 820, H = 680, LEFT = 80, PLOT_W = 520, TOP1 = 86, TOP2 = 406, PANEL_H = 220 };

typedef struct {
    const char *name, *color;
    vlm_bench_metric metric;
} stage;

static const stage k_stages[] = {
    {"preprocess", "#8da0cb", VLM_BM_PREPROCESS_TIME},
    {"vision", "#66c2a5", VLM_BM_VISION_TIME},
    {"prefill", "#fc8d62", VLM_BM_PREFILL_TIME},
    {"decode", "#e78ac3", VLM_BM_DECODE_TIME},
};
enum { N_STAGES = 4 };
static const char k_other_color[] = "#cccccc";

static void xml_text(vlm_strbuf *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': vlm_sb_append(b, "&amp;", 5); break;
        case '<': vlm_sb_append(b, "&lt;", 4); break;
        case '>': vlm_sb_append(b, "&gt;", 4); break;
        case '"': vlm_sb_append(b, "&quot;", 6); break;
        default:
            if ((unsigned char)*s >= 0x20 || *s == '\t' || *s == '\n') vlm_sb_append(b, s, 1);
        }
    }
}

/* A round axis step giving about five ticks up to max. */
static double nice_step(double max) {
    if (!(max > 0) || !isfinite(max)) return 1.0;
    double raw = max / 5, mag = pow(10, floor(log10(raw))), f = raw / mag;
    return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

static int ran(const vlm_bench_mode_result *m) { return m->outcome == VLM_BENCH_RAN && m->n_runs > 0; }

static double stage_sum(const vlm_bench_mode_result *m) {
    double s = 0;
    for (int i = 0; i < N_STAGES; i++) s += m->stats[k_stages[i].metric].mean;
    return s;
}

static void error_bar(vlm_strbuf *b, double x, double y_lo, double y_hi) {
    vlm_sb_printf(b,
                  "<g class=\"err\" stroke=\"#222\" stroke-width=\"1.2\"><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" "
                  "y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/><line x1=\"%.1f\" y1=\"%.1f\" "
                  "x2=\"%.1f\" y2=\"%.1f\"/></g>\n",
                  x, y_lo, x, y_hi, x - 5, y_lo, x + 5, y_lo, x - 5, y_hi, x + 5, y_hi);
}

/* Axis with ticks and a title for a panel whose values go from 0 to top. */
static void axis(vlm_strbuf *b, int top, double max, const char *title, double *scale_max) {
    double step = nice_step(max), top_v = step * ceil((max > 0 ? max : 1) / step);
    *scale_max = top_v;
    vlm_sb_printf(b, "<text x=\"%d\" y=\"%d\" class=\"title\">", LEFT, top - 16);
    xml_text(b, title);
    vlm_sb_printf(b, "</text>\n");
    for (int i = 0; i * step <= top_v * (1 + 1e-9); i++) {
        double y = top + PANEL_H - PANEL_H * (i * step / top_v);
        vlm_sb_printf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", LEFT, y,
                      LEFT + PLOT_W, y);
        vlm_sb_printf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", LEFT - 6, y + 4, i * step);
    }
    vlm_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", LEFT, top + PANEL_H,
                  LEFT + PLOT_W, top + PANEL_H);
    vlm_sb_printf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#444\"/>\n", LEFT, top, LEFT,
                  top + PANEL_H);
}

static double ypos(int top, double v, double scale_max) {
    if (v < 0) v = 0;
    return top + PANEL_H - PANEL_H * (v / scale_max);
}

static void mode_label(vlm_strbuf *b, double cx, int top, const vlm_bench_mode_result *m) {
    vlm_sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", cx, top + PANEL_H + 18,
                  vlm_mode_name(m->mode));
    if (!ran(m))
        vlm_sb_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" class=\"note\">skipped</text>\n", cx,
                      top + PANEL_H - 8);
}

static void duration_panel(vlm_strbuf *b, const vlm_bench_results *r) {
    const vlm_bench_mode_result *modes = r->overall;
    double max = 0;
    for (int k = 0; k < r->n_modes; k++) {
        if (!ran(&modes[k])) continue;
        const vlm_bench_stats *d = &modes[k].stats[VLM_BM_DURATION];
        double top = fmax(d->mean + d->std, stage_sum(&modes[k]));
        for (int i = 0; i < N_STAGES; i++)
            top = fmax(top, stage_sum(&modes[k]) + modes[k].stats[k_stages[i].metric].std);
        max = fmax(max, top);
    }
    double smax;
    axis(b, TOP1, max, "Duration per stage (s): mean, error bars one std", &smax);
    double slot = (double)PLOT_W / r->n_modes, bw = fmin(slot * 0.5, 90);
    for (int k = 0; k < r->n_modes; k++) {
        const vlm_bench_mode_result *m = &modes[k];
        double cx = LEFT + slot * (k + 0.5), x0 = cx - bw / 2, acc = 0;
        mode_label(b, cx, TOP1, m);
        if (!ran(m)) continue;
        vlm_sb_printf(b, "<g class=\"bar\" data-mode=\"%s\">\n", vlm_mode_name(m->mode));
        for (int i = 0; i < N_STAGES; i++) {
            const vlm_bench_stats *s = &m->stats[k_stages[i].metric];
            double y1 = ypos(TOP1, acc, smax), y2 = ypos(TOP1, acc + s->mean, smax);
            vlm_sb_printf(b,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s %s: %.4f s "
                          "(std %.4f)</title></rect>\n",
                          x0, y2, bw, y1 - y2, k_stages[i].color, vlm_mode_name(m->mode), k_stages[i].name, s->mean,
                          s->std);
            acc += s->mean;
        }
        const vlm_bench_stats *d = &m->stats[VLM_BM_DURATION];
        double other = d->mean - acc; /* tokenization, template, result assembly */
        if (other > 0) {
            double y1 = ypos(TOP1, acc, smax), y2 = ypos(TOP1, d->mean, smax);
            vlm_sb_printf(b,
                          "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>%s other: "
                          "%.4f s</title></rect>\n",
                          x0, y2, bw, y1 - y2, k_other_color, vlm_mode_name(m->mode), other);
        }
        /* per-stage bars at each segment's top (slightly apart), the total's at the top */
        acc = 0;
        for (int i = 0; i < N_STAGES; i++) {
            const vlm_bench_stats *s = &m->stats[k_stages[i].metric];
            acc += s->mean;
            double x = x0 + bw * (0.2 + 0.15 * i);
            error_bar(b, x, ypos(TOP1, acc - s->std, smax), ypos(TOP1, acc + s->std, smax));
        }
        double total = fmax(d->mean, acc);
        error_bar(b, cx + bw * 0.35, ypos(TOP1, d->mean - d->std, smax), ypos(TOP1, d->mean + d->std, smax));
        vlm_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3f s</text>\n</g>\n", cx,
                      ypos(TOP1, total + d->std, smax) - 6, d->mean);
    }
    /* legend */
    int lx = LEFT + PLOT_W + 30, ly = TOP1 + 10;
    for (int i = 0; i <= N_STAGES; i++) {
        const char *name = i < N_STAGES ? k_stages[i].name : "other (rest of the run)";
        const char *color = i < N_STAGES ? k_stages[i].color : k_other_color;
        vlm_sb_printf(b,
                      "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" fill=\"%s\"/>"
                      "<text x=\"%d\" y=\"%d\">%s</text>\n",
                      lx, ly + 22 * i, color, lx + 20, ly + 22 * i + 12, name);
    }
}

static void throughput_panel(vlm_strbuf *b, const vlm_bench_results *r) {
    const vlm_bench_mode_result *modes = r->overall;
    double max = 0;
    for (int k = 0; k < r->n_modes; k++)
        if (ran(&modes[k]))
            max = fmax(max, modes[k].stats[VLM_BM_TOKENS_PER_SEC].mean + modes[k].stats[VLM_BM_TOKENS_PER_SEC].std);
    double smax;
    axis(b, TOP2, max, "Throughput (tokens/s): mean, error bars one std", &smax);
    double slot = (double)PLOT_W / r->n_modes, bw = fmin(slot * 0.5, 90);
    for (int k = 0; k < r->n_modes; k++) {
        const vlm_bench_mode_result *m = &modes[k];
        double cx = LEFT + slot * (k + 0.5);
        mode_label(b, cx, TOP2, m);
        if (!ran(m)) continue;
        const vlm_bench_stats *s = &m->stats[VLM_BM_TOKENS_PER_SEC];
        double y0 = ypos(TOP2, 0, smax), y1 = ypos(TOP2, s->mean, smax);
        vlm_sb_printf(b,
                      "<g class=\"bar\" data-mode=\"%s\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"#4c78a8\"><title>%s: %.3f tokens/s (std %.3f)</title></rect>\n",
                      vlm_mode_name(m->mode), cx - bw / 2, y1, bw, y0 - y1, vlm_mode_name(m->mode), s->mean, s->std);
        error_bar(b, cx, ypos(TOP2, s->mean - s->std, smax), ypos(TOP2, s->mean + s->std, smax));
        vlm_sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>\n</g>\n", cx,
                      ypos(TOP2, s->mean + s->std, smax) - 6, s->mean);
    }
}

vlm_status vlm_bench_plot_svg(const vlm_bench_results *r, vlm_strbuf *b) {
    vlm_sb_printf(b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\" font-size=\"12\">\n",
                  W, H, W, H);
    vlm_sb_printf(b, "<style>.title{font-size:14px;font-weight:bold}.note{fill:#888;font-style:italic}</style>\n");
    vlm_sb_printf(b, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n<text x=\"%d\" y=\"24\" class=\"title\">", W,
                  H, LEFT);
    vlm_sb_printf(b, "vlm bench: ");
    xml_text(b, r->model_id ? r->model_id : "");
    vlm_sb_printf(b, " on %s (", vlm_device_name(r->device));
    xml_text(b, r->device_name);
    vlm_sb_printf(b,
                  ")</text>\n<text x=\"%d\" y=\"42\">%d run%s per mode, %d image%s, at most %d tokens%s, %s</text>\n",
                  LEFT, r->runs, r->runs == 1 ? "" : "s", r->n_images, r->n_images == 1 ? "" : "s", r->max_tokens,
                  r->ignore_eos ? " (exactly, --ignore-eos)" : "", r->quantize ? "4-bit" : "not quantized");
    duration_panel(b, r);
    throughput_panel(b, r);
    vlm_sb_printf(b, "</svg>\n");
    if (b->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory drawing the benchmark chart");
    return VLM_OK;
}

static void html_table(vlm_strbuf *b, const vlm_bench_results *r) {
    static const vlm_bench_metric cols[] = {VLM_BM_DURATION,     VLM_BM_PREPROCESS_TIME, VLM_BM_VISION_TIME,
                                            VLM_BM_PREFILL_TIME, VLM_BM_DECODE_TIME,     VLM_BM_TOKENS_PER_SEC};
    vlm_sb_printf(b, "<table>\n<tr><th>mode</th>");
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
        vlm_sb_printf(b, "<th>%s</th>", vlm_bench_metrics[cols[c]].label);
    vlm_sb_printf(b, "<th>runs</th></tr>\n");
    for (int k = 0; k < r->n_modes; k++) {
        const vlm_bench_mode_result *m = &r->overall[k];
        vlm_sb_printf(b, "<tr><td>%s</td>", vlm_mode_name(m->mode));
        if (!ran(m)) {
            vlm_sb_printf(b, "<td colspan=\"%d\">skipped: ", (int)(sizeof cols / sizeof cols[0]) + 1);
            xml_text(b, m->reason);
            vlm_sb_printf(b, "</td></tr>\n");
            continue;
        }
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
            vlm_sb_printf(b, "<td>%.4f &#177; %.4f</td>", m->stats[cols[c]].mean, m->stats[cols[c]].std);
        vlm_sb_printf(b, "<td>%d</td></tr>\n", m->n_runs);
    }
    vlm_sb_printf(b, "</table>\n");
}

static vlm_status plot_html(const vlm_bench_results *r, vlm_strbuf *b) {
    vlm_sb_printf(b,
                  "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
                  "<meta charset=\"utf-8\"/>\n<title>vlm bench: ");
    xml_text(b, r->model_id ? r->model_id : "");
    vlm_sb_printf(b,
                  "</title>\n<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                  "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}</style>\n</head>\n<body>\n");
    vlm_sb_printf(b, "<p>Prompt: ");
    xml_text(b, r->prompt ? r->prompt : "");
    vlm_sb_printf(b, "<br/>Timestamp: ");
    xml_text(b, r->timestamp);
    vlm_sb_printf(b, "</p>\n");
    VLM_TRY(vlm_bench_plot_svg(r, b));
    html_table(b, r);
    vlm_sb_printf(b, "</body>\n</html>\n");
    if (b->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory writing the benchmark chart page");
    return VLM_OK;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && !strcasecmp(s + n - m, suffix);
}

int vlm_bench_plot_format_ok(const char *path) { return ends_with(path, ".svg") || ends_with(path, ".html"); }

vlm_status vlm_bench_write_plot(const vlm_bench_results *r, const char *path) {
    if (!vlm_bench_plot_format_ok(path))
        return vlm_err(VLM_ERR_INVALID, "--plot %s: the chart is written as .svg or .html", path);
    vlm_strbuf b = {0};
    vlm_status s = ends_with(path, ".html") ? plot_html(r, &b) : vlm_bench_plot_svg(r, &b);
    if (s == VLM_OK) s = vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s == VLM_OK ? s : vlm_err_ctx(s, "--plot %s", path);
}
