/* No input aborts the host process (issue 13): each case runs in a child
 * process under a lowered address-space limit (RLIMIT_AS) and a time limit,
 * and the parent asserts that every child exited normally (not killed by a
 * signal: SIGABRT from a failed allocation, SIGSEGV, SIGALRM from a hang)
 * after every call returned an allowed status.
 *
 *   1. rnn_stream_new with batch 2^40, SIZE_MAX, 2^60: OUT_OF_MEMORY or
 *      INVALID_ARGUMENT, never OK for a size that wraps; models and machines
 *      too large to allocate: a status.
 *   2. A 576 MB model (LSTM I = 1, H = 6000): two clones under 1.4 GB (the
 *      second cannot fit), a train step with Adam under 1.6 GB (its state
 *      cannot fit: OUT_OF_MEMORY, parameters unchanged, SGD still works), a
 *      save under 1000 MiB (OK: streamed, no second copy of the model) and a
 *      load beside the model (OK or OUT_OF_MEMORY).
 *   3. Files whose metadata claims sizes their tensors do not have (model
 *      hidden_size 8000 and 30000, NTM sizes up to 2^62): refused under a
 *      256 MiB limit with a format error naming the file (and the tensor),
 *      not OUT_OF_MEMORY: the metadata is checked against the tensors before
 *      anything is allocated.
 *   4. rnn_set_num_threads(1025 and SIZE_MAX): INVALID_ARGUMENT at once, for
 *      the cap (the message names 1024), not for threads that failed to
 *      start; RNN_NUM_THREADS above the cap is ignored (no more threads are
 *      started than the pool keeps), within it obeyed.
 *   5. Two threads saving two models to one path while a third loads it:
 *      no failed save, no failed or torn load, no temporary file left.
 *   6. Parameter-like tensors the configuration does not use (bias tensors
 *      with bias = false) and missing ones: errors naming them; other
 *      tensors are ignored.
 *
 * The parent calls nothing in librnn that starts its thread pool (threads do
 * not survive fork): the files are written by a setup child and edited here
 * in plain C. Each child pins the pool to 2 threads (but for the
 * RNN_NUM_THREADS cases) and glibc to one malloc arena, so that its address
 * space at start (about 10 MiB) is the same on any machine. Case 2 writes a
 * 576 MB file in TMP_DIR (removed afterwards). Run natively: a lowered
 * RLIMIT_AS and valgrind do not mix.
 *
 * usage: test_limits TMP_DIR [CASE_NAME_SUBSTRING] */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rnn.h"

#define MB ((size_t)1 << 20)

static const char *tmp_dir;
static char small_model[4096], small_ntm[4096], small_ntm_learned[4096];

/* ---- the child's side: report every call through a pipe ---------------- */

static int report_fd = -1;
static int child_failures = 0;

static void note(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 2) n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(report_fd, buf + off, (size_t)(n - off));
        if (w <= 0) return;
        off += (int)w;
    }
}

