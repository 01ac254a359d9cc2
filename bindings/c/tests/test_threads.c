/* A const model is shared by 4 threads running forward at once (plus
 * parameter reads and their own streams and trainers): every result equals
 * the serial one, bit for bit. Run under valgrind. */
#include <pthread.h>

#include "check.h"

enum { THREADS = 4, ROUNDS = 3, T = 5, B = 2, I = 3, H = 6, L = 2, D = 2 };
enum { NX = T * B * I, NY = T * B * D * H, NS = L * D * B * H };

static const rnn_model *model;
static float inputs[THREADS][ROUNDS][NX];
static float serial_y[THREADS][ROUNDS][NY], serial_h[THREADS][ROUNDS][NS];
static float serial_w[4 * H * H];

typedef struct {
    int id;
    int mismatches;
    int failures;
} job;

static void *worker(void *arg) {
    job *j = (job *)arg;
    float y[NY], h[NS], c[NS], w[4 * H * H];
    for (int r = 0; r < ROUNDS; r++) {
        if (rnn_model_forward(model, inputs[j->id][r], T, B, NULL, NULL, y, NY, h, NS, c, NS) !=
            RNN_STATUS_OK) {
            j->failures++;
            continue;
        }
        if (!same(y, serial_y[j->id][r], NY) || !same(h, serial_h[j->id][r], NS)) j->mismatches++;
        if (rnn_model_param_get(model, "weight_hh_l1_reverse", w, 4 * H * H) != RNN_STATUS_OK ||
            !same(w, serial_w, 4 * H * H))
            j->mismatches++;
        /* Errors are per thread: a failing call here leaves a message on
         * this thread only. */
        if (rnn_model_forward(model, NULL, T, B, NULL, NULL, y, NY, NULL, 0, NULL, 0) !=
                RNN_STATUS_NULL_POINTER ||
            strstr(rnn_last_error_message(), "x") == NULL)
            j->failures++;
    }
    /* Its own trainer on the shared const model. */
    rnn_trainer *t = NULL;
    if (rnn_trainer_new(model, &t) != RNN_STATUS_OK ||
        rnn_trainer_forward(t, model, inputs[j->id][0], T, B, NULL, NULL, NULL, y, NY, NULL, 0,
                            NULL, 0) != RNN_STATUS_OK ||
        !same(y, serial_y[j->id][0], NY) ||
        rnn_trainer_backward(t, model, y, NULL, NULL) != RNN_STATUS_OK)
        j->failures++;
    rnn_trainer_free(t);
    return NULL;
}

int main(void) {
    rnn_config cfg;
    OK(rnn_config_init(&cfg, RNN_CELL_KIND_LSTM, I, H));
    cfg.num_layers = L;
    cfg.bidirectional = 1;
    cfg.seed = 3;
    rnn_model *m = NULL;
    OK(rnn_model_new(&cfg, &m));
    model = m;
    OK(rnn_model_param_get(model, "weight_hh_l1_reverse", serial_w, 4 * H * H));
    float c[NS];
    for (int t = 0; t < THREADS; t++)
        for (int r = 0; r < ROUNDS; r++) {
            fill(inputs[t][r], NX, (unsigned)(100 + t * ROUNDS + r));
            OK(rnn_model_forward(model, inputs[t][r], T, B, NULL, NULL, serial_y[t][r], NY,
                                 serial_h[t][r], NS, c, NS));
        }

    pthread_t threads[THREADS];
    job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t].id = t;
        jobs[t].mismatches = jobs[t].failures = 0;
        CHECK(pthread_create(&threads[t], NULL, worker, &jobs[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        CHECK(jobs[t].mismatches == 0);
        CHECK(jobs[t].failures == 0);
    }
    /* The main thread's last call succeeded: its message is still empty. */
    CHECK(strcmp(rnn_last_error_message(), "") == 0);
    rnn_model_free(m);
    return check_summary("test_threads");
}
