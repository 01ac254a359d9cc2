/* Every entry point of the C API and its error paths: each NULL argument,
 * zero and mismatched sizes, buffers too small, bad enum values, missing,
 * truncated, non-safetensors and misshapen files; after every failure the
 * handles still work and outputs are untouched. Run under valgrind.
 *
 * usage: test_api FIXTURE_DIR TMP_DIR */
#include <stdint.h>

#include "check.h"

static const char *fixture_dir;
static const char *tmp_dir;

static void path_in(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* A config of the given kind, small enough for valgrind. */
static rnn_config make_config(uint32_t cell, size_t layers, uint32_t bidir) {
    rnn_config c;
    OK(rnn_config_init(&c, cell, 3, 4));
    c.num_layers = layers;
    c.bidirectional = bidir;
    c.seed = 7;
    return c;
}

static rnn_model *make_model(uint32_t cell, size_t layers, uint32_t bidir) {
    rnn_config c = make_config(cell, layers, bidir);
    rnn_model *m = NULL;
    OK(rnn_model_new(&c, &m));
    CHECK(m != NULL);
    return m;
}

typedef struct {
    size_t I, H, L, D, lstm;
} dims;

static dims dims_of(const rnn_model *m) {
    rnn_config c;
    OK(rnn_model_config(m, &c));
    dims d = {c.input_size, c.hidden_size, c.num_layers, c.bidirectional ? 2 : 1,
              c.cell == RNN_CELL_KIND_LSTM};
    return d;
}

static void test_version_and_status(void) {
    uint32_t v = rnn_abi_version();
    CHECK(v == (((uint32_t)RNN_VERSION_MAJOR << 16) | ((uint32_t)RNN_VERSION_MINOR << 8) |
                (uint32_t)RNN_VERSION_PATCH));
    CHECK(RNN_STATUS_OK == 0 && RNN_STATUS_NULL_POINTER == 1 && RNN_STATUS_INVALID_ARGUMENT == 2 &&
          RNN_STATUS_SHAPE_MISMATCH == 3 && RNN_STATUS_BUFFER_TOO_SMALL == 4 &&
          RNN_STATUS_IO == 5 && RNN_STATUS_NUMERICAL == 6 && RNN_STATUS_PANIC == 7 &&
          RNN_STATUS_OUT_OF_MEMORY == 8);
    CHECK(RNN_VERSION_MAJOR == 0 && RNN_VERSION_MINOR >= 2); /* OUT_OF_MEMORY: since 0.2 */
    CHECK(RNN_STATUS_COLLECTIVE == 9 && RNN_VERSION_MINOR >= 4); /* COLLECTIVE: since 0.4 */
    for (uint32_t s = 0; s <= RNN_STATUS_COLLECTIVE; s++) {
        const char *str = rnn_status_string(s);
        CHECK(str != NULL && str[0] != '\0' && strcmp(str, "unknown status") != 0);
        for (uint32_t t = 0; t < s; t++) CHECK(strcmp(str, rnn_status_string(t)) != 0);
    }
    CHECK(strcmp(rnn_status_string(RNN_STATUS_OUT_OF_MEMORY), "out of memory") == 0);
    CHECK(strcmp(rnn_status_string(10), "unknown status") == 0);
    CHECK(strcmp(rnn_status_string(UINT32_MAX), "unknown status") == 0);

    /* The message names the function and argument; a success clears it. */
    EXPECT_STATUS(rnn_model_load(NULL, NULL), RNN_STATUS_NULL_POINTER);
    CHECK(strstr(rnn_last_error_message(), "rnn_model_load") != NULL);
    size_t n = 0;
    OK(rnn_get_num_threads(&n));
    CHECK(n >= 1);
    CHECK(strcmp(rnn_last_error_message(), "") == 0);
}

static void test_threads(void) {
    EXPECT_STATUS(rnn_set_num_threads(0), RNN_STATUS_INVALID_ARGUMENT);
    /* Above the cap: refused at once, the previous pool kept. */
    CHECK(RNN_MAX_THREADS == 1024);
    OK(rnn_set_num_threads(2));
    EXPECT_STATUS(rnn_set_num_threads(RNN_MAX_THREADS + 1), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rnn_last_error_message(), "1024") != NULL);
    EXPECT_STATUS(rnn_set_num_threads(SIZE_MAX), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_get_num_threads(NULL), RNN_STATUS_NULL_POINTER);
    size_t kept = 0;
    OK(rnn_get_num_threads(&kept));
    CHECK(kept == 2);
    OK(rnn_set_num_threads(2));
    size_t n = 0;
    OK(rnn_get_num_threads(&n));
    CHECK(n == 2);
}

static void test_config_and_new(void) {
    rnn_config c;
    EXPECT_STATUS(rnn_config_init(NULL, RNN_CELL_KIND_LSTM, 3, 4), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_config_init(&c, 3, 3, 4), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_config_init(&c, RNN_CELL_KIND_GRU, 3, 4));
    CHECK(c.cell == RNN_CELL_KIND_GRU && c.input_size == 3 && c.hidden_size == 4 &&
          c.num_layers == 1 && c.bias == 1 && c.bidirectional == 0 &&
          c.gru_variant == RNN_GRU_VARIANT_LINEAR_BEFORE_RESET && c.seed == 0);

    rnn_model *m = (rnn_model *)&c; /* a non-NULL value the call must clear */
    EXPECT_STATUS(rnn_model_new(NULL, &m), RNN_STATUS_NULL_POINTER);
    CHECK(m == NULL);
    EXPECT_STATUS(rnn_model_new(&c, NULL), RNN_STATUS_NULL_POINTER);

    struct {
        const char *what;
        rnn_config c;
    } bad[12];
    size_t nb = 0;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) bad[i].c = c;
    bad[nb].what = "cell";
    bad[nb++].c.cell = 3;
    bad[nb].what = "activation";
    bad[nb++].c.activation = 2;
    bad[nb].what = "gru_variant";
    bad[nb++].c.gru_variant = 2;
    bad[nb].what = "bias";
    bad[nb++].c.bias = 2;
    bad[nb].what = "bidirectional";
    bad[nb++].c.bidirectional = 0xFFFFFFFFu;
    bad[nb].what = "input_size";
    bad[nb++].c.input_size = 0;
    bad[nb].what = "hidden_size";
    bad[nb++].c.hidden_size = 0;
    bad[nb].what = "num_layers";
    bad[nb++].c.num_layers = 0;
    bad[nb].what = "hidden_size";
    bad[nb++].c.hidden_size = SIZE_MAX;
    bad[nb].what = "num_layers";
    bad[nb++].c.num_layers = SIZE_MAX;
    bad[nb].what = "input_size";
    bad[nb++].c.input_size = SIZE_MAX / 2;
    for (size_t i = 0; i < nb; i++) {
        m = (rnn_model *)&c;
        EXPECT_STATUS(rnn_model_new(&bad[i].c, &m), RNN_STATUS_INVALID_ARGUMENT);
        CHECK(m == NULL);
        CHECK(strstr(rnn_last_error_message(), bad[i].what) != NULL);
    }

    /* Every cell kind and variant, uni- and bidirectional, forward runs. */
    const uint32_t cells[] = {RNN_CELL_KIND_ELMAN, RNN_CELL_KIND_LSTM, RNN_CELL_KIND_GRU};
    for (size_t k = 0; k < 3; k++)
        for (uint32_t variant = 0; variant < 2; variant++)
            for (uint32_t bidir = 0; bidir < 2; bidir++) {
                rnn_config cc = make_config(cells[k], 2, bidir);
                cc.activation = variant; /* read for Elman only */
                cc.gru_variant = variant; /* read for GRU only */
                cc.bias = variant;
                OK(rnn_model_new(&cc, &m));
                rnn_config back;
                OK(rnn_model_config(m, &back));
                CHECK(back.activation == (cells[k] == RNN_CELL_KIND_ELMAN ? variant : 0));
                CHECK(back.gru_variant == (cells[k] == RNN_CELL_KIND_GRU ? variant : 0));
                CHECK(back.cell == cc.cell && back.bias == cc.bias && back.seed == cc.seed &&
                      back.bidirectional == cc.bidirectional && back.num_layers == 2);
                dims d = dims_of(m);
                size_t T = 3, B = 2;
                float *x = alloc_floats(T * B * d.I), *y = alloc_floats(T * B * d.D * d.H);
                fill(x, T * B * d.I, 1);
                OK(rnn_model_forward(m, x, T, B, NULL, NULL, y, T * B * d.D * d.H, NULL, 0, NULL,
                                     0));
                free(x);
                free(y);
                rnn_model_free(m);
            }
    EXPECT_STATUS(rnn_model_config(NULL, &c), RNN_STATUS_NULL_POINTER);
    m = make_model(RNN_CELL_KIND_LSTM, 1, 0);
    EXPECT_STATUS(rnn_model_config(m, NULL), RNN_STATUS_NULL_POINTER);
    rnn_model_free(m);
    rnn_model_free(NULL);
}