static void fail(const char *fmt, ...) {
    char buf[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    note("FAIL: %s", buf);
    child_failures++;
}

#define BIT(s) (1u << (unsigned)(s))
#define OOM_OR_INVALID (BIT(RNN_STATUS_OUT_OF_MEMORY) | BIT(RNN_STATUS_INVALID_ARGUMENT))
#define OK_OR_OOM (BIT(RNN_STATUS_OK) | BIT(RNN_STATUS_OUT_OF_MEMORY))

/* Records `call`'s status and message; a status outside `allowed` fails. */
static rnn_status expect(const char *call, rnn_status got, unsigned allowed) {
    note("  %s -> %s%s%s", call, rnn_status_string((uint32_t)got),
         got == RNN_STATUS_OK ? "" : ": ", rnn_last_error_message());
    if ((unsigned)got >= 32 || !(allowed & BIT(got))) fail("%s: status %d not allowed", call, (int)got);
    return got;
}

/* A call that sets the case up must succeed: otherwise the case proves
 * nothing (the limit is too low for good calls). */
#define SETUP(call)                                                                   \
    do {                                                                              \
        if (expect(#call, (call), BIT(RNN_STATUS_OK)) != RNN_STATUS_OK) {             \
            note("FAIL: setup call failed (limit too low for a good call?)");         \
            _exit(2);                                                                 \
        }                                                                             \
    } while (0)

static long vm_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t klen = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') v = strtol(line + klen + 1, NULL, 10);
    fclose(f);
    return v;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void path_in(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "%s/%s", tmp_dir, name);
}

static rnn_model *new_model(uint32_t cell, size_t input, size_t hidden, uint64_t seed) {
    rnn_config c;
    SETUP(rnn_config_init(&c, cell, input, hidden));
    c.seed = seed;
    rnn_model *m = NULL;
    SETUP(rnn_model_new(&c, &m));
    return m;
}

/* ---- 1: sizes from the caller ------------------------------------------ */

static void case_stream_batch(void) {
    rnn_model *m = new_model(RNN_CELL_KIND_LSTM, 16, 16, 1);
    const size_t batches[] = {(size_t)1 << 40, SIZE_MAX, (size_t)1 << 60};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        rnn_stream *s = (rnn_stream *)(uintptr_t)1;
        char call[96];
        snprintf(call, sizeof call, "rnn_stream_new(batch = %zu)", batches[i]);
        expect(call, rnn_stream_new(m, batches[i], &s), OOM_OR_INVALID);
        if (s != NULL) fail("%s: *out not NULL after a failure", call);
        rnn_stream_free(s == (rnn_stream *)(uintptr_t)1 ? NULL : s);
    }
    /* A good batch still works under the same limit. */
    rnn_stream *s = NULL;
    SETUP(rnn_stream_new(m, 4, &s));
    float x[4 * 16] = {0}, y[4 * 16];
    x[3] = 0.5f;
    SETUP(rnn_stream_step(s, m, x, y, 4 * 16));
    rnn_stream_free(s);
    rnn_model_free(m);
}

static void case_new_too_large(void) {
    rnn_config c;
    SETUP(rnn_config_init(&c, RNN_CELL_KIND_LSTM, 1, 30000)); /* 14.4 GB */
    rnn_model *m = (rnn_model *)(uintptr_t)1;
    expect("rnn_model_new(LSTM H = 30000)", rnn_model_new(&c, &m), OOM_OR_INVALID);
    if (m != NULL) fail("rnn_model_new: *out not NULL after a failure");
    c.hidden_size = (size_t)1 << 40; /* 4H * H overflows */
    m = NULL;
    expect("rnn_model_new(LSTM H = 2^40)", rnn_model_new(&c, &m), OOM_OR_INVALID);
    rnn_model_free(m);
    rnn_ntm_config nc;
    SETUP(rnn_ntm_config_init(&nc));
    nc.learned_memory = 1;
    nc.memory_rows = (size_t)1 << 28;
    nc.memory_width = 64; /* a learned memory of 64 GB */
    rnn_ntm *n = NULL;
    expect("rnn_ntm_new(learned memory 2^28 x 64)", rnn_ntm_new(&nc, &n), OOM_OR_INVALID);
    rnn_ntm_free(n);
    nc.memory_width = (size_t)1 << 40; /* N * M overflows */
    n = NULL;
    expect("rnn_ntm_new(learned memory 2^28 x 2^40)", rnn_ntm_new(&nc, &n), OOM_OR_INVALID);
    rnn_ntm_free(n);
}

/* ---- 2: a 576 MB model under an address-space limit -------------------- */

enum { BIG_H = 6000 }; /* LSTM I = 1: 4H(1 + H) + 8H floats = 576 MB */

static void case_clone_twice(void) {
    rnn_model *m = new_model(RNN_CELL_KIND_LSTM, 1, BIG_H, 3);
    rnn_model *a = NULL, *b = NULL;
    expect("rnn_model_clone #1", rnn_model_clone(m, &a), OK_OR_OOM);
    /* Three copies (1.7 GB) cannot fit under 1.4 GB. */
    expect("rnn_model_clone #2", rnn_model_clone(m, &b), BIT(RNN_STATUS_OUT_OF_MEMORY));
    if (b != NULL) fail("rnn_model_clone #2: *out not NULL after a failure");
    rnn_model_free(b);
    rnn_model_free(a);
    /* The memory came back: a clone works again. */
    a = NULL;
    expect("rnn_model_clone after freeing", rnn_model_clone(m, &a), BIT(RNN_STATUS_OK));
    rnn_model_free(a);
    rnn_model_free(m);
}

