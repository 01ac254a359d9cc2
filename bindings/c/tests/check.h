/* Minimal test helpers for the librnn C tests: CHECK and EXPECT_STATUS count
 * failures and print where they happened, with the library's last error. */
#ifndef RNN_TEST_CHECK_H
#define RNN_TEST_CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnn.h"

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        check_count++;                                                                  \
        if (!(cond)) {                                                                  \
            check_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: \"%s\")\n", __FILE__, \
                    __LINE__, #cond, rnn_last_error_message());                         \
        }                                                                               \
    } while (0)

/* The call returns `want`; a failure leaves a non-empty message naming the
 * function, a success an empty one. */
#define EXPECT_STATUS(call, want)                                                         \
    do {                                                                                  \
        enum rnn_status got_ = (call);                                                    \
        const char *msg_ = rnn_last_error_message();                                      \
        check_count++;                                                                    \
        if (got_ != (want)) {                                                             \
            check_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: got %s (%d), want %s (%d); last error: \"%s\"\n", \
                    __FILE__, __LINE__, #call, rnn_status_string((uint32_t)got_),         \
                    (int)got_, rnn_status_string((uint32_t)(want)), (int)(want), msg_);   \
        } else if ((want) != RNN_STATUS_OK && (msg_ == NULL || msg_[0] == '\0')) {        \
            check_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: failed without a message\n", __FILE__, __LINE__,  \
                    #call);                                                               \
        } else if ((want) == RNN_STATUS_OK && msg_[0] != '\0') {                          \
            check_failures++;                                                             \
            fprintf(stderr, "%s:%d: %s: succeeded but left a message \"%s\"\n", __FILE__, \
                    __LINE__, #call, msg_);                                               \
        }                                                                                 \
    } while (0)

#define OK(call) EXPECT_STATUS(call, RNN_STATUS_OK)

/* Deterministic values in [-1, 1). */
static inline void fill(float *v, size_t n, unsigned seed) {
    unsigned long long s = 0x9E3779B97F4A7C15ULL * (seed + 1);
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        v[i] = (float)((double)(s >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
    }
}

static inline float *alloc_floats(size_t n) {
    float *p = (float *)calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

static inline int same(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static inline float max_abs_diff(const float *a, const float *b, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

static inline int all_equal_to(const float *v, size_t n, float x) {
    for (size_t i = 0; i < n; i++)
        if (memcmp(&v[i], &x, sizeof x) != 0) return 0;
    return 1;
}

static inline int check_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, check_count - check_failures, check_failures);
    return check_failures == 0 ? 0 : 1;
}

#endif
