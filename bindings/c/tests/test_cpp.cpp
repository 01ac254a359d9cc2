// The C++ wrapper: RAII handles (moves, no double free), exceptions carrying
// the status and the library's message, and every wrapper class working.
// Run under valgrind.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "rnn.hpp"

static int failures = 0, checks = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                              \
    } while (0)

// `body` throws rnn::Error with `status` and a message containing `needle`.
template <class F> static void expect_error(F body, rnn_status status, const char *needle) {
    checks++;
    try {
        body();
        failures++;
        std::fprintf(stderr, "expected rnn::Error (%s), nothing thrown\n", needle);
    } catch (const rnn::Error &e) {
        if (e.status() != status || std::strstr(e.what(), needle) == nullptr) {
            failures++;
            std::fprintf(stderr, "got status %d \"%s\", want %d with \"%s\"\n", (int)e.status(),
                         e.what(), (int)status, needle);
        }
    }
}

static std::vector<float> values(std::size_t n, float scale) {
    std::vector<float> v(n);
    for (std::size_t i = 0; i < n; i++) v[i] = scale * std::sin(0.7f * (float)i + 0.3f);
    return v;
}

int main(int argc, char **argv) {
    const std::string tmp = argc > 1 ? argv[1] : ".";
    CHECK(rnn::abi_version() == ((RNN_VERSION_MAJOR << 16) | (RNN_VERSION_MINOR << 8) |
                                 RNN_VERSION_PATCH));
    rnn::set_num_threads(2);

    // Model construction and errors.
    rnn::Config cfg(RNN_CELL_KIND_LSTM, 3, 4);
    cfg.with_layers(2).with_bidirectional(true).with_seed(5);
    rnn::Model m(cfg);
    CHECK(m.directions() == 2 && m.has_cell_state());
    CHECK(m.state_len(2) == 2 * 2 * 2 * 4);
    expect_error([] { rnn::Config c(RNN_CELL_KIND_GRU, 0, 4); rnn::Model bad(c); },
                 RNN_STATUS_INVALID_ARGUMENT, "input_size");
    expect_error([] { rnn::Model::load("/nonexistent/model.safetensors"); }, RNN_STATUS_IO,
                 "/nonexistent/model.safetensors");
    expect_error([] { rnn::Config c(static_cast<rnn_cell_kind>(3), 1, 1); },
                 RNN_STATUS_INVALID_ARGUMENT, "cell");

    // Forward, and the wrapper's own size checks.
    const std::size_t T = 4, B = 2;
    auto x = values(m.input_len(T, B), 1.0f);
    rnn::Outputs out = m.forward(x, T, B);
    CHECK(out.y.size() == T * B * 8 && out.h_n.size() == 32 && out.c_n.size() == 32);
    expect_error([&] { m.forward(std::vector<float>(5), T, B); }, RNN_STATUS_SHAPE_MISMATCH, "x");
    std::vector<float> short_h0(3);
    rnn::Initial bad_init;
    bad_init.h0 = &short_h0;
    expect_error([&] { m.forward(x, T, B, bad_init); }, RNN_STATUS_SHAPE_MISMATCH, "h0");
    std::vector<float> one(1);
    expect_error([&] { m.forward(one, 1, 0); }, RNN_STATUS_SHAPE_MISMATCH, "x");
    std::vector<std::size_t> lengths = {T, 2};
    rnn::Initial init;
    init.lengths = &lengths;
    rnn::Outputs short_out = m.forward(x, T, B, init);
    CHECK(short_out.y[(3 * B + 1) * 8] == 0.0f);
    std::vector<std::size_t> bad_lengths = {T, T + 1};
    init.lengths = &bad_lengths;
    expect_error([&] { m.forward(x, T, B, init); }, RNN_STATUS_INVALID_ARGUMENT, "lengths");

    // Parameters, clone, save/load; moves keep one owner.
    auto names = m.param_names();
    CHECK(names.size() == 16 && names[0] == "weight_ih_l0" && names[15] == "bias_hh_l1_reverse");
    CHECK((m.param_shape("weight_ih_l1") == std::vector<std::size_t>{16, 8}));
    expect_error([&] { m.param("nope"); }, RNN_STATUS_INVALID_ARGUMENT, "nope");
    expect_error([&] { m.set_param("bias_ih_l0", std::vector<float>(3)); },
                 RNN_STATUS_SHAPE_MISMATCH, "bias_ih_l0");
    rnn::Model copy = m.clone();
    copy.set_param("bias_ih_l0", std::vector<float>(16, 0.25f));
    CHECK(copy.param("bias_ih_l0")[3] == 0.25f && m.param("bias_ih_l0")[3] != 0.25f);
    const std::string path = tmp + "/cpp_model.safetensors";
    copy.save(path);
    rnn::Model loaded = rnn::Model::load(path);
    CHECK(loaded.forward(x, T, B).y == copy.forward(x, T, B).y);
    rnn::Model moved = std::move(loaded);
    CHECK(moved.get() != nullptr && loaded.get() == nullptr);
    expect_error([&] { loaded.forward(x, T, B); }, RNN_STATUS_NULL_POINTER, "m");

    // Streaming equals forward (unidirectional model).
    rnn::Model uni(rnn::Config(RNN_CELL_KIND_GRU, 3, 4).with_gru_variant(
        RNN_GRU_VARIANT_RESET_BEFORE_LINEAR));
    rnn::Outputs full = uni.forward(x, T, B);
    rnn::Stream s(uni, B);
    float err = 0.0f;
    for (std::size_t t = 0; t < T; t++) {
        std::vector<float> xt(x.begin() + (long)(t * B * 3), x.begin() + (long)((t + 1) * B * 3));
        auto yt = s.step(uni, xt);
        for (std::size_t k = 0; k < yt.size(); k++)
            err = std::fmax(err, std::fabs(yt[k] - full.y[t * B * 4 + k]));
    }
    CHECK(err <= 1e-6f);
    s.reset();
    expect_error([&] { rnn::Stream bad(m, B); }, RNN_STATUS_INVALID_ARGUMENT, "bidirectional");
    // A batch whose state size overflows: rnn::OutOfMemory (an rnn::Error),
    // nothing allocated; the wrapper's own size arithmetic is checked too.
    expect_error([&] { rnn::Stream huge(uni, (std::size_t)1 << 60); }, RNN_STATUS_OUT_OF_MEMORY,
                 "stream");
    checks++;
    try {
        rnn::Stream huge(uni, SIZE_MAX / 2);
        failures++;
    } catch (const rnn::OutOfMemory &) {
    }
    expect_error([&] { uni.output_len(SIZE_MAX / 2, 4); }, RNN_STATUS_INVALID_ARGUMENT,
                 "overflows");
    CHECK(rnn::max_threads == 1024);
    expect_error([] { rnn::set_num_threads(rnn::max_threads + 1); }, RNN_STATUS_INVALID_ARGUMENT,
                 "1024");

    // Training: forward/backward/gradients, optimizer step, train step.
    rnn::Trainer tr(m);
    expect_error([&] { tr.input_grads(); }, RNN_STATUS_INVALID_ARGUMENT, "backward");
    rnn::Outputs tout = tr.forward(m, x, T, B);
    CHECK(tout.y == out.y);
    tr.backward(m, values(tout.y.size(), 0.5f));
    auto g = tr.grad(m, "weight_hh_l1_reverse");
    CHECK(g.size() == 64);
    rnn::InputGrads ig = tr.input_grads();
    CHECK(ig.x.size() == x.size() && ig.h0.size() == 32 && ig.c0.size() == 32);
    CHECK(tr.clip_grad_norm(1e-3f) > 1e-3f);
    rnn::Optimizer sgd = rnn::Optimizer::sgd(rnn::Optimizer::sgd_defaults(0.1));
    auto before = m.param("weight_ih_l0");
    sgd.step(m, tr);
    CHECK(m.param("weight_ih_l0") != before);
    sgd.set_lr(0.05);
    CHECK(sgd.lr() == 0.05);
    expect_error([&] { sgd.set_lr(-1.0); }, RNN_STATUS_INVALID_ARGUMENT, "lr");
    rnn::Trainer other(copy);
    expect_error([&] { sgd.step(m, other); }, RNN_STATUS_INVALID_ARGUMENT, "another model");

    rnn::Optimizer adam = rnn::Optimizer::adam(rnn::Optimizer::adam_defaults(0.02));
    rnn::Optimizer rms = rnn::Optimizer::rmsprop(rnn::Optimizer::rmsprop_defaults(0.01));
    auto target = values(m.output_len(T, B), 0.3f);
    double first = tr.step_mse(m, adam, x, T, B, target, 1.0f), last = first;
    for (int i = 0; i < 30; i++) last = tr.step_mse(m, adam, x, T, B, target, 1.0f);
    CHECK(last < first);
    CHECK(tr.input_grads().x.size() == x.size());
    double l2 = tr.step_mse(m, rms, x, T, B, target);
    CHECK(std::isfinite(l2));
    std::vector<float> nan_target = target;
    nan_target[0] = NAN;
    expect_error([&] { tr.step_mse(m, adam, x, T, B, nan_target); }, RNN_STATUS_NUMERICAL, "loss");

    std::printf("test_cpp: %d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