static void case_train_adam(void) {
    rnn_model *m = new_model(RNN_CELL_KIND_LSTM, 1, BIG_H, 4);
    rnn_trainer *t = NULL;
    SETUP(rnn_trainer_new(m, &t)); /* gradients: another 576 MB */
    rnn_adam_config ac;
    SETUP(rnn_adam_config_init(&ac, 1e-3));
    rnn_optimizer *adam = NULL;
    SETUP(rnn_optimizer_new_adam(&ac, &adam));
    enum { T = 2, B = 1 };
    float x[T * B] = {0.5f, -0.25f}, target[T * B * BIG_H];
    for (size_t i = 0; i < T * B * BIG_H; i++) target[i] = 0.01f * (float)(i % 7);
    static float before[4 * BIG_H], after[4 * BIG_H];
    SETUP(rnn_model_param_get(m, "bias_ih_l0", before, 4 * BIG_H));
    double loss = -1.0;
    /* Adam's two moment buffers (1.15 GB more) cannot fit. */
    rnn_status st = expect("rnn_trainer_step_mse(Adam)",
                           rnn_trainer_step_mse(t, m, adam, x, T, B, NULL, NULL, NULL, target,
                                                0.0f, &loss),
                           BIT(RNN_STATUS_OUT_OF_MEMORY));
    SETUP(rnn_model_param_get(m, "bias_ih_l0", after, 4 * BIG_H));
    if (st != RNN_STATUS_OK && memcmp(before, after, sizeof before) != 0)
        fail("a failed step changed the parameters");
    /* The trainer and the model still work: SGD has no state. */
    rnn_sgd_config sc;
    SETUP(rnn_sgd_config_init(&sc, 1e-3));
    rnn_optimizer *sgd = NULL;
    SETUP(rnn_optimizer_new_sgd(&sc, &sgd));
    expect("rnn_trainer_step_mse(SGD) after the failure",
           rnn_trainer_step_mse(t, m, sgd, x, T, B, NULL, NULL, NULL, target, 0.0f, &loss),
           BIT(RNN_STATUS_OK));
    rnn_optimizer_free(sgd);
    rnn_optimizer_free(adam);
    rnn_trainer_free(t);
    rnn_model_free(m);
}

static void case_save_big(void) {
    char path[4096];
    path_in(path, sizeof path, "big.safetensors");
    rnn_model *m = new_model(RNN_CELL_KIND_LSTM, 1, BIG_H, 5);
    /* Streamed to the file: no second copy of the model in memory. */
    expect("rnn_model_save(576 MB)", rnn_model_save(m, path), BIT(RNN_STATUS_OK));
    note("  [peak address space %ld MiB after the save]", vm_kib("VmPeak") / 1024);
    /* Loading it next to the first copy cannot fit: a status. */
    rnn_model *back = NULL;
    expect("rnn_model_load(576 MB) beside the model", rnn_model_load(path, &back), OK_OR_OOM);
    rnn_model_free(back);
    rnn_model_free(m);
    unlink(path);
}

/* ---- 3 and 6: crafted files --------------------------------------------- */

static void expect_load_refused(const char *name, const char *needle) {
    char path[4096], call[4200];
    path_in(path, sizeof path, name);
    snprintf(call, sizeof call, "rnn_model_load(%s)", name);
    rnn_model *m = (rnn_model *)(uintptr_t)1;
    /* A format error (checked before allocating), not OUT_OF_MEMORY. */
    expect(call, rnn_model_load(path, &m), BIT(RNN_STATUS_IO));
    if (m != NULL) fail("%s: *out not NULL after a failure", call);
    if (strstr(rnn_last_error_message(), name) == NULL) fail("%s: the message names no file", call);
    if (needle && strstr(rnn_last_error_message(), needle) == NULL)
        fail("%s: the message does not name %s", call, needle);
}

