/* Loads a model file (safetensors with librnn/PyTorch metadata, e.g. any
 * file of tests/fixtures/parity/), runs it on a deterministic input and
 * prints the output and the final hidden state.
 *
 * usage: forward MODEL.safetensors [SEQ_LEN [BATCH]] */
#include <stdio.h>
#include <stdlib.h>

#include "rnn.h"

static int fail(const char *what, rnn_status st) {
    fprintf(stderr, "%s failed: %s: %s\n", what, rnn_status_string((uint32_t)st),
            rnn_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors [SEQ_LEN [BATCH]]\n", argv[0]);
        return 2;
    }
    size_t T = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 5;
    size_t B = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 2;

    rnn_model *m = NULL;
    rnn_status st = rnn_model_load(argv[1], &m);
    if (st != RNN_STATUS_OK) return fail("rnn_model_load", st);

    rnn_config c;
    rnn_model_config(m, &c);
    const char *cells[] = {"Elman", "LSTM", "GRU"};
    size_t D = c.bidirectional ? 2 : 1, I = c.input_size, H = c.hidden_size, L = c.num_layers;
    printf("librnn %u.%u.%u: %s, %zu layer(s), %s, input %zu, hidden %zu\n",
           rnn_abi_version() >> 16, (rnn_abi_version() >> 8) & 0xff, rnn_abi_version() & 0xff,
           cells[c.cell], L, D == 2 ? "bidirectional" : "unidirectional", I, H);

    size_t nx = T * B * I, ny = T * B * D * H, ns = L * D * B * H;
    float *x = malloc(nx * sizeof *x), *y = malloc(ny * sizeof *y), *h_n = malloc(ns * sizeof *h_n);
    if (!x || !y || !h_n) return 1;
    for (size_t i = 0; i < nx; i++) x[i] = (float)((i * 37) % 17) / 8.0f - 1.0f; /* [T, B, I] */

    st = rnn_model_forward(m, x, T, B, NULL, NULL, y, ny, h_n, ns, NULL, 0);
    if (st != RNN_STATUS_OK) return fail("rnn_model_forward", st);

    for (size_t t = 0; t < T; t++) {
        printf("y[t=%zu, b=0] =", t);
        for (size_t k = 0; k < D * H && k < 8; k++) printf(" %+.5f", y[(t * B) * D * H + k]);
        printf("%s\n", D * H > 8 ? " ..." : "");
    }
    printf("h_n[last layer-direction, b=0] =");
    for (size_t k = 0; k < H && k < 8; k++) printf(" %+.5f", h_n[(L * D - 1) * B * H + k]);
    printf("\n");
    free(x);
    free(y);
    free(h_n);
    rnn_model_free(m);
    return 0;
}
