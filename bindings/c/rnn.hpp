// rnn.hpp: a C++17 RAII wrapper over the librnn C API (rnn.h).
//
// Handles are std::unique_ptr with the library's free functions as deleters
// (move-only objects, freed exactly once); every failed call throws
// rnn::Error, which carries the rnn_status and the library's message
// (rnn::OutOfMemory, an rnn::Error, for RNN_STATUS_OUT_OF_MEMORY). Input
// vectors are checked against the sizes the C API will read, so a wrong size
// is an exception, not an out-of-bounds read; sizes are multiplied with
// overflow checks (an overflow throws rnn::Error, RNN_STATUS_INVALID_ARGUMENT).
//
// Layout conventions are the C API's (see rnn.h): time-major [T, B, F]
// sequences, [L*D, B, H] states, PyTorch parameter names and gate order.
// Thread safety too: const Model methods may run concurrently on one Model.
#ifndef RNN_HPP
#define RNN_HPP

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "rnn.h"

namespace rnn {

/// A failed library call: the status and the library's message.
class Error : public std::runtime_error {
public:
    Error(rnn_status status, const std::string &message)
        : std::runtime_error(message), status_(status) {}
    rnn_status status() const noexcept { return status_; }

private:
    rnn_status status_;
};

/// RNN_STATUS_OUT_OF_MEMORY: a buffer sized by an argument or a file could
/// not be allocated (the call changed nothing).
class OutOfMemory : public Error {
public:
    explicit OutOfMemory(const std::string &message)
        : Error(RNN_STATUS_OUT_OF_MEMORY, message) {}
};

/// Throws rnn::Error (rnn::OutOfMemory for RNN_STATUS_OUT_OF_MEMORY) for a
/// status other than RNN_STATUS_OK.
inline void check(rnn_status status) {
    if (status != RNN_STATUS_OK) {
        std::string message = std::string(rnn_status_string(static_cast<uint32_t>(status))) +
                              ": " + rnn_last_error_message();
        if (status == RNN_STATUS_OUT_OF_MEMORY) throw OutOfMemory(message);
        throw Error(status, message);
    }
}

/// The most threads set_num_threads accepts.
constexpr std::size_t max_threads = RNN_MAX_THREADS;

namespace detail {
struct ModelDeleter {
    void operator()(rnn_model *p) const noexcept { rnn_model_free(p); }
};
struct StreamDeleter {
    void operator()(rnn_stream *p) const noexcept { rnn_stream_free(p); }
};
struct TrainerDeleter {
    void operator()(rnn_trainer *p) const noexcept { rnn_trainer_free(p); }
};
struct OptimizerDeleter {
    void operator()(rnn_optimizer *p) const noexcept { rnn_optimizer_free(p); }
};

inline void expect_size(const char *what, std::size_t got, std::size_t want) {
    if (got != want) {
        throw Error(RNN_STATUS_SHAPE_MISMATCH, std::string(what) + ": expected " +
                                                   std::to_string(want) + " values, got " +
                                                   std::to_string(got));
    }
}

/// a * b, or rnn::Error (RNN_STATUS_INVALID_ARGUMENT) when it overflows.
inline std::size_t mul(std::size_t a, std::size_t b) {
    if (b != 0 && a > SIZE_MAX / b) {
        throw Error(RNN_STATUS_INVALID_ARGUMENT,
                    "size " + std::to_string(a) + " x " + std::to_string(b) + " overflows");
    }
    return a * b;
}

template <class T> const T *data_or_null(const std::vector<T> *v) {
    return v ? v->data() : nullptr;
}
} // namespace detail

using ModelPtr = std::unique_ptr<rnn_model, detail::ModelDeleter>;
using StreamPtr = std::unique_ptr<rnn_stream, detail::StreamDeleter>;
using TrainerPtr = std::unique_ptr<rnn_trainer, detail::TrainerDeleter>;
using OptimizerPtr = std::unique_ptr<rnn_optimizer, detail::OptimizerDeleter>;

/// The library's version, major << 16 | minor << 8 | patch.
inline uint32_t abi_version() noexcept { return rnn_abi_version(); }

/// Threads used by later library calls.
inline void set_num_threads(std::size_t n) { check(rnn_set_num_threads(n)); }

/// A network description with builder-style setters.
struct Config : rnn_config {
    Config(rnn_cell_kind cell, std::size_t input_size, std::size_t hidden_size) : rnn_config() {
        check(rnn_config_init(this, static_cast<uint32_t>(cell), input_size, hidden_size));
    }
    Config &with_layers(std::size_t n) { num_layers = n; return *this; }
    Config &with_bidirectional(bool on) { bidirectional = on ? 1 : 0; return *this; }
    Config &with_bias(bool on) { bias = on ? 1 : 0; return *this; }
    Config &with_seed(uint64_t s) { seed = s; return *this; }
    Config &with_activation(rnn_activation a) { activation = static_cast<uint32_t>(a); return *this; }
    Config &with_gru_variant(rnn_gru_variant v) { gru_variant = static_cast<uint32_t>(v); return *this; }
};

/// Outputs of a forward pass: y [T, B, D*H], h_n and (LSTM) c_n [L*D, B, H].
struct Outputs {
    std::vector<float> y, h_n, c_n;
};

/// Optional inputs of a forward pass (pointers may be null).
struct Initial {
    const std::vector<float> *h0 = nullptr;        // [L*D, B, H]
    const std::vector<float> *c0 = nullptr;        // [L*D, B, H], LSTM only
    const std::vector<std::size_t> *lengths = nullptr; // [B], each in 1..=T
};

class Trainer;

/// A recurrent network.
class Model {
public:
    explicit Model(const rnn_config &config) {
        rnn_model *p = nullptr;
        check(rnn_model_new(&config, &p));
        p_.reset(p);
    }
    static Model load(const std::string &path) {
        rnn_model *p = nullptr;
        check(rnn_model_load(path.c_str(), &p));
        return Model(ModelPtr(p));
    }
    Model clone() const {
        rnn_model *p = nullptr;
        check(rnn_model_clone(get(), &p));
        return Model(ModelPtr(p));
    }
    void save(const std::string &path) const { check(rnn_model_save(get(), path.c_str())); }