static void expect_ntm_refused(const char *name, const char *needle) {
    char path[4096], call[4200];
    path_in(path, sizeof path, name);
    snprintf(call, sizeof call, "rnn_ntm_load(%s)", name);
    rnn_ntm *n = (rnn_ntm *)(uintptr_t)1;
    expect(call, rnn_ntm_load(path, &n), BIT(RNN_STATUS_IO));
    if (n != NULL) fail("%s: *out not NULL after a failure", call);
    if (strstr(rnn_last_error_message(), name) == NULL) fail("%s: the message names no file", call);
    if (needle && strstr(rnn_last_error_message(), needle) == NULL)
        fail("%s: the message does not name %s", call, needle);
}

static void case_claimed_sizes(void) {
    /* The untouched files load under the same limit. */
    rnn_model *m = NULL;
    SETUP(rnn_model_load(small_model, &m));
    rnn_model_free(m);
    rnn_ntm *n = NULL;
    SETUP(rnn_ntm_load(small_ntm, &n));
    rnn_ntm_free(n);
    expect_load_refused("claims_h8000.safetensors", "weight_ih_l0");
    expect_load_refused("claims_h30000.safetensors", "weight_ih_l0");
    expect_load_refused("claims_h2p62.safetensors", NULL);
    expect_load_refused("claims_layers1e9.safetensors", NULL);
    expect_ntm_refused("ntm_rows1e9.safetensors", NULL);
    expect_ntm_refused("ntm_width1e9.safetensors", NULL);
    expect_ntm_refused("ntm_controller1e8.safetensors", NULL);
    expect_ntm_refused("ntm_controller2p62.safetensors", NULL);
    expect_ntm_refused("ntm_learned_rows1e9.safetensors", NULL);
}

static void case_unused_and_missing(void) {
    expect_load_refused("bias_false_with_bias.safetensors", "bias_");
    expect_load_refused("missing_weight_hh.safetensors", "weight_hh_l0");
    /* Tensors not named like a parameter are ignored. */
    char path[4096];
    path_in(path, sizeof path, "bias_false_other_tensors.safetensors");
    rnn_model *m = NULL;
    expect("rnn_model_load(bias_false_other_tensors)", rnn_model_load(path, &m), BIT(RNN_STATUS_OK));
    if (m) {
        rnn_config c;
        SETUP(rnn_model_config(m, &c));
        if (c.bias != 0 || c.hidden_size != 4) fail("loaded the wrong configuration");
        float x[3] = {0.1f, 0.2f, 0.3f}, y[3 * 4];
        expect("rnn_model_forward", rnn_model_forward(m, x, 3, 1, NULL, NULL, y, 12, NULL, 0, NULL, 0),
               BIT(RNN_STATUS_OK));
    }
    rnn_model_free(m);
    /* A constant-memory machine whose file holds init.memory. */
    expect_ntm_refused("ntm_unused_init_memory.safetensors", "init.memory");
}

/* ---- 4: thread counts ---------------------------------------------------- */

static void case_thread_cap(void) {
    SETUP(rnn_set_num_threads(2));
    double t0 = now_s();
    const size_t counts[] = {RNN_MAX_THREADS + 1, SIZE_MAX};
    for (size_t i = 0; i < 2; i++) {
        char call[64];
        snprintf(call, sizeof call, "rnn_set_num_threads(%zu)", counts[i]);
        expect(call, rnn_set_num_threads(counts[i]), BIT(RNN_STATUS_INVALID_ARGUMENT));
        /* Refused for the cap, not for threads that failed to start. */
        if (!strstr(rnn_last_error_message(), "1024")) fail("%s: the message names no cap", call);
    }
    if (now_s() - t0 > 1.0) fail("refusing a thread count took %.1f s", now_s() - t0);
    size_t n = 0;
    SETUP(rnn_get_num_threads(&n));
    if (n != 2) fail("the pool changed to %zu threads", n);
}