/* Forward on an LSTM (2 layers, bidirectional) and a GRU: every error
 * path, outputs untouched on failure, results unchanged afterwards. */
static void test_forward_errors(void) {
    rnn_model *m = make_model(RNN_CELL_KIND_LSTM, 2, 1);
    rnn_model *g = make_model(RNN_CELL_KIND_GRU, 1, 0);
    dims d = dims_of(m);
    const size_t T = 4, B = 2;
    const size_t nx = T * B * d.I, ny = T * B * d.D * d.H, ns = d.L * d.D * B * d.H;
    float *x = alloc_floats(nx + 1), *h0 = alloc_floats(ns), *c0 = alloc_floats(ns);
    float *y = alloc_floats(ny), *hn = alloc_floats(ns), *cn = alloc_floats(ns);
    float *y_ref = alloc_floats(ny), *hn_ref = alloc_floats(ns), *cn_ref = alloc_floats(ns);
    fill(x, nx + 1, 3);
    fill(h0, ns, 4);
    fill(c0, ns, 5);
    OK(rnn_model_forward(m, x, T, B, h0, c0, y_ref, ny, hn_ref, ns, cn_ref, ns));

    const float sentinel = 12345.0f;
#define RESET_OUT()                                        \
    do {                                                   \
        for (size_t i_ = 0; i_ < ny; i_++) y[i_] = sentinel; \
        for (size_t i_ = 0; i_ < ns; i_++) hn[i_] = cn[i_] = sentinel; \
    } while (0)
#define UNTOUCHED() \
    CHECK(all_equal_to(y, ny, sentinel) && all_equal_to(hn, ns, sentinel) && all_equal_to(cn, ns, sentinel))

    struct {
        enum rnn_status st;
        const rnn_model *m;
        const float *x;
        size_t T, B;
        const float *c0;
        float *y;
        size_t y_len, hn_len, cn_len;
        float *cn;
    } cases[] = {
        {RNN_STATUS_NULL_POINTER, NULL, x, T, B, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_NULL_POINTER, m, NULL, T, B, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_NULL_POINTER, m, x, T, B, c0, NULL, ny, ns, ns, cn},
        {RNN_STATUS_INVALID_ARGUMENT, m, x, 0, B, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_INVALID_ARGUMENT, m, x, T, 0, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_INVALID_ARGUMENT, m, x, SIZE_MAX, B, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_INVALID_ARGUMENT, m, x, SIZE_MAX / 4, SIZE_MAX / 4, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_BUFFER_TOO_SMALL, m, x, T, B, c0, y, ny - 1, ns, ns, cn},
        {RNN_STATUS_BUFFER_TOO_SMALL, m, x, T, B, c0, y, 0, ns, ns, cn},
        {RNN_STATUS_BUFFER_TOO_SMALL, m, x, T, B, c0, y, ny, ns - 1, ns, cn},
        {RNN_STATUS_BUFFER_TOO_SMALL, m, x, T, B, c0, y, ny, ns, ns - 1, cn},
        {RNN_STATUS_BUFFER_TOO_SMALL, m, x, T + 1, B, c0, y, ny, ns, ns, cn},
        {RNN_STATUS_BUFFER_TOO_SMALL, m, x, T, B + 1, c0, y, ny, ns, ns, cn},
        /* c0 / c_n for a cell without cell state */
        {RNN_STATUS_INVALID_ARGUMENT, g, x, T, B, c0, y, ny, ns, ns, NULL},
        {RNN_STATUS_INVALID_ARGUMENT, g, x, T, B, NULL, y, ny, ns, ns, cn},
        /* a misaligned input */
        {RNN_STATUS_INVALID_ARGUMENT, m, (const float *)(const void *)((const char *)x + 1), T, B,
         c0, y, ny, ns, ns, cn},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        RESET_OUT();
        EXPECT_STATUS(rnn_model_forward(cases[i].m, cases[i].x, cases[i].T, cases[i].B, h0,
                                        cases[i].c0, cases[i].y, cases[i].y_len, hn,
                                        cases[i].hn_len, cases[i].cn, cases[i].cn_len),
                      cases[i].st);
        UNTOUCHED();
        if (cases[i].st != RNN_STATUS_OK)
            CHECK(strstr(rnn_last_error_message(), "rnn_model_forward") != NULL);
    }
    /* Larger buffers are fine; h_n, c_n may be NULL; h0/c0 NULL means zeros. */
    RESET_OUT();
    OK(rnn_model_forward(m, x, T, B, h0, c0, y, ny, hn, ns, cn, ns));
    CHECK(same(y, y_ref, ny) && same(hn, hn_ref, ns) && same(cn, cn_ref, ns));
    RESET_OUT();
    OK(rnn_model_forward(m, x, T, B, h0, c0, y, ny, NULL, 0, NULL, 0));
    CHECK(same(y, y_ref, ny) && all_equal_to(hn, ns, sentinel));
    float *zeros = alloc_floats(ns);
    float *y2 = alloc_floats(ny);
    OK(rnn_model_forward(m, x, T, B, NULL, NULL, y, ny, NULL, 0, NULL, 0));
    OK(rnn_model_forward(m, x, T, B, zeros, zeros, y2, ny, NULL, 0, NULL, 0));
    CHECK(same(y, y2, ny));

    /* lengths */
    size_t lengths[2] = {T, 2};
    EXPECT_STATUS(rnn_model_forward_lengths(NULL, x, T, B, lengths, h0, c0, y, ny, hn, ns, cn, ns),
                  RNN_STATUS_NULL_POINTER);
    OK(rnn_model_forward_lengths(m, x, T, B, NULL, h0, c0, y, ny, hn, ns, cn, ns));
    CHECK(same(y, y_ref, ny) && same(hn, hn_ref, ns));
    size_t bad_lengths[][2] = {{0, T}, {T, T + 1}, {T, SIZE_MAX}};
    for (size_t i = 0; i < 3; i++) {
        RESET_OUT();
        EXPECT_STATUS(
            rnn_model_forward_lengths(m, x, T, B, bad_lengths[i], h0, c0, y, ny, hn, ns, cn, ns),
            RNN_STATUS_INVALID_ARGUMENT);
        UNTOUCHED();
        CHECK(strstr(rnn_last_error_message(), "lengths") != NULL);
    }
    OK(rnn_model_forward_lengths(m, x, T, B, lengths, h0, c0, y, ny, hn, ns, cn, ns));
    /* Sequence 1 ends after 2 steps: y is zero past its end. */
    for (size_t t = 2; t < T; t++)
        for (size_t k = 0; k < d.D * d.H; k++) CHECK(y[(t * B + 1) * d.D * d.H + k] == 0.0f);
    /* Sequence 0 has all T steps: its outputs as without lengths (directions
     * and batch rows are independent). */
    for (size_t t = 0; t < T; t++)
        CHECK(max_abs_diff(&y[(t * B) * d.D * d.H], &y_ref[(t * B) * d.D * d.H], d.D * d.H) <=
              1e-6f);

    /* The model still works after all this. */
    OK(rnn_model_forward(m, x, T, B, h0, c0, y, ny, hn, ns, cn, ns));
    CHECK(same(y, y_ref, ny) && same(hn, hn_ref, ns) && same(cn, cn_ref, ns));
#undef RESET_OUT
#undef UNTOUCHED
    free(zeros);
    free(y2);
    free(x);
    free(h0);
    free(c0);
    free(y);
    free(hn);
    free(cn);
    free(y_ref);
    free(hn_ref);
    free(cn_ref);
    rnn_model_free(m);
    rnn_model_free(g);
}

