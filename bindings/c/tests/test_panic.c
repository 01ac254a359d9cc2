/* A panic inside the library (forced by the test-only hook of a
 * `--features test-hooks` build) comes back as RNN_STATUS_PANIC with a
 * message, on the calling thread or from a worker thread, and the library
 * keeps working. */
#define RNN_TEST_HOOKS 1
#include "check.h"

int main(void) {
    for (uint32_t where = 0; where < 2; where++) {
        EXPECT_STATUS(rnn_test_force_panic(where), RNN_STATUS_PANIC);
        const char *msg = rnn_last_error_message();
        CHECK(strstr(msg, "rnn_test_force_panic") != NULL);
        CHECK(strstr(msg, "panic") != NULL);
        CHECK(strstr(msg, where ? "worker thread" : "calling thread") != NULL);
        printf("panic %u came back as: %s\n", where, msg);
    }
    EXPECT_STATUS(rnn_test_force_panic(2), RNN_STATUS_INVALID_ARGUMENT);

    /* Still works afterwards, thread pool included. */
    rnn_config cfg;
    OK(rnn_config_init(&cfg, RNN_CELL_KIND_GRU, 2, 3));
    cfg.bidirectional = 1;
    rnn_model *m = NULL;
    OK(rnn_model_new(&cfg, &m));
    float x[4 * 2] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f}, y[4 * 6];
    OK(rnn_model_forward(m, x, 4, 1, NULL, NULL, y, 24, NULL, 0, NULL, 0));
    EXPECT_STATUS(rnn_test_force_panic(1), RNN_STATUS_PANIC);
    float y2[4 * 6];
    OK(rnn_model_forward(m, x, 4, 1, NULL, NULL, y2, 24, NULL, 0, NULL, 0));
    CHECK(same(y, y2, 24));
    rnn_model_free(m);
    return check_summary("test_panic");
}