static void env_threads(const char *value, size_t want) {
    setenv("RNN_NUM_THREADS", value, 1);
    long start = vm_kib("VmSize");
    size_t n = 0;
    SETUP(rnn_get_num_threads(&n));
    long grown = (vm_kib("VmPeak") - start) / 1024;
    note("  RNN_NUM_THREADS=%s -> %zu threads; address space grew by %ld MiB", value, n, grown);
    if (want ? n != want : (n < 1 || n > RNN_MAX_THREADS))
        fail("RNN_NUM_THREADS=%s gave %zu threads", value, n);
    /* No more threads were started than the pool kept (a stack of 2 MiB
     * and a little more each): a count above the cap is ignored, not tried. */
    if (grown > 64 + 4 * (long)n) fail("RNN_NUM_THREADS=%s: %ld MiB for %zu threads", value, grown, n);
}

static void case_env_over_cap(void) { env_threads("100000", 0); }
static void case_env_max(void) {
    char v[32];
    snprintf(v, sizeof v, "%zu", (size_t)SIZE_MAX);
    env_threads(v, 0);
}
static void case_env_within_cap(void) { env_threads("3", 3); }

/* ---- 5: concurrent saves and loads of one path -------------------------- */

enum { SAVES = 300, CH = 32 };
static rnn_model *models[2];
static float bias_of[2][4 * CH];
static char shared_path[4096];
static atomic_int writers_done;

typedef struct {
    int id;
    int failures;
    int torn;
    int loads;
    char first_error[512];
} worker_result;

static void *saver(void *arg) {
    worker_result *r = (worker_result *)arg;
    for (int i = 0; i < SAVES; i++) {
        if (rnn_model_save(models[r->id], shared_path) != RNN_STATUS_OK) {
            if (!r->failures++) snprintf(r->first_error, sizeof r->first_error, "%s", rnn_last_error_message());
        }
    }
    return NULL;
}

static void *loader(void *arg) {
    worker_result *r = (worker_result *)arg;
    float b[4 * CH];
    while (!atomic_load(&writers_done) || r->loads < 10) {
        rnn_model *m = NULL;
        r->loads++;
        if (rnn_model_load(shared_path, &m) != RNN_STATUS_OK) {
            if (!r->failures++) snprintf(r->first_error, sizeof r->first_error, "%s", rnn_last_error_message());
            continue;
        }
        if (rnn_model_param_get(m, "bias_hh_l0", b, 4 * CH) != RNN_STATUS_OK ||
            (memcmp(b, bias_of[0], sizeof b) != 0 && memcmp(b, bias_of[1], sizeof b) != 0))
            r->torn++;
        rnn_model_free(m);
    }
    return NULL;
}

static void case_concurrent_saves(void) {
    char dir[2048];
    path_in(dir, sizeof dir, "concurrent");
    mkdir(dir, 0700);
    snprintf(shared_path, sizeof shared_path, "%s/model.safetensors", dir);
    for (int i = 0; i < 2; i++) {
        models[i] = new_model(RNN_CELL_KIND_LSTM, 3, CH, 100 + (uint64_t)i);
        SETUP(rnn_model_param_get(models[i], "bias_hh_l0", bias_of[i], 4 * CH));
    }
    SETUP(rnn_model_save(models[0], shared_path));
    worker_result res[3];
    memset(res, 0, sizeof res);
    pthread_t th[3];
    res[0].id = 0;
    res[1].id = 1;
    pthread_create(&th[2], NULL, loader, &res[2]);
    pthread_create(&th[0], NULL, saver, &res[0]);
    pthread_create(&th[1], NULL, saver, &res[1]);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    atomic_store(&writers_done, 1);
    pthread_join(th[2], NULL);
    note("  2 x %d saves: %d + %d failed; %d loads: %d failed, %d torn", SAVES, res[0].failures,
         res[1].failures, res[2].loads, res[2].failures, res[2].torn);
    for (int i = 0; i < 3; i++)
        if (res[i].failures) fail("%s: %s", i < 2 ? "save" : "load", res[i].first_error);
    if (res[2].torn) fail("%d loads saw neither model", res[2].torn);
    /* No temporary file is left beside the model. */
    DIR *d = opendir(dir);
    struct dirent *e;
    int others = 0;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, "model.safetensors")) {
            if (others++ < 3) note("  left behind: %s", e->d_name);
        }
    }
    if (d) closedir(d);
    if (others) fail("%d files left beside the model", others);
    unlink(shared_path);
    rmdir(dir);
    rnn_model_free(models[0]);
    rnn_model_free(models[1]);
}