    rnn_config config() const {
        rnn_config c{};
        check(rnn_model_config(get(), &c));
        return c;
    }
    std::size_t directions() const { return config().bidirectional ? 2 : 1; }
    bool has_cell_state() const { return config().cell == RNN_CELL_KIND_LSTM; }
    /// Elements of a state tensor [L*D, B, H].
    std::size_t state_len(std::size_t batch) const {
        rnn_config c = config();
        return detail::mul(detail::mul(detail::mul(c.num_layers, directions()), batch),
                           c.hidden_size);
    }
    /// Elements of y [T, B, D*H].
    std::size_t output_len(std::size_t seq_len, std::size_t batch) const {
        return detail::mul(detail::mul(detail::mul(seq_len, batch), directions()),
                           config().hidden_size);
    }
    /// Elements of x [T, B, I].
    std::size_t input_len(std::size_t seq_len, std::size_t batch) const {
        return detail::mul(detail::mul(seq_len, batch), config().input_size);
    }

    /// Inference forward: x [T, B, I]. Safe to call from several threads.
    Outputs forward(const std::vector<float> &x, std::size_t seq_len, std::size_t batch,
                    const Initial &init = {}) const {
        check_inputs(x, seq_len, batch, init);
        Outputs out;
        out.y.resize(output_len(seq_len, batch));
        out.h_n.resize(state_len(batch));
        if (has_cell_state()) out.c_n.resize(state_len(batch));
        check(rnn_model_forward_lengths(
            get(), x.data(), seq_len, batch, detail::data_or_null(init.lengths),
            detail::data_or_null(init.h0), detail::data_or_null(init.c0), out.y.data(),
            out.y.size(), out.h_n.data(), out.h_n.size(),
            has_cell_state() ? out.c_n.data() : nullptr, out.c_n.size()));
        return out;
    }

    std::vector<std::string> param_names() const {
        std::size_t n = 0;
        check(rnn_model_param_count(get(), &n));
        std::vector<std::string> names;
        for (std::size_t i = 0; i < n; i++) {
            const char *s = nullptr;
            check(rnn_model_param_name(get(), i, &s));
            names.emplace_back(s);
        }
        return names;
    }
    std::vector<std::size_t> param_shape(const std::string &name) const {
        std::size_t shape[2] = {0, 0}, ndim = 0;
        check(rnn_model_param_shape(get(), name.c_str(), shape, 2, &ndim));
        return std::vector<std::size_t>(shape, shape + ndim);
    }
    std::size_t param_len(const std::string &name) const {
        std::size_t n = 1;
        for (std::size_t d : param_shape(name)) n = detail::mul(n, d);
        return n;
    }
    std::vector<float> param(const std::string &name) const {
        std::vector<float> v(param_len(name));
        check(rnn_model_param_get(get(), name.c_str(), v.data(), v.size()));
        return v;
    }
    void set_param(const std::string &name, const std::vector<float> &values) {
        check(rnn_model_param_set(get(), name.c_str(), values.data(), values.size()));
    }

