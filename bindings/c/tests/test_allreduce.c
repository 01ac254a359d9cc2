/* Data-parallel training from C through rnn_trainer_set_allreduce: two
 * threads, each with its own model (same seed), trainer and optimizer,
 * train on unequal slices (3 and 2 rows) of a batch of 5, summing through a
 * fake two-worker all-reduce (a barrier and a shared table). They must end
 * with the same parameters, bit for bit, and with those of one model
 * trained on the whole batch (to float rounding), and report the whole
 * batch's loss. A failing callback fails the step and changes nothing.
 * Run under valgrind. */
#define _POSIX_C_SOURCE 200112L
#include <pthread.h>

#include "check.h"

enum { WORKERS = 2, T = 4, B = 5, I = 3, H = 4, STEPS = 3 };
enum { NW = 4 * H * H }; /* weight_hh_l0 */
static const int rows_of[WORKERS] = {3, 2}; /* rows 0..3 and 3..5 */

static float x[T * B * I], target[T * B * H];
static pthread_barrier_t barrier;
static float *posted[WORKERS];

/* Sums the two workers' buffers in rank order (the same bits on both). */
static int fake_allreduce(float *buf, size_t len, void *user_data) {
    int rank = *(const int *)user_data;
    float *sum = malloc(len * sizeof *sum);
    if (sum == NULL) return 1;
    posted[rank] = buf;
    pthread_barrier_wait(&barrier); /* both buffers posted */
    for (size_t i = 0; i < len; i++) sum[i] = posted[0][i] + posted[1][i];
    pthread_barrier_wait(&barrier); /* both read: buffers may change */
    memcpy(buf, sum, len * sizeof *sum);
    free(sum);
    return 0;
}

static int failing_allreduce(float *buf, size_t len, void *user_data) {
    (void)buf, (void)len, (void)user_data;
    return 7;
}

/* Rows [first, first + n) of a time-major [T, B, F] array. */
static void rows(const float *all, int f, int first, int n, float *out) {
    for (int t = 0; t < T; t++)
        memcpy(out + (size_t)t * n * f, all + ((size_t)t * B + first) * f,
               (size_t)n * f * sizeof(float));
}

static rnn_model *new_model(void) {
    rnn_config cfg;
    rnn_model *m = NULL;
    OK(rnn_config_init(&cfg, RNN_CELL_KIND_LSTM, I, H));
    cfg.seed = 11;
    OK(rnn_model_new(&cfg, &m));
    return m;
}

static rnn_optimizer *new_sgd(void) {
    rnn_sgd_config c;
    rnn_optimizer *o = NULL;
    OK(rnn_sgd_config_init(&c, 0.5));
    OK(rnn_optimizer_new_sgd(&c, &o));
    return o;
}

typedef struct {
    int rank;
    rnn_model *m;
    double loss[STEPS];
    int failures;
} worker_job;

static void *worker(void *arg) {
    worker_job *j = (worker_job *)arg;
    int n = rows_of[j->rank], first = j->rank == 0 ? 0 : rows_of[0];
    float *xs = alloc_floats((size_t)T * n * I), *ts = alloc_floats((size_t)T * n * H);
    rows(x, I, first, n, xs);
    rows(target, H, first, n, ts);
    rnn_trainer *t = NULL;
    rnn_optimizer *o = new_sgd();
    if (rnn_trainer_new(j->m, &t) != RNN_STATUS_OK ||
        rnn_trainer_set_allreduce(t, fake_allreduce, &j->rank) != RNN_STATUS_OK)
        j->failures++;
    for (int s = 0; s < STEPS; s++)
        if (rnn_trainer_step_mse(t, j->m, o, xs, T, (size_t)n, NULL, NULL, NULL, ts, 1.0f,
                                 &j->loss[s]) != RNN_STATUS_OK)
            j->failures++;
    rnn_trainer_free(t);
    rnn_optimizer_free(o);
    free(xs);
    free(ts);
    return NULL;
}

int main(void) {
    fill(x, T * B * I, 5);
    fill(target, T * B * H, 6);

    /* The reference: one model on the whole batch. */
    rnn_model *whole = new_model();
    rnn_trainer *t = NULL;
    rnn_optimizer *o = new_sgd();
    OK(rnn_trainer_new(whole, &t));
    double want_loss[STEPS];
    for (int s = 0; s < STEPS; s++)
        OK(rnn_trainer_step_mse(t, whole, o, x, T, B, NULL, NULL, NULL, target, 1.0f,
                                &want_loss[s]));

    CHECK(pthread_barrier_init(&barrier, NULL, WORKERS) == 0);
    pthread_t threads[WORKERS];
    worker_job jobs[WORKERS];
    for (int r = 0; r < WORKERS; r++) {
        jobs[r].rank = r;
        jobs[r].m = new_model();
        jobs[r].failures = 0;
        CHECK(pthread_create(&threads[r], NULL, worker, &jobs[r]) == 0);
    }
    for (int r = 0; r < WORKERS; r++) {
        CHECK(pthread_join(threads[r], NULL) == 0);
        CHECK(jobs[r].failures == 0);
    }
    pthread_barrier_destroy(&barrier);

    float w0[NW], w1[NW], want[NW];
    OK(rnn_model_param_get(jobs[0].m, "weight_hh_l0", w0, NW));
    OK(rnn_model_param_get(jobs[1].m, "weight_hh_l0", w1, NW));
    OK(rnn_model_param_get(whole, "weight_hh_l0", want, NW));
    CHECK(same(w0, w1, NW)); /* the replicas agree bit for bit */
    float worst = 0.0f, moved = 0.0f;
    float first[NW];
    rnn_model *fresh = new_model();
    OK(rnn_model_param_get(fresh, "weight_hh_l0", first, NW));
    for (int i = 0; i < NW; i++) {
        worst = fmaxf(worst, fabsf(w0[i] - want[i]));
        moved = fmaxf(moved, fabsf(want[i] - first[i]));
    }
    CHECK(moved > 1e-3f); /* training changed the weights ... */
    CHECK(worst <= 1e-5f); /* ... and the slices changed them as the whole batch did */
    for (int s = 0; s < STEPS; s++) {
        CHECK(jobs[0].loss[s] == jobs[1].loss[s]);
        CHECK(fabs(jobs[0].loss[s] - want_loss[s]) <= 1e-5 * want_loss[s]);
    }

    /* A failing callback: the step fails, the parameters stay. */
    OK(rnn_trainer_set_allreduce(t, failing_allreduce, NULL));
    EXPECT_STATUS(rnn_trainer_step_mse(t, whole, o, x, T, B, NULL, NULL, NULL, target, 1.0f, NULL),
                  RNN_STATUS_COLLECTIVE);
    CHECK(strstr(rnn_last_error_message(), "7") != NULL);
    float after[NW];
    OK(rnn_model_param_get(whole, "weight_hh_l0", after, NW));
    CHECK(same(after, want, NW));
    /* NULL: one worker again. */
    OK(rnn_trainer_set_allreduce(t, NULL, NULL));
    OK(rnn_trainer_step_mse(t, whole, o, x, T, B, NULL, NULL, NULL, target, 1.0f, NULL));
    EXPECT_STATUS(rnn_trainer_set_allreduce(NULL, NULL, NULL), RNN_STATUS_NULL_POINTER);

    rnn_trainer_free(t);
    rnn_optimizer_free(o);
    rnn_model_free(whole);
    rnn_model_free(fresh);
    for (int r = 0; r < WORKERS; r++) rnn_model_free(jobs[r].m);
    return check_summary("test_allreduce");
}