/* ---- setup: small files written by the library, edited in plain C ------- */

static void case_write_files(void) {
    rnn_model *m = new_model(RNN_CELL_KIND_LSTM, 1, 4, 9);
    SETUP(rnn_model_save(m, small_model));
    rnn_model_free(m);
    rnn_ntm_config nc;
    SETUP(rnn_ntm_config_init(&nc));
    rnn_ntm *n = NULL;
    SETUP(rnn_ntm_new(&nc, &n));
    SETUP(rnn_ntm_save(n, small_ntm));
    rnn_ntm_free(n);
    nc.learned_memory = 1;
    n = NULL;
    SETUP(rnn_ntm_new(&nc, &n));
    SETUP(rnn_ntm_save(n, small_ntm_learned));
    rnn_ntm_free(n);
}

/* A safetensors file: 8-byte little-endian header length, JSON header,
 * data (offsets relative to the data's start, so the header can change). */
typedef struct {
    char *header; /* NUL-terminated */
    unsigned char *data;
    size_t data_len;
} st_file;

static int read_st(const char *path, st_file *f) {
    FILE *fp = fopen(path, "rb");
    unsigned char len8[8];
    if (!fp || fread(len8, 1, 8, fp) != 8) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | len8[i];
    fseek(fp, 0, SEEK_END);
    long total = ftell(fp);
    if (total < 0 || n > (uint64_t)total - 8) return -1;
    fseek(fp, 8, SEEK_SET);
    f->header = (char *)calloc((size_t)n + 1, 1);
    f->data_len = (size_t)total - 8 - (size_t)n;
    f->data = (unsigned char *)malloc(f->data_len ? f->data_len : 1);
    if (!f->header || !f->data || fread(f->header, 1, (size_t)n, fp) != n ||
        fread(f->data, 1, f->data_len, fp) != f->data_len)
        return -1;
    fclose(fp);
    return 0;
}