/* y of `m` on a fixed input, for comparisons (caller frees). */
static float *probe(const rnn_model *m, size_t *n) {
    dims d = dims_of(m);
    size_t T = 3, B = 2;
    float *x = alloc_floats(T * B * d.I);
    fill(x, T * B * d.I, 42);
    *n = T * B * d.D * d.H;
    float *y = alloc_floats(*n);
    OK(rnn_model_forward(m, x, T, B, NULL, NULL, y, *n, NULL, 0, NULL, 0));
    free(x);
    return y;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = fwrite(data, 1, n, f);
    fclose(f);
    return w == n;
}

static void *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(buf, 1, (size_t)len, f);
    fclose(f);
    return buf;
}

/* Writes a safetensors file: an 8-byte little-endian header length, the
 * JSON header, then `n` floats. */
static int write_safetensors(const char *path, const char *json, const float *data, size_t n) {
    size_t hl = strlen(json), total = 8 + hl + n * sizeof(float);
    unsigned char *buf = (unsigned char *)malloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((unsigned long long)hl >> (8 * i));
    memcpy(buf + 8, json, hl);
    if (n) memcpy(buf + 8 + hl, data, n * sizeof(float));
    int ok = write_file(path, buf, total);
    free(buf);
    return ok;
}

static void test_files(void) {
    char path[1024], bad[1024];
    rnn_model *m = make_model(RNN_CELL_KIND_GRU, 2, 1);
    size_t n_ref;
    float *y_ref = probe(m, &n_ref);

    /* save / load round trip */
    path_in(path, sizeof path, tmp_dir, "model.safetensors");
    EXPECT_STATUS(rnn_model_save(NULL, path), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_save(m, NULL), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_save(m, ""), RNN_STATUS_IO);
    path_in(bad, sizeof bad, tmp_dir, "no/such/dir/model.safetensors");
    EXPECT_STATUS(rnn_model_save(m, bad), RNN_STATUS_IO);
    CHECK(strstr(rnn_last_error_message(), "no/such/dir") != NULL);
    OK(rnn_model_save(m, path));
    rnn_model *back = (rnn_model *)path;
    EXPECT_STATUS(rnn_model_load(NULL, &back), RNN_STATUS_NULL_POINTER);
    CHECK(back == NULL);
    EXPECT_STATUS(rnn_model_load(path, NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_model_load(path, &back));
    size_t n;
    float *y = probe(back, &n);
    CHECK(n == n_ref && same(y, y_ref, n));
    free(y);
    rnn_model_free(back);

    /* clone */
    rnn_model *copy = (rnn_model *)path;
    EXPECT_STATUS(rnn_model_clone(NULL, &copy), RNN_STATUS_NULL_POINTER);
    CHECK(copy == NULL);
    EXPECT_STATUS(rnn_model_clone(m, NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_model_clone(m, &copy));
    y = probe(copy, &n);
    CHECK(same(y, y_ref, n));
    free(y);
    rnn_model_free(copy);

    /* bad files: each is RNN_STATUS_IO, *out NULL, message naming the file */
    size_t len = 0;
    unsigned char *bytes = (unsigned char *)read_file(path, &len);
    CHECK(bytes != NULL && len > 100);
    struct {
        const char *name;
        const void *data;
        size_t len;
        const char *needle;
    } files[] = {
        {"empty.safetensors", "", 0, "empty.safetensors"},
        {"text.safetensors", "this is not a safetensors file\n", 31, "text.safetensors"},
        {"truncated.safetensors", bytes, len / 2, "truncated.safetensors"},
        {"truncated8.safetensors", bytes, 8, "truncated8.safetensors"},
        {"cut1.safetensors", bytes, len - 1, "cut1.safetensors"},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        path_in(bad, sizeof bad, tmp_dir, files[i].name);
        CHECK(write_file(bad, files[i].data, files[i].len));
        rnn_model *b = (rnn_model *)path;
        EXPECT_STATUS(rnn_model_load(bad, &b), RNN_STATUS_IO);
        CHECK(b == NULL);
        CHECK(strstr(rnn_last_error_message(), files[i].needle) != NULL);
    }
    free(bytes);
    path_in(bad, sizeof bad, tmp_dir, "missing.safetensors");
    EXPECT_STATUS(rnn_model_load(bad, &back), RNN_STATUS_IO);
    EXPECT_STATUS(rnn_model_load("", &back), RNN_STATUS_IO);
    EXPECT_STATUS(rnn_model_load(tmp_dir, &back), RNN_STATUS_IO); /* a directory */

    /* Hand-written files: a good one, then wrong shape, missing tensor, bad
     * metadata. GRU, 1 layer, no bias, I = 2, H = 3: weight_ih_l0 [9, 2],
     * weight_hh_l0 [9, 3]. */
    float w[45];
    fill(w, 45, 9);
    const char *meta =
        "\"__metadata__\":{\"cell\":\"gru\",\"num_layers\":\"1\",\"bidirectional\":\"false\","
        "\"bias\":\"false\",\"input_size\":\"2\",\"hidden_size\":\"3\"}";
    char json[1024];
    struct {
        const char *name, *ih, *hh, *meta;
        enum rnn_status st;
        const char *needle;
    } hand[] = {
        {"good.safetensors", "[9,2]", "[9,3]", meta, RNN_STATUS_OK, ""},
        {"shape.safetensors", "[9,2]", "[3,9]", meta, RNN_STATUS_IO, "weight_hh_l0"},
        {"shape2.safetensors", "[2,9]", "[9,3]", meta, RNN_STATUS_IO, "weight_ih_l0"},
        {"ndim.safetensors", "[18]", "[9,3]", meta, RNN_STATUS_IO, "weight_ih_l0"},
        {"cell.safetensors", "[9,2]", "[9,3]",
         "\"__metadata__\":{\"cell\":\"ntm\",\"num_layers\":\"1\",\"bidirectional\":\"false\","
         "\"bias\":\"false\",\"input_size\":\"2\",\"hidden_size\":\"3\"}",
         RNN_STATUS_IO, "ntm"},
        {"nometa.safetensors", "[9,2]", "[9,3]",
         "\"__metadata__\":{\"cell\":\"gru\",\"num_layers\":\"1\",\"bidirectional\":\"false\","
         "\"bias\":\"false\",\"input_size\":\"2\"}",
         RNN_STATUS_IO, "hidden_size"},
        {"badnum.safetensors", "[9,2]", "[9,3]",
         "\"__metadata__\":{\"cell\":\"gru\",\"num_layers\":\"-1\",\"bidirectional\":\"false\","
         "\"bias\":\"false\",\"input_size\":\"2\",\"hidden_size\":\"3\"}",
         RNN_STATUS_IO, "num_layers"},
        {"bias.safetensors", "[9,2]", "[9,3]",
         "\"__metadata__\":{\"cell\":\"gru\",\"num_layers\":\"1\",\"bidirectional\":\"false\","
         "\"bias\":\"true\",\"input_size\":\"2\",\"hidden_size\":\"3\"}",
         RNN_STATUS_IO, "bias_ih_l0"},
    };
    for (size_t i = 0; i < sizeof hand / sizeof hand[0]; i++) {
        snprintf(json, sizeof json,
                 "{%s,\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[0,72]},"
                 "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":%s,\"data_offsets\":[72,180]}}",
                 hand[i].meta, hand[i].ih, hand[i].hh);
        path_in(bad, sizeof bad, tmp_dir, hand[i].name);
        CHECK(write_safetensors(bad, json, w, 45));
        rnn_model *b = NULL;
        EXPECT_STATUS(rnn_model_load(bad, &b), hand[i].st);
        if (hand[i].st == RNN_STATUS_OK) {
            CHECK(b != NULL);
            float got[18];
            OK(rnn_model_param_get(b, "weight_ih_l0", got, 18));
            CHECK(same(got, w, 18));
            /* Loaded models run. */
            size_t ny;
            float *yy = probe(b, &ny);
            CHECK(ny == 3 * 2 * 3);
            free(yy);
        } else {
            CHECK(b == NULL);
            CHECK(strstr(rnn_last_error_message(), hand[i].needle) != NULL);
            CHECK(strstr(rnn_last_error_message(), hand[i].name) != NULL);
        }
        rnn_model_free(b);
    }

    /* Parity fixtures are loadable models. */
    const char *fixtures[] = {"lstm_l1_b1_t1_i3_h5_bias.safetensors",
                              "gru_reset_before_l2_b4_t1_i6_h3_bias.safetensors",
                              "rnn_relu_l1_bidir_b1_t20_i3_h5_bias.safetensors"};
    for (size_t i = 0; i < 3; i++) {
        path_in(bad, sizeof bad, fixture_dir, fixtures[i]);
        rnn_model *f = NULL;
        OK(rnn_model_load(bad, &f));
        rnn_model_free(f);
    }

    /* The original model still works. */
    y = probe(m, &n);
    CHECK(same(y, y_ref, n));
    free(y);
    free(y_ref);
    rnn_model_free(m);
}

static void test_params(void) {
    rnn_model *m = make_model(RNN_CELL_KIND_LSTM, 2, 1);
    size_t n_ref;
    float *y_ref = probe(m, &n_ref);
    size_t count = 0;
    EXPECT_STATUS(rnn_model_param_count(NULL, &count), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_count(m, NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_model_param_count(m, &count));
    CHECK(count == 2 * 2 * 4);
    const char *expected[] = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0",
                              "weight_ih_l0_reverse", "weight_hh_l0_reverse",
                              "bias_ih_l0_reverse", "bias_hh_l0_reverse", "weight_ih_l1"};
    const char *name = NULL;
    for (size_t i = 0; i < 9; i++) {
        OK(rnn_model_param_name(m, i, &name));
        CHECK(name != NULL && strcmp(name, expected[i]) == 0);
    }
    name = "x";
    EXPECT_STATUS(rnn_model_param_name(m, count, &name), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(name == NULL);
    EXPECT_STATUS(rnn_model_param_name(m, SIZE_MAX, &name), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_model_param_name(NULL, 0, &name), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_name(m, 0, NULL), RNN_STATUS_NULL_POINTER);

    /* shapes: LSTM H = 4, I = 3, D = 2 */
    size_t shape[2] = {0, 0}, ndim = 0;
    OK(rnn_model_param_shape(m, "weight_ih_l0", shape, 2, &ndim));
    CHECK(ndim == 2 && shape[0] == 16 && shape[1] == 3);
    OK(rnn_model_param_shape(m, "weight_ih_l1_reverse", shape, 2, &ndim));
    CHECK(ndim == 2 && shape[0] == 16 && shape[1] == 8);
    OK(rnn_model_param_shape(m, "bias_hh_l1", shape, 2, &ndim));
    CHECK(ndim == 1 && shape[0] == 16);
    shape[0] = 77;
    EXPECT_STATUS(rnn_model_param_shape(m, "weight_hh_l0", shape, 1, &ndim),
                  RNN_STATUS_BUFFER_TOO_SMALL);
    CHECK(shape[0] == 77);
    EXPECT_STATUS(rnn_model_param_shape(m, "weight_hh_l9", shape, 2, &ndim),
                  RNN_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rnn_last_error_message(), "weight_hh_l9") != NULL);
    EXPECT_STATUS(rnn_model_param_shape(NULL, "weight_hh_l0", shape, 2, &ndim),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_shape(m, NULL, shape, 2, &ndim), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_shape(m, "weight_hh_l0", NULL, 2, &ndim),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_shape(m, "weight_hh_l0", shape, 2, NULL),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_shape(m, "\xff\xfe", shape, 2, &ndim),
                  RNN_STATUS_INVALID_ARGUMENT);

    /* get / set */
    float w[64], w2[64], orig[64];
    EXPECT_STATUS(rnn_model_param_get(NULL, "weight_hh_l0", w, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_get(m, NULL, w, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_get(m, "weight_hh_l0", NULL, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_get(m, "nope", w, 64), RNN_STATUS_INVALID_ARGUMENT);
    for (size_t i = 0; i < 64; i++) w[i] = -7.0f;
    EXPECT_STATUS(rnn_model_param_get(m, "weight_hh_l0", w, 63), RNN_STATUS_BUFFER_TOO_SMALL);
    CHECK(all_equal_to(w, 64, -7.0f));
    OK(rnn_model_param_get(m, "weight_hh_l0", orig, 64));
    for (size_t i = 0; i < 64; i++) CHECK(orig[i] > -0.5f && orig[i] < 0.5f); /* 1/sqrt(4) */

    fill(w, 64, 17);
    EXPECT_STATUS(rnn_model_param_set(NULL, "weight_hh_l0", w, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_set(m, NULL, w, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_set(m, "weight_hh_l0", NULL, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_model_param_set(m, "nope", w, 64), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_model_param_set(m, "weight_hh_l0", w, 63), RNN_STATUS_SHAPE_MISMATCH);
    EXPECT_STATUS(rnn_model_param_set(m, "weight_hh_l0", w, 65), RNN_STATUS_SHAPE_MISMATCH);
    EXPECT_STATUS(rnn_model_param_set(m, "weight_hh_l0", w, 0), RNN_STATUS_SHAPE_MISMATCH);
    OK(rnn_model_param_get(m, "weight_hh_l0", w2, 64));
    CHECK(same(w2, orig, 64)); /* nothing changed on error */
    OK(rnn_model_param_set(m, "weight_hh_l0", w, 64));
    OK(rnn_model_param_get(m, "weight_hh_l0", w2, 64));
    CHECK(same(w2, w, 64));
    size_t n;
    float *y = probe(m, &n);
    CHECK(!same(y, y_ref, n));
    free(y);
    OK(rnn_model_param_set(m, "weight_hh_l0", orig, 64));
    y = probe(m, &n);
    CHECK(same(y, y_ref, n));
    free(y);
    free(y_ref);
    rnn_model_free(m);
}

static void test_stream(void) {
    rnn_model *m = make_model(RNN_CELL_KIND_LSTM, 2, 0);
    rnn_model *g = make_model(RNN_CELL_KIND_GRU, 2, 0);
    rnn_model *bi = make_model(RNN_CELL_KIND_GRU, 1, 1);
    dims d = dims_of(m);
    const size_t T = 5, B = 2, ns = d.L * B * d.H;
    rnn_stream *s = (rnn_stream *)m;
    EXPECT_STATUS(rnn_stream_new(NULL, B, &s), RNN_STATUS_NULL_POINTER);
    CHECK(s == NULL);
    EXPECT_STATUS(rnn_stream_new(m, B, NULL), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_new(m, 0, &s), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_stream_new(bi, B, &s), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(strstr(rnn_last_error_message(), "bidirectional") != NULL);
    /* A batch whose state size overflows: OUT_OF_MEMORY, nothing allocated
     * (the sizes that are merely too large are tested by test_limits). */
    s = (rnn_stream *)m;
    EXPECT_STATUS(rnn_stream_new(m, (size_t)1 << 62, &s), RNN_STATUS_OUT_OF_MEMORY);
    CHECK(s == NULL);
    EXPECT_STATUS(rnn_stream_new(m, SIZE_MAX, &s), RNN_STATUS_OUT_OF_MEMORY);
    OK(rnn_stream_new(m, B, &s));

    float *x = alloc_floats(T * B * d.I), *h0 = alloc_floats(ns), *c0 = alloc_floats(ns);
    float *y = alloc_floats(T * B * d.H), *hn = alloc_floats(ns), *cn = alloc_floats(ns);
    fill(x, T * B * d.I, 21);
    fill(h0, ns, 22);
    fill(c0, ns, 23);
    OK(rnn_model_forward(m, x, T, B, h0, c0, y, T * B * d.H, hn, ns, cn, ns));

    /* set_state / get_state errors */
    float st_h[64], st_c[64];
    EXPECT_STATUS(rnn_stream_set_state(NULL, h0, ns, c0, ns), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_set_state(s, h0, ns - 1, c0, ns), RNN_STATUS_SHAPE_MISMATCH);
    EXPECT_STATUS(rnn_stream_set_state(s, h0, ns, c0, ns + 1), RNN_STATUS_SHAPE_MISMATCH);
    OK(rnn_stream_get_state(s, st_h, 64, st_c, 64));
    for (size_t i = 0; i < ns; i++) CHECK(st_h[i] == 0.0f && st_c[i] == 0.0f);
    OK(rnn_stream_set_state(s, h0, ns, c0, ns));
    EXPECT_STATUS(rnn_stream_get_state(NULL, st_h, 64, st_c, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_get_state(s, st_h, ns - 1, NULL, 0), RNN_STATUS_BUFFER_TOO_SMALL);
    OK(rnn_stream_get_state(s, NULL, 0, NULL, 0));
    OK(rnn_stream_get_state(s, st_h, ns, st_c, ns));
    CHECK(same(st_h, h0, ns) && same(st_c, c0, ns));

    /* step errors */
    float yt[64];
    EXPECT_STATUS(rnn_stream_step(NULL, m, x, yt, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_step(s, NULL, x, yt, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_step(s, m, NULL, yt, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_step(s, m, x, NULL, 64), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_stream_step(s, m, x, yt, B * d.H - 1), RNN_STATUS_BUFFER_TOO_SMALL);
    EXPECT_STATUS(rnn_stream_step(s, g, x, yt, 64), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_stream_get_state(s, st_h, ns, st_c, ns));
    CHECK(same(st_h, h0, ns) && same(st_c, c0, ns)); /* unchanged by failures */

    /* Step by step equals the batched forward. */
    float err = 0.0f;
    for (size_t t = 0; t < T; t++) {
        OK(rnn_stream_step(s, m, &x[t * B * d.I], yt, 64));
        float e = max_abs_diff(yt, &y[t * B * d.H], B * d.H);
        if (e > err) err = e;
    }
    CHECK(err <= 1e-6f);
    OK(rnn_stream_get_state(s, st_h, ns, st_c, ns));
    CHECK(max_abs_diff(st_h, hn, ns) <= 1e-6f && max_abs_diff(st_c, cn, ns) <= 1e-6f);

    /* reset */
    EXPECT_STATUS(rnn_stream_reset(NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_stream_reset(s));
    OK(rnn_stream_get_state(s, st_h, ns, st_c, ns));
    CHECK(all_equal_to(st_h, ns, 0.0f) && all_equal_to(st_c, ns, 0.0f));

    /* A GRU stream has no cell state. */
    rnn_stream *gs = NULL;
    OK(rnn_stream_new(g, 1, &gs));
    EXPECT_STATUS(rnn_stream_get_state(gs, st_h, 64, st_c, 64), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_stream_set_state(gs, NULL, 0, st_c, d.L * d.H), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_stream_step(gs, g, x, yt, 64));
    /* A clone has the same configuration: the stream accepts it. */
    rnn_model *g2 = NULL;
    OK(rnn_model_clone(g, &g2));
    OK(rnn_stream_step(gs, g2, x, yt, 64));
    rnn_model_free(g2);

    rnn_stream_free(gs);
    rnn_stream_free(s);
    rnn_stream_free(NULL);
    free(x);
    free(h0);
    free(c0);
    free(y);
    free(hn);
    free(cn);
    rnn_model_free(m);
    rnn_model_free(g);
    rnn_model_free(bi);
}

static void test_trainer(void) {
    rnn_model *m = make_model(RNN_CELL_KIND_LSTM, 2, 1);
    rnn_model *g = make_model(RNN_CELL_KIND_GRU, 1, 0);
    dims d = dims_of(m);
    const size_t T = 3, B = 2;
    const size_t nx = T * B * d.I, ny = T * B * d.D * d.H, ns = d.L * d.D * B * d.H;
    float *x = alloc_floats(nx), *y = alloc_floats(ny), *gy = alloc_floats(ny);
    float *gh = alloc_floats(ns), *gc = alloc_floats(ns), *buf = alloc_floats(256);
    fill(x, nx, 31);
    fill(gy, ny, 32);
    fill(gh, ns, 33);
    fill(gc, ns, 34);

    rnn_trainer *t = (rnn_trainer *)m, *tg = NULL;
    EXPECT_STATUS(rnn_trainer_new(NULL, &t), RNN_STATUS_NULL_POINTER);
    CHECK(t == NULL);
    EXPECT_STATUS(rnn_trainer_new(m, NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_trainer_new(m, &t));
    OK(rnn_trainer_new(g, &tg));

    /* out of order */
    EXPECT_STATUS(rnn_trainer_backward(t, m, gy, NULL, NULL), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_grad(t, "weight_hh_l0", buf, 256), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_input_grads(t, buf, 256, NULL, 0, NULL, 0),
                  RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_clip_grad_norm(t, 1.0f, NULL), RNN_STATUS_INVALID_ARGUMENT);

    /* forward errors */
    EXPECT_STATUS(rnn_trainer_forward(NULL, m, x, T, B, NULL, NULL, NULL, y, ny, NULL, 0, NULL, 0),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_forward(t, NULL, x, T, B, NULL, NULL, NULL, y, ny, NULL, 0, NULL, 0),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_forward(t, m, NULL, T, B, NULL, NULL, NULL, y, ny, NULL, 0, NULL, 0),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_forward(t, g, x, T, B, NULL, NULL, NULL, y, ny, NULL, 0, NULL, 0),
                  RNN_STATUS_INVALID_ARGUMENT); /* another model */
    EXPECT_STATUS(rnn_trainer_forward(t, m, x, 0, B, NULL, NULL, NULL, y, ny, NULL, 0, NULL, 0),
                  RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(
        rnn_trainer_forward(t, m, x, T, B, NULL, NULL, NULL, y, ny - 1, NULL, 0, NULL, 0),
        RNN_STATUS_BUFFER_TOO_SMALL);

    float *y_ref = alloc_floats(ny);
    OK(rnn_model_forward(m, x, T, B, NULL, NULL, y_ref, ny, NULL, 0, NULL, 0));
    OK(rnn_trainer_forward(t, m, x, T, B, NULL, NULL, NULL, y, ny, NULL, 0, NULL, 0));
    CHECK(same(y, y_ref, ny));

    /* backward errors */
    EXPECT_STATUS(rnn_trainer_backward(NULL, m, gy, gh, gc), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_backward(t, NULL, gy, gh, gc), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_backward(t, m, NULL, gh, gc), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_backward(t, g, gy, gh, gc), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_trainer_backward(t, m, gy, gh, gc));

    /* Every gradient readable by name, same shapes as the parameters. */
    size_t count;
    OK(rnn_model_param_count(m, &count));
    float total = 0.0f;
    for (size_t i = 0; i < count; i++) {
        const char *name;
        size_t shape[2], ndim, numel = 1;
        OK(rnn_model_param_name(m, i, &name));
        OK(rnn_model_param_shape(m, name, shape, 2, &ndim));
        for (size_t k = 0; k < ndim; k++) numel *= shape[k];
        CHECK(numel <= 256);
        EXPECT_STATUS(rnn_trainer_grad(t, name, buf, numel - 1), RNN_STATUS_BUFFER_TOO_SMALL);
        OK(rnn_trainer_grad(t, name, buf, 256));
        for (size_t k = 0; k < numel; k++) total += fabsf(buf[k]);
    }
    CHECK(total > 0.0f);
    EXPECT_STATUS(rnn_trainer_grad(NULL, "weight_hh_l0", buf, 256), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_grad(t, NULL, buf, 256), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_grad(t, "weight_hh_l0", NULL, 256), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_grad(t, "weight_hh_l7", buf, 256), RNN_STATUS_INVALID_ARGUMENT);

    /* Input gradients. */
    float *dx = alloc_floats(nx), *dh0 = alloc_floats(ns), *dc0 = alloc_floats(ns);
    EXPECT_STATUS(rnn_trainer_input_grads(NULL, dx, nx, dh0, ns, dc0, ns), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_input_grads(t, dx, nx - 1, dh0, ns, dc0, ns),
                  RNN_STATUS_BUFFER_TOO_SMALL);
    EXPECT_STATUS(rnn_trainer_input_grads(t, dx, nx, dh0, ns, dc0, ns - 1),
                  RNN_STATUS_BUFFER_TOO_SMALL);
    CHECK(all_equal_to(dx, nx, 0.0f));
    OK(rnn_trainer_input_grads(t, NULL, 0, NULL, 0, NULL, 0));
    OK(rnn_trainer_input_grads(t, dx, nx, dh0, ns, dc0, ns));
    CHECK(!all_equal_to(dx, nx, 0.0f) && !all_equal_to(dh0, ns, 0.0f) &&
          !all_equal_to(dc0, ns, 0.0f));

    /* Finite-difference check of one weight through the C API: L = sum(y*gy)
     * + sum(h_n*gh) + sum(c_n*gc). */
    {
        float w[64], gw[64], *hn = alloc_floats(ns), *cn = alloc_floats(ns);
        OK(rnn_model_param_get(m, "weight_hh_l1_reverse", w, 64));
        OK(rnn_trainer_grad(t, "weight_hh_l1_reverse", gw, 64));
        const size_t k = 5;
        const float eps = 1e-2f, w0 = w[k];
        double lp[2];
        for (int s = 0; s < 2; s++) {
            w[k] = w0 + (s ? -eps : eps);
            OK(rnn_model_param_set(m, "weight_hh_l1_reverse", w, 64));
            OK(rnn_model_forward(m, x, T, B, NULL, NULL, y, ny, hn, ns, cn, ns));
            double l = 0.0;
            for (size_t i = 0; i < ny; i++) l += (double)y[i] * gy[i];
            for (size_t i = 0; i < ns; i++) l += (double)hn[i] * gh[i] + (double)cn[i] * gc[i];
            lp[s] = l;
        }
        w[k] = w0;
        OK(rnn_model_param_set(m, "weight_hh_l1_reverse", w, 64));
        double fd = (lp[0] - lp[1]) / (2.0 * eps);
        CHECK(fabs(fd - gw[k]) <= 1e-3 + 1e-2 * fabs(fd));
        free(hn);
        free(cn);
    }
    /* The parameters changed since the forward: backward refuses. */
    EXPECT_STATUS(rnn_trainer_backward(t, m, gy, gh, gc), RNN_STATUS_INVALID_ARGUMENT);

    /* clipping */
    float norm = -1.0f;
    EXPECT_STATUS(rnn_trainer_clip_grad_norm(NULL, 1.0f, &norm), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_clip_grad_norm(t, 0.0f, &norm), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_clip_grad_norm(t, -1.0f, &norm), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_clip_grad_norm(t, NAN, &norm), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_clip_grad_norm(t, INFINITY, &norm), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_trainer_clip_grad_norm(t, 1e-3f, &norm));
    CHECK(norm > 1e-3f);
    OK(rnn_trainer_clip_grad_norm(t, 1e-3f, &norm));
    CHECK(fabsf(norm - 1e-3f) < 1e-5f);
    OK(rnn_trainer_clip_grad_norm(t, 1.0f, NULL));

    /* A GRU trainer: no cell state. */
    float *gx = alloc_floats(T * B * 3), *gyy = alloc_floats(T * B * 4);
    fill(gx, T * B * 3, 35);
    fill(gyy, T * B * 4, 36);
    OK(rnn_trainer_forward(tg, g, gx, T, B, NULL, NULL, NULL, gyy, T * B * 4, NULL, 0, NULL, 0));
    EXPECT_STATUS(rnn_trainer_backward(tg, g, gyy, NULL, gc), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_trainer_backward(tg, g, gyy, NULL, NULL));
    EXPECT_STATUS(rnn_trainer_input_grads(tg, NULL, 0, NULL, 0, dc0, ns),
                  RNN_STATUS_INVALID_ARGUMENT);
    free(gx);
    free(gyy);

    rnn_trainer_free(t);
    rnn_trainer_free(tg);
    rnn_trainer_free(NULL);
    free(x);
    free(y);
    free(y_ref);
    free(gy);
    free(gh);
    free(gc);
    free(buf);
    free(dx);
    free(dh0);
    free(dc0);
    rnn_model_free(m);
    rnn_model_free(g);
}

static void test_optimizers(void) {
    rnn_sgd_config sgd;
    rnn_adam_config adam;
    rnn_rmsprop_config rms;
    EXPECT_STATUS(rnn_sgd_config_init(NULL, 0.1), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_adam_config_init(NULL, 0.1), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_rmsprop_config_init(NULL, 0.1), RNN_STATUS_NULL_POINTER);
    OK(rnn_sgd_config_init(&sgd, 0.1));
    OK(rnn_adam_config_init(&adam, 0.01));
    OK(rnn_rmsprop_config_init(&rms, 0.01));
    CHECK(sgd.lr == 0.1 && sgd.momentum == 0.0 && sgd.nesterov == 0);
    CHECK(adam.beta1 == 0.9 && adam.beta2 == 0.999 && adam.eps == 1e-8 && adam.decoupled == 0);
    CHECK(rms.alpha == 0.99 && rms.centered == 0);

    rnn_optimizer *o = (rnn_optimizer *)&sgd;
    EXPECT_STATUS(rnn_optimizer_new_sgd(NULL, &o), RNN_STATUS_NULL_POINTER);
    CHECK(o == NULL);
    EXPECT_STATUS(rnn_optimizer_new_sgd(&sgd, NULL), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_new_adam(NULL, &o), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_new_rmsprop(NULL, &o), RNN_STATUS_NULL_POINTER);

    rnn_sgd_config bs = sgd;
    bs.lr = -1.0;
    EXPECT_STATUS(rnn_optimizer_new_sgd(&bs, &o), RNN_STATUS_INVALID_ARGUMENT);
    bs = sgd;
    bs.nesterov = 1; /* without momentum */
    EXPECT_STATUS(rnn_optimizer_new_sgd(&bs, &o), RNN_STATUS_INVALID_ARGUMENT);
    bs = sgd;
    bs.nesterov = 2;
    EXPECT_STATUS(rnn_optimizer_new_sgd(&bs, &o), RNN_STATUS_INVALID_ARGUMENT);
    bs = sgd;
    bs.momentum = NAN;
    EXPECT_STATUS(rnn_optimizer_new_sgd(&bs, &o), RNN_STATUS_INVALID_ARGUMENT);
    rnn_adam_config ba = adam;
    ba.beta1 = 1.0;
    EXPECT_STATUS(rnn_optimizer_new_adam(&ba, &o), RNN_STATUS_INVALID_ARGUMENT);
    ba = adam;
    ba.decoupled = 3;
    EXPECT_STATUS(rnn_optimizer_new_adam(&ba, &o), RNN_STATUS_INVALID_ARGUMENT);
    rnn_rmsprop_config br = rms;
    br.alpha = 1.5;
    EXPECT_STATUS(rnn_optimizer_new_rmsprop(&br, &o), RNN_STATUS_INVALID_ARGUMENT);
    br = rms;
    br.centered = 9;
    EXPECT_STATUS(rnn_optimizer_new_rmsprop(&br, &o), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(o == NULL);

    /* Each optimizer, SGD with Nesterov, AdamW, centered RMSProp with
     * momentum, steps a model from a trainer's gradients. */
    sgd.momentum = 0.9;
    sgd.nesterov = 1;
    adam.decoupled = 1;
    adam.weight_decay = 1e-2;
    rms.centered = 1;
    rms.momentum = 0.5;
    rnn_optimizer *opts[3] = {NULL, NULL, NULL};
    OK(rnn_optimizer_new_sgd(&sgd, &opts[0]));
    OK(rnn_optimizer_new_adam(&adam, &opts[1]));
    OK(rnn_optimizer_new_rmsprop(&rms, &opts[2]));

    rnn_model *m = make_model(RNN_CELL_KIND_GRU, 1, 0);
    rnn_model *other = make_model(RNN_CELL_KIND_LSTM, 1, 0);
    rnn_trainer *t = NULL, *t_other = NULL;
    OK(rnn_trainer_new(m, &t));
    OK(rnn_trainer_new(other, &t_other));
    const size_t T = 2, B = 1;
    float x[2 * 3], y[2 * 4], gy[2 * 4], w0[64], w1[64];
    fill(x, 6, 41);
    fill(gy, 8, 42);

    EXPECT_STATUS(rnn_optimizer_step(opts[0], m, t), RNN_STATUS_INVALID_ARGUMENT); /* no grads */
    OK(rnn_trainer_forward(t, m, x, T, B, NULL, NULL, NULL, y, 8, NULL, 0, NULL, 0));
    OK(rnn_trainer_backward(t, m, gy, NULL, NULL));
    EXPECT_STATUS(rnn_optimizer_step(NULL, m, t), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_step(opts[0], NULL, t), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_step(opts[0], m, NULL), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_step(opts[0], other, t), RNN_STATUS_INVALID_ARGUMENT);
    for (int k = 0; k < 3; k++) {
        OK(rnn_model_param_get(m, "weight_hh_l0", w0, 48));
        OK(rnn_optimizer_step(opts[k], m, t));
        OK(rnn_model_param_get(m, "weight_hh_l0", w1, 48));
        CHECK(!same(w0, w1, 36));
    }
    /* An optimizer sized for m refuses a model with another parameter count. */
    OK(rnn_trainer_forward(t_other, other, x, T, B, NULL, NULL, NULL, y, 8, NULL, 0, NULL, 0));
    OK(rnn_trainer_backward(t_other, other, gy, NULL, NULL));
    OK(rnn_model_param_get(other, "weight_hh_l0", w0, 64));
    EXPECT_STATUS(rnn_optimizer_step(opts[1], other, t_other), RNN_STATUS_SHAPE_MISMATCH);
    OK(rnn_model_param_get(other, "weight_hh_l0", w1, 64));
    CHECK(same(w0, w1, 64));
    OK(rnn_optimizer_reset(opts[1]));
    OK(rnn_optimizer_step(opts[1], other, t_other)); /* resized after a reset */

    double lr = 0.0;
    EXPECT_STATUS(rnn_optimizer_lr(NULL, &lr), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_lr(opts[0], NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_optimizer_lr(opts[0], &lr));
    CHECK(lr == 0.1);
    EXPECT_STATUS(rnn_optimizer_set_lr(NULL, 0.5), RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_optimizer_set_lr(opts[0], -0.5), RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_optimizer_set_lr(opts[0], NAN), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_optimizer_set_lr(opts[0], 0.5));
    OK(rnn_optimizer_lr(opts[0], &lr));
    CHECK(lr == 0.5);
    EXPECT_STATUS(rnn_optimizer_reset(NULL), RNN_STATUS_NULL_POINTER);

    for (int k = 0; k < 3; k++) rnn_optimizer_free(opts[k]);
    rnn_optimizer_free(NULL);
    rnn_trainer_free(t);
    rnn_trainer_free(t_other);
    rnn_model_free(m);
    rnn_model_free(other);
}

/* The one-call train step: errors, NaN detection, a falling loss. */
static void test_train_step(void) {
    rnn_config c = make_config(RNN_CELL_KIND_LSTM, 1, 0);
    c.input_size = 2;
    c.hidden_size = 3;
    rnn_model *m = NULL, *other = make_model(RNN_CELL_KIND_GRU, 1, 0);
    OK(rnn_model_new(&c, &m));
    rnn_trainer *t = NULL;
    rnn_optimizer *o = NULL;
    rnn_adam_config a;
    OK(rnn_adam_config_init(&a, 0.05));
    OK(rnn_trainer_new(m, &t));
    OK(rnn_optimizer_new_adam(&a, &o));
    enum { T = 6, B = 2 };
    float x[T * B * 2], target[T * B * 3];
    fill(x, T * B * 2, 51);
    /* target: a smooth function of the inputs */
    for (size_t i = 0; i < T * B; i++)
        for (size_t k = 0; k < 3; k++) target[i * 3 + k] = 0.5f * x[i * 2 + (k % 2)];

    double loss = -1.0;
    EXPECT_STATUS(rnn_trainer_step_mse(NULL, m, o, x, T, B, NULL, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_step_mse(t, NULL, o, x, T, B, NULL, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, NULL, x, T, B, NULL, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, NULL, T, B, NULL, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, x, T, B, NULL, NULL, NULL, NULL, 0, &loss),
                  RNN_STATUS_NULL_POINTER);
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, x, 0, B, NULL, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, x, T, B, NULL, NULL, NULL, target, -1.0f, &loss),
                  RNN_STATUS_INVALID_ARGUMENT);
    EXPECT_STATUS(rnn_trainer_step_mse(t, other, o, x, T, B, NULL, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_INVALID_ARGUMENT);
    size_t bad_len[B] = {T, T + 1};
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, x, T, B, bad_len, NULL, NULL, target, 0, &loss),
                  RNN_STATUS_INVALID_ARGUMENT);
    CHECK(loss == -1.0);

    /* A NaN target: RNN_STATUS_NUMERICAL, parameters unchanged. */
    float w0[36], w1[36];
    OK(rnn_model_param_get(m, "weight_hh_l0", w0, 36));
    float nan_target[T * B * 3];
    memcpy(nan_target, target, sizeof target);
    nan_target[4] = NAN;
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, x, T, B, NULL, NULL, NULL, nan_target, 0, &loss),
                  RNN_STATUS_NUMERICAL);
    OK(rnn_model_param_get(m, "weight_hh_l0", w1, 36));
    CHECK(same(w0, w1, 36));
    /* A NaN input: also refused. */
    float nan_x[T * B * 2];
    memcpy(nan_x, x, sizeof x);
    nan_x[0] = NAN;
    EXPECT_STATUS(rnn_trainer_step_mse(t, m, o, nan_x, T, B, NULL, NULL, NULL, target, 1.0f, NULL),
                  RNN_STATUS_NUMERICAL);
    OK(rnn_model_param_get(m, "weight_hh_l0", w1, 36));
    CHECK(same(w0, w1, 36));

    double first = 0.0, last = 0.0;
    size_t lengths[B] = {T, T - 2};
    for (int step = 0; step < 40; step++) {
        OK(rnn_trainer_step_mse(t, m, o, x, T, B, NULL, NULL, NULL, target, 1.0f, &loss));
        if (step == 0) first = loss;
        last = loss;
    }
    CHECK(last < 0.5 * first);
    OK(rnn_trainer_step_mse(t, m, o, x, T, B, lengths, NULL, NULL, target, 0.0f, NULL));
    /* After a step the gradients are readable and the tape is stale. */
    OK(rnn_trainer_grad(t, "bias_hh_l0", w1, 36));
    EXPECT_STATUS(rnn_trainer_backward(t, m, target, NULL, NULL), RNN_STATUS_INVALID_ARGUMENT);

    rnn_optimizer_free(o);
    rnn_trainer_free(t);
    rnn_model_free(m);
    rnn_model_free(other);
}

/* The Neural Turing Machine: create, forward, gradients, parameters, files,
 * and the usual refusals. */
static void test_ntm(void) {
    rnn_ntm_config c;
    rnn_ntm *m = NULL, *l = NULL;
    enum { T = 3, B = 2, I = 4, O = 3 };
    float x[T * B * I], dy[T * B * O], y[T * B * O], y2[T * B * O], dx[T * B * I];
    size_t total = 0, count = 0, len = 0, i;
    float *grads;
    const char *name = NULL;
    char path[1024];

    EXPECT_STATUS(rnn_ntm_config_init(NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_ntm_config_init(&c));
    CHECK(c.controller == RNN_NTM_CONTROLLER_LSTM && c.memory_rows == 128 && c.input_size == 9);
    c.input_size = I;
    c.output_size = O;
    c.controller_size = 6;
    c.memory_rows = 8;
    c.memory_width = 4;
    c.memory_init = NAN;
    EXPECT_STATUS(rnn_ntm_new(&c, &m), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL);
    c.memory_init = 1e-6f;
    c.controller = 9;
    EXPECT_STATUS(rnn_ntm_new(&c, &m), RNN_STATUS_INVALID_ARGUMENT);
    c.controller = RNN_NTM_CONTROLLER_FEED_FORWARD;
    EXPECT_STATUS(rnn_ntm_new(NULL, &m), RNN_STATUS_NULL_POINTER);
    OK(rnn_ntm_new(&c, &m));

    for (i = 0; i < T * B * I; i++) x[i] = (float)((i * 7) % 5) / 5.0f;
    for (i = 0; i < T * B * O; i++) dy[i] = (float)((i * 3) % 7) / 7.0f - 0.5f;
    OK(rnn_ntm_forward(m, x, T * B * I, T, B, y, T * B * O));
    EXPECT_STATUS(rnn_ntm_forward(m, x, T * B * I - 1, T, B, y, T * B * O),
                  RNN_STATUS_SHAPE_MISMATCH);
    EXPECT_STATUS(rnn_ntm_forward(m, x, T * B * I, T, B, y, 1), RNN_STATUS_BUFFER_TOO_SMALL);
    EXPECT_STATUS(rnn_ntm_forward(NULL, x, T * B * I, T, B, y, T * B * O),
                  RNN_STATUS_NULL_POINTER);

    OK(rnn_ntm_param_total(m, &total));
    grads = malloc(total * sizeof *grads);
    CHECK(grads != NULL);
    if (grads == NULL) return;
    OK(rnn_ntm_gradients(m, x, T * B * I, T, B, dy, T * B * O, grads, total, dx, T * B * I, y2,
                         T * B * O));
    CHECK(memcmp(y, y2, sizeof y) == 0);
    EXPECT_STATUS(rnn_ntm_gradients(m, x, T * B * I, T, B, dy, T * B * O, grads, total - 1, NULL,
                                    0, NULL, 0),
                  RNN_STATUS_BUFFER_TOO_SMALL);

    OK(rnn_ntm_param_count(m, &count));
    CHECK(count == 8); /* controller.weight/bias, heads x2, output x2, init.read, init.weight_logits */
    OK(rnn_ntm_param_name(m, 0, &name));
    CHECK(name != NULL && strcmp(name, "controller.weight") == 0);
    EXPECT_STATUS(rnn_ntm_param_name(m, count, &name), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_ntm_param_get(m, "init.read", grads, total, &len));
    CHECK(len == 4); /* R x M = 1 x 4 */
    EXPECT_STATUS(rnn_ntm_param_get(m, "nope", grads, total, &len), RNN_STATUS_INVALID_ARGUMENT);
    OK(rnn_ntm_param_set(m, "init.read", grads, len));
    EXPECT_STATUS(rnn_ntm_param_set(m, "init.read", grads, len + 1), RNN_STATUS_SHAPE_MISMATCH);

    path_in(path, sizeof path, tmp_dir, "ntm.safetensors");
    OK(rnn_ntm_save(m, path));
    OK(rnn_ntm_load(path, &l));
    OK(rnn_ntm_forward(l, x, T * B * I, T, B, y2, T * B * O));
    CHECK(memcmp(y, y2, sizeof y) == 0);
    path_in(path, sizeof path, tmp_dir, "missing.safetensors");
    rnn_ntm_free(l);
    l = NULL;
    EXPECT_STATUS(rnn_ntm_load(path, &l), RNN_STATUS_IO);
    CHECK(l == NULL);

    free(grads);
    rnn_ntm_free(m);
    rnn_ntm_free(NULL);
}

/* rnn_config_ext: an LSTM projected to P = 2 units, batch-first, summed
 * directions; the model reports it back; forward takes [B, T, I] and gives
 * y [B, T, P], h_n [L*D, B, P], c_n [L*D, B, H]; bad extensions are refused
 * and leave the out-handle NULL. */
static void test_config_ext(void) {
    rnn_config c = make_config(RNN_CELL_KIND_LSTM, 2, 1);
    rnn_config_ext e;
    EXPECT_STATUS(rnn_config_ext_init(NULL), RNN_STATUS_NULL_POINTER);
    OK(rnn_config_ext_init(&e));
    CHECK(e.size == sizeof e && e.proj_size == 0 && e.batch_first == 0 &&
          e.merge == RNN_MERGE_CONCAT && e.dropout == 0.0 && e.recurrent_dropout == 0.0);
    e.proj_size = 2;
    e.batch_first = 1;
    e.merge = RNN_MERGE_SUM;
    e.dropout = 0.25;
    rnn_model *m = NULL;
    OK(rnn_model_new_ext(&c, &e, &m));
    rnn_config_ext back;
    OK(rnn_config_ext_init(&back));
    OK(rnn_model_config_ext(m, &back));
    CHECK(back.proj_size == 2 && back.batch_first == 1 && back.merge == RNN_MERGE_SUM &&
          back.dropout == 0.25);
    size_t T = 3, B = 2, I = 3, H = 4, P = 2, LD = 4;
    float *x = alloc_floats(B * T * I), *y = alloc_floats(B * T * P);
    float *h_n = alloc_floats(LD * B * P), *c_n = alloc_floats(LD * B * H);
    fill(x, B * T * I, 2);
    OK(rnn_model_forward(m, x, T, B, NULL, NULL, y, B * T * P, h_n, LD * B * P, c_n,
                         LD * B * H));
    /* One float short of y's [B, T, P] is too small. */
    EXPECT_STATUS(rnn_model_forward(m, x, T, B, NULL, NULL, y, B * T * P - 1, NULL, 0, NULL, 0),
                  RNN_STATUS_BUFFER_TOO_SMALL);
    free(x);
    free(y);
    free(h_n);
    free(c_n);
    rnn_model_free(m);

    rnn_config_ext bad = e;
    bad.merge = 7;
    m = NULL;
    EXPECT_STATUS(rnn_model_new_ext(&c, &bad, &m), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL);
    bad = e;
    bad.proj_size = H;
    EXPECT_STATUS(rnn_model_new_ext(&c, &bad, &m), RNN_STATUS_INVALID_ARGUMENT);
    bad = e;
    bad.size = 3;
    EXPECT_STATUS(rnn_model_new_ext(&c, &bad, &m), RNN_STATUS_INVALID_ARGUMENT);
    bad = e;
    bad.recurrent_dropout = 1.0;
    EXPECT_STATUS(rnn_model_new_ext(&c, &bad, &m), RNN_STATUS_INVALID_ARGUMENT);
    CHECK(m == NULL);
    /* NULL extension: the defaults. */
    OK(rnn_model_new_ext(&c, NULL, &m));
    rnn_model_free(m);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR TMP_DIR\n", argv[0]);
        return 2;
    }
    fixture_dir = argv[1];
    tmp_dir = argv[2];
    test_version_and_status();
    test_threads();
    test_config_and_new();
    test_config_ext();
    test_forward_errors();
    test_files();
    test_params();
    test_stream();
    test_trainer();
    test_optimizers();
    test_train_step();
    test_ntm();
    return check_summary("test_api");
}