    rnn_model *get() noexcept { return p_.get(); }
    const rnn_model *get() const noexcept { return p_.get(); }

    void check_inputs(const std::vector<float> &x, std::size_t seq_len, std::size_t batch,
                      const Initial &init) const {
        detail::expect_size("x", x.size(), input_len(seq_len, batch));
        if (init.h0) detail::expect_size("h0", init.h0->size(), state_len(batch));
        if (init.c0) detail::expect_size("c0", init.c0->size(), state_len(batch));
        if (init.lengths) detail::expect_size("lengths", init.lengths->size(), batch);
    }

private:
    explicit Model(ModelPtr p) : p_(std::move(p)) {}
    ModelPtr p_;
};

/// One time step at a time, for a unidirectional model.
class Stream {
public:
    Stream(const Model &m, std::size_t batch) : batch_(batch) {
        rnn_stream *p = nullptr;
        check(rnn_stream_new(m.get(), batch, &p));
        p_.reset(p);
    }
    /// x_t [B, I] -> y_t [B, H].
    std::vector<float> step(const Model &m, const std::vector<float> &x_t) {
        rnn_config c = m.config();
        detail::expect_size("x_t", x_t.size(), detail::mul(batch_, c.input_size));
        std::vector<float> y(detail::mul(batch_, c.hidden_size));
        check(rnn_stream_step(p_.get(), m.get(), x_t.data(), y.data(), y.size()));
        return y;
    }
    void reset() { check(rnn_stream_reset(p_.get())); }
    rnn_stream *get() noexcept { return p_.get(); }

private:
    StreamPtr p_;
    std::size_t batch_;
};

/// An optimizer (SGD, Adam/AdamW, RMSProp) with its state.
class Optimizer {
public:
    static rnn_sgd_config sgd_defaults(double lr) {
        rnn_sgd_config c{};
        check(rnn_sgd_config_init(&c, lr));
        return c;
    }
    static rnn_adam_config adam_defaults(double lr) {
        rnn_adam_config c{};
        check(rnn_adam_config_init(&c, lr));
        return c;
    }
    static rnn_rmsprop_config rmsprop_defaults(double lr) {
        rnn_rmsprop_config c{};
        check(rnn_rmsprop_config_init(&c, lr));
        return c;
    }
    static Optimizer sgd(const rnn_sgd_config &c) {
        rnn_optimizer *p = nullptr;
        check(rnn_optimizer_new_sgd(&c, &p));
        return Optimizer(p);
    }
    static Optimizer adam(const rnn_adam_config &c) {
        rnn_optimizer *p = nullptr;
        check(rnn_optimizer_new_adam(&c, &p));
        return Optimizer(p);
    }
    static Optimizer rmsprop(const rnn_rmsprop_config &c) {
        rnn_optimizer *p = nullptr;
        check(rnn_optimizer_new_rmsprop(&c, &p));
        return Optimizer(p);
    }
    inline void step(Model &m, const Trainer &t);
    double lr() const {
        double v = 0.0;
        check(rnn_optimizer_lr(p_.get(), &v));
        return v;
    }
    void set_lr(double lr) { check(rnn_optimizer_set_lr(p_.get(), lr)); }
    void reset() { check(rnn_optimizer_reset(p_.get())); }
    rnn_optimizer *get() noexcept { return p_.get(); }

private:
    explicit Optimizer(rnn_optimizer *p) : p_(p) {}
    OptimizerPtr p_;
};

/// Input gradients of a backward pass.
struct InputGrads {
    std::vector<float> x, h0, c0;
};

/// Training state of one model: forward with a tape, backward, gradients.
class Trainer {
public:
    explicit Trainer(const Model &m) {
        rnn_trainer *p = nullptr;
        check(rnn_trainer_new(m.get(), &p));
        p_.reset(p);
    }
    Outputs forward(const Model &m, const std::vector<float> &x, std::size_t seq_len,
                    std::size_t batch, const Initial &init = {}) {
        m.check_inputs(x, seq_len, batch, init);
        Outputs out;
        out.y.resize(m.output_len(seq_len, batch));
        out.h_n.resize(m.state_len(batch));
        if (m.has_cell_state()) out.c_n.resize(m.state_len(batch));
        remember(m, seq_len, batch);
        check(rnn_trainer_forward(p_.get(), m.get(), x.data(), seq_len, batch,
                                  detail::data_or_null(init.lengths),
                                  detail::data_or_null(init.h0), detail::data_or_null(init.c0),
                                  out.y.data(), out.y.size(), out.h_n.data(), out.h_n.size(),
                                  m.has_cell_state() ? out.c_n.data() : nullptr,
                                  out.c_n.size()));
        return out;
    }
    /// grad_y [T, B, D*H] of the last forward; grad_h_n, grad_c_n optional.
    void backward(const Model &m, const std::vector<float> &grad_y,
                  const std::vector<float> *grad_h_n = nullptr,
                  const std::vector<float> *grad_c_n = nullptr) {
        detail::expect_size("grad_y", grad_y.size(), m.output_len(seq_len_, batch_));
        if (grad_h_n) detail::expect_size("grad_h_n", grad_h_n->size(), m.state_len(batch_));
        if (grad_c_n) detail::expect_size("grad_c_n", grad_c_n->size(), m.state_len(batch_));
        check(rnn_trainer_backward(p_.get(), m.get(), grad_y.data(),
                                   detail::data_or_null(grad_h_n),
                                   detail::data_or_null(grad_c_n)));
    }
    /// Gradient of parameter `name` (needs the model for its shape).
    std::vector<float> grad(const Model &m, const std::string &name) const {
        std::vector<float> g(m.param_len(name));
        check(rnn_trainer_grad(p_.get(), name.c_str(), g.data(), g.size()));
        return g;
    }
    InputGrads input_grads() const {
        InputGrads g;
        g.x.resize(input_len_);
        g.h0.resize(state_len_);
        if (lstm_) g.c0.resize(state_len_);
        check(rnn_trainer_input_grads(p_.get(), g.x.data(), g.x.size(), g.h0.data(), g.h0.size(),
                                      lstm_ ? g.c0.data() : nullptr, g.c0.size()));
        return g;
    }
    /// Clips the gradients' global norm; returns the norm before clipping.
    float clip_grad_norm(float max_norm) {
        float norm = 0.0f;
        check(rnn_trainer_clip_grad_norm(p_.get(), max_norm, &norm));
        return norm;
    }
    /// One MSE training step (target [T, B, D*H]); returns the loss.
    double step_mse(Model &m, Optimizer &opt, const std::vector<float> &x, std::size_t seq_len,
                    std::size_t batch, const std::vector<float> &target,
                    float max_grad_norm = 0.0f, const Initial &init = {}) {
        m.check_inputs(x, seq_len, batch, init);
        detail::expect_size("target", target.size(), m.output_len(seq_len, batch));
        double loss = 0.0;
        remember(m, seq_len, batch);
        check(rnn_trainer_step_mse(p_.get(), m.get(), opt.get(), x.data(), seq_len, batch,
                                   detail::data_or_null(init.lengths),
                                   detail::data_or_null(init.h0), detail::data_or_null(init.c0),
                                   target.data(), max_grad_norm, &loss));
        return loss;
    }
    const rnn_trainer *get() const noexcept { return p_.get(); }

private:
    // Sizes of the last forward, for backward and input_grads.
    void remember(const Model &m, std::size_t seq_len, std::size_t batch) {
        seq_len_ = seq_len;
        batch_ = batch;
        input_len_ = m.input_len(seq_len, batch);
        state_len_ = m.state_len(batch);
        lstm_ = m.has_cell_state();
    }
    TrainerPtr p_;
    std::size_t seq_len_ = 0, batch_ = 0, input_len_ = 0, state_len_ = 0;
    bool lstm_ = false;
};

inline void Optimizer::step(Model &m, const Trainer &t) {
    check(rnn_optimizer_step(p_.get(), m.get(), t.get()));
}

} // namespace rnn

#endif // RNN_HPP