static int write_st(const char *name, const st_file *f) {
    char path[4096];
    path_in(path, sizeof path, name);
    FILE *fp = fopen(path, "wb");
    if (!fp) return -1;
    size_t n = strlen(f->header), padded = (n + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(f->header, 1, n, fp) == n;
    for (size_t i = n; i < padded; i++) ok = ok && fputc(' ', fp) != EOF;
    ok = ok && fwrite(f->data, 1, f->data_len, fp) == f->data_len;
    return fclose(fp) == 0 && ok ? 0 : -1;
}

static st_file copy_st(const st_file *f) {
    st_file c = *f;
    c.header = strdup(f->header);
    return c;
}

/* Replaces `del` bytes at `pos` of *s by `ins`. */
static void splice(char **s, size_t pos, size_t del, const char *ins) {
    size_t n = strlen(*s), k = strlen(ins);
    char *out = (char *)malloc(n - del + k + 1);
    if (!out) exit(2);
    memcpy(out, *s, pos);
    memcpy(out + pos, ins, k);
    memcpy(out + pos + k, *s + pos + del, n - pos - del + 1);
    free(*s);
    *s = out;
}

/* Sets the string value of `"key": "..."` in the header. */
static int set_value(st_file *f, const char *key, const char *value) {
    char quoted[128];
    snprintf(quoted, sizeof quoted, "\"%s\"", key);
    char *k = strstr(f->header, quoted);
    if (!k) return -1;
    char *p = k + strlen(quoted);
    while (*p == ' ' || *p == ':') p++;
    if (*p != '"') return -1;
    char *end = strchr(p + 1, '"');
    if (!end) return -1;
    splice(&f->header, (size_t)(p + 1 - f->header), (size_t)(end - p - 1), value);
    return 0;
}

/* Renames tensor (or key) `from` to `to`. */
static int rename_key(st_file *f, const char *from, const char *to) {
    char q_from[128], q_to[128];
    snprintf(q_from, sizeof q_from, "\"%s\"", from);
    snprintf(q_to, sizeof q_to, "\"%s\"", to);
    char *k = strstr(f->header, q_from);
    if (!k) return -1;
    splice(&f->header, (size_t)(k - f->header), strlen(q_from), q_to);
    return 0;
}

static int craft_files(void) {
    st_file model, ntm, learned;
    if (read_st(small_model, &model) || read_st(small_ntm, &ntm) ||
        read_st(small_ntm_learned, &learned))
        return -1;
    int bad = 0;
    struct {
        const char *file, *key, *value;
    } claims[] = {
        {"claims_h8000.safetensors", "hidden_size", "8000"},
        {"claims_h30000.safetensors", "hidden_size", "30000"},
        {"claims_h2p62.safetensors", "hidden_size", "4611686018427387904"},
        {"claims_layers1e9.safetensors", "num_layers", "1000000000"},
    };
    for (size_t i = 0; i < sizeof claims / sizeof claims[0]; i++) {
        st_file c = copy_st(&model);
        bad |= set_value(&c, claims[i].key, claims[i].value) | write_st(claims[i].file, &c);
        free(c.header);
    }
    struct {
        const char *file, *key, *value;
    } ntm_claims[] = {
        {"ntm_rows1e9.safetensors", "memory_rows", "1000000000"},
        {"ntm_width1e9.safetensors", "memory_width", "1000000000"},
        {"ntm_controller1e8.safetensors", "controller_size", "100000000"},
        {"ntm_controller2p62.safetensors", "controller_size", "4611686018427387904"},
    };
    for (size_t i = 0; i < sizeof ntm_claims / sizeof ntm_claims[0]; i++) {
        st_file c = copy_st(&ntm);
        bad |= set_value(&c, ntm_claims[i].key, ntm_claims[i].value) |
               write_st(ntm_claims[i].file, &c);
        free(c.header);
    }
    {
        /* A learned memory of 1e9 rows, without its tensor. */
        st_file c = copy_st(&ntm);
        bad |= set_value(&c, "memory", "learned") | set_value(&c, "memory_rows", "1000000000") |
               write_st("ntm_learned_rows1e9.safetensors", &c);
        free(c.header);
    }
    {
        /* A learned memory's file made to say constant: init.memory unused. */
        st_file c = copy_st(&learned);
        bad |= set_value(&c, "memory", "constant") | set_value(&c, "memory_init", "0.5") |
               write_st("ntm_unused_init_memory.safetensors", &c);
        free(c.header);
    }
    {
        st_file c = copy_st(&model);
        bad |= set_value(&c, "bias", "false") | write_st("bias_false_with_bias.safetensors", &c);
        free(c.header);
        c = copy_st(&model);
        bad |= rename_key(&c, "weight_hh_l0", "renamed_hh_l0") |
               write_st("missing_weight_hh.safetensors", &c);
        free(c.header);
        c = copy_st(&model);
        bad |= set_value(&c, "bias", "false") | rename_key(&c, "bias_ih_l0", "other_ih_l0") |
               rename_key(&c, "bias_hh_l0", "other_hh_l0") |
               write_st("bias_false_other_tensors.safetensors", &c);
        free(c.header);
    }
    free(model.header);
    free(model.data);
    free(ntm.header);
    free(ntm.data);
    free(learned.header);
    free(learned.data);
    return bad ? -1 : 0;
}

/* ---- the parent: one child per case -------------------------------------- */

typedef struct {
    const char *name;
    void (*run)(void);
    size_t limit; /* RLIMIT_AS in bytes; 0: none */
    unsigned timeout_s;
    int default_threads; /* 1: leave the pool to RNN_NUM_THREADS / the cores */
} test_case;

static int parent_failures = 0;

static int run_case(const test_case *c) {
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        report_fd = fds[1];
        alarm(c->timeout_s);
        if (c->limit) {
            struct rlimit rl = {c->limit, c->limit};
            if (setrlimit(RLIMIT_AS, &rl) != 0) {
                note("FAIL: setrlimit: %s", strerror(errno));
                _exit(2);
            }
        }
        /* The same address-space baseline on any machine: 2 worker threads
         * (each has a stack) and one malloc arena (glibc reserves 64 MiB of
         * address space for each extra arena, up to 8 per core). Large
         * buffers are mmapped directly either way. */
#ifdef M_ARENA_MAX
        mallopt(M_ARENA_MAX, 1);
#endif
        if (!c->default_threads) SETUP(rnn_set_num_threads(2));
        note("  [address space %ld MiB at start, limit %zu MiB]", vm_kib("VmSize") / 1024,
             c->limit / MB);
        c->run();
        note("  [peak address space %ld MiB]", vm_kib("VmPeak") / 1024);
        _exit(child_failures ? 1 : 0);
    }
    close(fds[1]);
    char buf[8192];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
    close(fds[0]);
    int wst = 0;
    while (waitpid(pid, &wst, 0) < 0 && errno == EINTR) {
    }
    double dt = now_s() - t0;
    if (WIFSIGNALED(wst)) {
        int sig = WTERMSIG(wst);
        printf("FAIL %s: killed by signal %d (%s)%s after %.1f s\n", c->name, sig, strsignal(sig),
               sig == SIGALRM ? ": timed out" : "", dt);
        return 1;
    }
    if (!WIFEXITED(wst) || WEXITSTATUS(wst) != 0) {
        printf("FAIL %s: exit status %d after %.1f s\n", c->name,
               WIFEXITED(wst) ? WEXITSTATUS(wst) : -1, dt);
        return 1;
    }
    printf("ok   %s (%.1f s)\n", c->name, dt);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TMP_DIR [CASE]\n", argv[0]);
        return 2;
    }
    tmp_dir = argv[1];
    const char *only = argc > 2 ? argv[2] : NULL;
    snprintf(small_model, sizeof small_model, "%s/small_lstm.safetensors", tmp_dir);
    snprintf(small_ntm, sizeof small_ntm, "%s/small_ntm.safetensors", tmp_dir);
    snprintf(small_ntm_learned, sizeof small_ntm_learned, "%s/small_ntm_learned.safetensors",
             tmp_dir);
    const size_t GB_1_4 = 1400 * MB;
    const test_case setup = {"write the small files (no limit)", case_write_files, 0, 120, 0};
    const test_case cases[] = {
        {"1: rnn_stream_new(batch 2^40, SIZE_MAX, 2^60) under 512 MiB", case_stream_batch,
         512 * MB, 60, 0},
        {"1: models and machines too large for memory, under 512 MiB", case_new_too_large,
         512 * MB, 60, 0},
        {"2: rnn_model_clone twice of a 576 MB model under 1.4 GB", case_clone_twice, GB_1_4,
         300, 0},
        {"2: rnn_trainer_step_mse with Adam on a 576 MB model under 1.6 GB", case_train_adam,
         1600 * MB, 300, 0},
        {"2: rnn_model_save of a 576 MB model, load beside it, under 1000 MiB", case_save_big,
         1000 * MB, 300, 0},
        {"3: files claiming sizes their tensors lack, under 256 MiB", case_claimed_sizes,
         256 * MB, 60, 0},
        {"4: rnn_set_num_threads(1025, SIZE_MAX) under 512 MiB", case_thread_cap, 512 * MB, 20, 0},
        {"4: RNN_NUM_THREADS=100000 under 512 MiB", case_env_over_cap, 512 * MB, 20, 1},
        {"4: RNN_NUM_THREADS=SIZE_MAX under 512 MiB", case_env_max, 512 * MB, 20, 1},
        {"4: RNN_NUM_THREADS=3 under 512 MiB", case_env_within_cap, 512 * MB, 20, 1},
        {"5: 2 threads x 300 saves to one path, a thread loading it, under 1 GiB",
         case_concurrent_saves, 1024 * MB, 300, 0},
        {"6: unused and missing parameter tensors, under 256 MiB", case_unused_and_missing,
         256 * MB, 60, 0},
    };
    if (run_case(&setup) != 0 || craft_files() != 0) {
        printf("FAIL: could not write the test files in %s\n", tmp_dir);
        return 1;
    }
    int ran = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (only && !strstr(cases[i].name, only)) continue;
        printf("-- %s\n", cases[i].name);
        ran++;
        if (run_case(&cases[i]) != 0) parent_failures++;
    }
    printf("test_limits: %d cases, %d passed, %d failed\n", ran, ran - parent_failures,
           parent_failures);
    return parent_failures == 0 && ran > 0 ? 0 : 1;
}
