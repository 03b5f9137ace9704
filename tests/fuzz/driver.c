/* A small deterministic mutation driver for the fuzz targets, so a short fuzz run is part of every
 * test run without libFuzzer (gcc builds). Usage: fuzz_X [-runs=N] [-seed=S] CORPUS_DIR_OR_FILE...
 * Each run takes a seed input, applies a few random mutations (bit flips, byte sets to boundary
 * values, truncation, duplication, insertion of random bytes) and feeds it to the target. An input
 * that crashes the target is written to ./crash-<target>-input (replay: fuzz_X -runs=0 FILE). */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    uint8_t *data;
    size_t size;
} blob;

static blob g_seeds[4096];
static int g_n;

static void add_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f || g_n >= 4096) {
        if (f) fclose(f);
        return;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (64 << 20)) {
        fclose(f);
        return;
    }
    blob b = {malloc((size_t)n + 1), (size_t)n};
    if (b.data && fread(b.data, 1, (size_t)n, f) == (size_t)n) g_seeds[g_n++] = b;
    else free(b.data);
    fclose(f);
}

static void add_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        add_path(p);
    }
    if (d) closedir(d);
}

/* The input being run, for the crash handler. */
static const uint8_t *g_cur;
static size_t g_cur_n;
static char g_crash_path[256];

static void on_crash(int sig) {
    FILE *f = fopen(g_crash_path, "wb");
    if (f) {
        fwrite(g_cur, 1, g_cur_n, f);
        fclose(f);
    }
    static const char msg[] = "fuzz: the target crashed; the input is in ";
    if (write(2, msg, sizeof msg - 1) < 0 || write(2, g_crash_path, strlen(g_crash_path)) < 0 ||
        write(2, "\n", 1) < 0) {}
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run_one(const uint8_t *d, size_t n) {
    g_cur = d;
    g_cur_n = n;
    LLVMFuzzerTestOneInput(d, n);
}

static uint64_t g_rng = 0x853c49e6748fea9bull;
static uint32_t rnd(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}

int main(int argc, char **argv) {
    long runs = 1000;
    for (int i = 1; i < argc; i++) {
        if (!strncmp(argv[i], "-runs=", 6)) runs = atol(argv[i] + 6);
        else if (!strncmp(argv[i], "-seed=", 6)) g_rng = strtoull(argv[i] + 6, NULL, 10);
        else add_path(argv[i]);
    }
    const char *base = strrchr(argv[0], '/');
    snprintf(g_crash_path, sizeof g_crash_path, "crash-%s-input", base ? base + 1 : argv[0]);
    int sigs[] = {SIGSEGV, SIGILL, SIGABRT, SIGFPE, SIGBUS, SIGTRAP};
    for (int i = 0; i < 6; i++) signal(sigs[i], on_crash);
    if (!g_n) {
        static uint8_t empty[1];
        g_seeds[g_n++] = (blob){empty, 0};
    }
    for (int i = 0; i < g_n; i++) run_one(g_seeds[i].data, g_seeds[i].size);
    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    for (long r = 0; r < runs; r++) {
        blob *s = &g_seeds[rnd() % (uint32_t)g_n];
        size_t n = s->size;
        if (n + 64 > cap) {
            cap = (n + 64) * 2;
            buf = realloc(buf, cap);
        }
        memcpy(buf, s->data, n);
        int muts = 1 + (int)(rnd() % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = n ? rnd() % n : 0;
            switch (rnd() % 7) {
            case 0:
                if (n) buf[pos] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1:
                if (n) buf[pos] = (uint8_t[]){0, 0xff, 0x7f, 0x80, '"', '{', '9', '-'}[rnd() % 8];
                break;
            case 2: n = n ? rnd() % n : 0; break; /* truncate */
            case 3:
                if (n) buf[pos] = (uint8_t)rnd();
                break;
            case 4: { /* insert random bytes */
                size_t k = 1 + rnd() % 8;
                if (n + k <= cap) {
                    memmove(buf + pos + k, buf + pos, n - pos);
                    for (size_t j = 0; j < k; j++) buf[pos + j] = (uint8_t)rnd();
                    n += k;
                }
                break;
            }
            case 5:
                if (n >= 8)
                    for (int j = 0; j < 8; j++) buf[j] = (uint8_t)rnd();
                break; /* length prefix */
            case 6:
                if (n > 4) {
                    size_t a = rnd() % n, b = rnd() % n;
                    uint8_t t = buf[a];
                    buf[a] = buf[b];
                    buf[b] = t;
                }
                break;
            }
        }
        run_one(buf, n);
    }
    free(buf);
    printf("fuzz: %ld runs over %d seed inputs, no crash\n", runs, g_n);
    return 0;
}
