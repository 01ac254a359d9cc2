/*
 * rnn.h: the C API of librnn (recurrent neural networks on CPUs: Elman RNN,
 * LSTM, GRU; stacked, bidirectional, variable lengths; forward, streaming
 * and training by backpropagation through time; exact against PyTorch).
 *
 * Link with -lrnn (librnn.so, SONAME librnn.so.0) or librnn.a (then also
 * -lpthread -ldl -lm). C11 or C++.
 *
 * Conventions
 * - Numbers are float (f32); hyper-parameters double.
 * - Sequences are time-major [T, B, F], row-major, contiguous:
 *   element (t, b, f) is at index (t*B + b)*F + f. T = seq_len, B = batch,
 *   I = input_size, H = hidden_size, L = num_layers, D = 2 if bidirectional
 *   else 1. A model made with rnn_config_ext.batch_first = 1 (or loaded
 *   from a file that says batch_first) takes and gives [B, T, F] instead:
 *   element (t, b, f) at (b*T + t)*F + f; rnn_model_config_ext tells.
 * - States (h0, c0, h_n, c_n) are [L*D, B, H], slot layer*D + direction
 *   (forward direction first). Outputs y are [T, B, D*H], the directions
 *   concatenated (forward first). With an LSTM projection (proj_size P,
 *   rnn_config_ext), h0, h_n and the outputs are P wide instead of H (c0,
 *   c_n stay H); with merge = RNN_MERGE_SUM, y is [T, B, H] (or P), the
 *   directions added.
 * - Parameters use PyTorch's state_dict names, shapes and gate order:
 *   weight_ih_l{k}[_reverse] [G*H, I_k] (I_0 = I, I_k = D*H above),
 *   weight_hh_l{k}[_reverse] [G*H, H], bias_ih_l{k}[_reverse],
 *   bias_hh_l{k}[_reverse] [G*H]; LSTM gates i, f, g, o (G = 4), GRU gates
 *   r, z, n (G = 3), Elman G = 1. With a projection, weight_hh is [4H, P]
 *   and weight_hr_l{k}[_reverse] [P, H] follows the biases.
 * - Errors: every fallible call returns an rnn_status (RNN_STATUS_OK = 0);
 *   rnn_last_error_message() then says what was wrong, for the calling
 *   thread. A failed call writes none of its outputs (out-handles are set
 *   to NULL) and leaves models, streams and optimizers unchanged (a failed
 *   training call may invalidate the trainer's tape: run forward again). A
 *   panic inside the library comes back as RNN_STATUS_PANIC, never as an
 *   abort.
 * - Memory: every size that comes from an argument or a file is computed
 *   with checked arithmetic and allocated fallibly; a size that overflows or
 *   cannot be allocated comes back as RNN_STATUS_OUT_OF_MEMORY, never as an
 *   abort. A load checks a file's metadata against its tensors before it
 *   allocates: its memory is bounded by the file's size.
 * - Pointers: every pointer argument is checked for NULL (RNN_STATUS_NULL_POINTER)
 *   unless its function says it may be NULL, and for alignment. Input arrays
 *   of the forward family (x, h0, c0, lengths, grad_y, grad_h_n, grad_c_n,
 *   target, x_t) are read at the size their shape implies; other inputs
 *   (parameter and state values) come with their exact length
 *   (RNN_STATUS_SHAPE_MISMATCH otherwise); every output buffer comes with
 *   its capacity in elements (RNN_STATUS_BUFFER_TOO_SMALL, nothing written,
 *   if it is too short). Output buffers must not overlap inputs or each
 *   other.
 * - Ownership: the caller owns every handle it gets (rnn_model, rnn_stream,
 *   rnn_trainer, rnn_optimizer, rnn_ntm) and frees it with the matching *_free
 *   function, which accepts NULL. Strings returned by the library belong to
 *   it (see each function).
 * - Threads: calls on a const rnn_model (forward, save, parameter reads,
 *   creating streams and trainers) may run on one model from several threads
 *   at once; calls taking a non-const handle need exclusive access to it.
 *   Distinct handles are independent. At most RNN_MAX_THREADS (1024) worker
 *   threads (rnn_set_num_threads, RNN_NUM_THREADS).
 * - Files: saves are atomic, also when threads or processes save to one
 *   path at once (a temporary file unique to the call, fsync, rename).
 * - ABI policy: rnn_abi_version() is major << 16 | minor << 8 | patch, the
 *   crate's version, and the SONAME is librnn.so.<major>. Within a major
 *   version no function changes its arity, types or meaning and no struct
 *   or enum value changes its layout: a minor version only adds (functions,
 *   enum values, fields appended to a size-versioned struct such as
 *   rnn_config_ext), so a program built against an older header runs on a
 *   newer library of the same major (check the major at start). A change
 *   that breaks any of this bumps the major (and the SONAME). Argument
 *   names: inputs come with *_len (their exact length), output buffers with
 *   *_cap (their capacity); renaming one is not an ABI change.
 * - Neural Turing Machines (rnn_ntm, docs/ntm.md): create, load, save,
 *   forward x [T, B, I] -> logits [T, B, O], parameters by name, and the
 *   gradients of one batch as one flat buffer in parameter order.
 * - Not in this API yet: the NTM's trainer and tasks, the sequence
 *   architectures (classifier, tagger, generator, seq2seq), linear heads and
 *   the other losses.
 */


#ifndef RNN_H
#define RNN_H

/* Generated by cbindgen 0.29.4 from crates/capi (config: crates/capi/cbindgen.toml). Do not edit. */

#include <stddef.h>
#include <stdint.h>

/**
 * Major version of the library; `rnn_abi_version() >> 16`.
 */
#define RNN_VERSION_MAJOR 0

/**
 * Minor version of the library; `(rnn_abi_version() >> 8) & 0xff`.
 */
#define RNN_VERSION_MINOR 4

/**
 * Patch version of the library; `rnn_abi_version() & 0xff`.
 */
#define RNN_VERSION_PATCH 0

/**
 * The most threads `rnn_set_num_threads` accepts (and the largest
 * `RNN_NUM_THREADS` the library obeys): each thread is an OS thread started
 * at once.
 */
#define RNN_MAX_THREADS 1024

/**
 * The outcome of a call. Values are fixed: never reordered, new ones only
 * appended.
 */
typedef enum rnn_status {
    /**
     * Success.
     */
    RNN_STATUS_OK = 0,
    /**
     * A pointer argument that may not be NULL was NULL.
     */
    RNN_STATUS_NULL_POINTER = 1,
    /**
     * An argument is out of range or inconsistent with the others (a zero
     * size, an unknown enum value or parameter name, a misaligned buffer, a
     * handle used with the wrong model, a call out of order).
     */
    RNN_STATUS_INVALID_ARGUMENT = 2,
    /**
     * An input array has the wrong number of elements, or a file's tensor
     * has the wrong shape.
     */
    RNN_STATUS_SHAPE_MISMATCH = 3,
    /**
     * An output buffer is shorter than the result; nothing was written.
     */
    RNN_STATUS_BUFFER_TOO_SMALL = 4,
    /**
     * A file could not be read or written, or is not a valid model file.
     */
    RNN_STATUS_IO = 5,
    /**
     * A NaN or infinity appeared (loss or gradients); nothing was updated.
     */
    RNN_STATUS_NUMERICAL = 6,
    /**
     * The library panicked (a bug); the message says where. The handles
     * involved should be freed, not used further.
     */
    RNN_STATUS_PANIC = 7,
    /**
     * A buffer could not be allocated: a size from the caller or from a file
     * is larger than the memory the process can get (or overflows). Nothing
     * was changed; the message names the buffer and its size. Since 0.2.
     */
    RNN_STATUS_OUT_OF_MEMORY = 8,
    /**
     * The trainer's all-reduce callback reported a failure (nonzero), or
     * the workers of a data-parallel run are out of step: the parameters
     * were not updated. Since 0.4.
     */
    RNN_STATUS_COLLECTIVE = 9,
} rnn_status;

/**
 * The cell a network is made of (values of `rnn_config.cell`).
 */
typedef enum rnn_cell_kind {
    /**
     * Elman RNN, `h' = act(W_ih x + b_ih + W_hh h + b_hh)`; act from
     * `rnn_config.activation`. G = 1.
     */
    RNN_CELL_KIND_ELMAN = 0,
    /**
     * LSTM, gates `i, f, g, o` (PyTorch's order). G = 4. Has a cell state.
     */
    RNN_CELL_KIND_LSTM = 1,
    /**
     * GRU, gates `r, z, n` (PyTorch's order); formulation from
     * `rnn_config.gru_variant`. G = 3.
     */
    RNN_CELL_KIND_GRU = 2,
} rnn_cell_kind;

/**
 * The Elman non-linearity (values of `rnn_config.activation`).
 */
typedef enum rnn_activation {
    /**
     * tanh (PyTorch's default).
     */
    RNN_ACTIVATION_TANH = 0,
    /**
     * max(x, 0).
     */
    RNN_ACTIVATION_RELU = 1,
} rnn_activation;

/**
 * The GRU formulation (values of `rnn_config.gru_variant`).
 */
typedef enum rnn_gru_variant {
    /**
     * `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`: PyTorch, cuDNN, ONNX
     * `linear_before_reset=1`. The default.
     */
    RNN_GRU_VARIANT_LINEAR_BEFORE_RESET = 0,
    /**
     * `n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`: Cho et al. 2014,
     * Keras `reset_after=False`.
     */
    RNN_GRU_VARIANT_RESET_BEFORE_LINEAR = 1,
} rnn_gru_variant;

/**
 * How a bidirectional layer combines its directions (values of
 * `rnn_config_ext.merge`).
 */
typedef enum rnn_merge {
    /**
     * Side by side, `[.., 2H]` (PyTorch's; the default).
     */
    RNN_MERGE_CONCAT = 0,
    /**
     * Added, `[.., H]`.
     */
    RNN_MERGE_SUM = 1,
} rnn_merge;

/**
 * The NTM's controller (values of `rnn_ntm_config.controller`).
 */
typedef enum rnn_ntm_controller {
    /**
     * An LSTM cell with a learned initial state.
     */
    RNN_NTM_CONTROLLER_LSTM = 0,
    /**
     * One feed-forward layer, `h = tanh(W u + b)`.
     */
    RNN_NTM_CONTROLLER_FEED_FORWARD = 1,
} rnn_ntm_controller;

/**
 * A recurrent network (opaque): its configuration and parameters.
 *
 * Made by `rnn_model_new`, `rnn_model_load` or `rnn_model_clone`; freed by
 * `rnn_model_free`. Calls taking a `const rnn_model *` (forward, save,
 * parameter reads) may run on one model from several threads at once;
 * calls taking an `rnn_model *` (parameter writes, optimizer steps, train
 * steps) need exclusive access.
 */
typedef struct rnn_model rnn_model;

/**
 * A Neural Turing Machine (opaque): its configuration and parameters.
 *
 * Made by `rnn_ntm_new` or `rnn_ntm_load`, freed by `rnn_ntm_free`. Calls
 * taking a `const rnn_ntm *` may run on one machine from several threads at
 * once; `rnn_ntm_param_set` needs exclusive access.
 */
typedef struct rnn_ntm rnn_ntm;

/**
 * An optimizer with its state (opaque). Made by `rnn_optimizer_new_sgd`,
 * `_adam` or `_rmsprop`; freed by `rnn_optimizer_free`. Its state is sized
 * at the first step for the model it steps: use one optimizer per model.
 * One optimizer must not be used by two threads at once.
 */
typedef struct rnn_optimizer rnn_optimizer;

/**
 * The state of a stream of `batch` sequences (opaque): hidden (and cell)
 * states `[L, batch, H]` plus work buffers.
 *
 * Made by `rnn_stream_new`, freed by `rnn_stream_free`. A stream works with
 * any model of the configuration it was made for. One stream must not be
 * used by two threads at once; distinct streams on one const model may run
 * on different threads.
 */
typedef struct rnn_stream rnn_stream;

/**
 * Training state for one model (opaque): the tape of the last training
 * forward and the gradients of the last backward.
 *
 * Made by `rnn_trainer_new` for one model and usable only with that model;
 * freed by `rnn_trainer_free`. Its buffers are reused across calls. One
 * trainer must not be used by two threads at once.
 */
typedef struct rnn_trainer rnn_trainer;

/**
 * The description of a network. Fill it with `rnn_config_init`, then change
 * fields. Integer fields holding enum values are validated by every call
 * that reads them.
 */
typedef struct rnn_config {
    /**
     * An `rnn_cell_kind`.
     */
    uint32_t cell;
    /**
     * An `rnn_activation`; read for `RNN_CELL_KIND_ELMAN` only (must still
     * be a valid value).
     */
    uint32_t activation;
    /**
     * An `rnn_gru_variant`; read for `RNN_CELL_KIND_GRU` only (must still be
     * a valid value).
     */
    uint32_t gru_variant;
    /**
     * 1: the cells have the biases `b_ih`, `b_hh`; 0: none.
     */
    uint32_t bias;
    /**
     * 1: each layer also runs a reverse direction, outputs concatenated
     * (D = 2); 0: D = 1.
     */
    uint32_t bidirectional;
    /**
     * Features per time step of the input, I (>= 1).
     */
    size_t input_size;
    /**
     * Hidden units per direction, H (>= 1).
     */
    size_t hidden_size;
    /**
     * Stacked layers, L (>= 1).
     */
    size_t num_layers;
    /**
     * Seed of the default initialisation uniform(-1/sqrt(H), 1/sqrt(H)).
     */
    uint64_t seed;
} rnn_config;

/**
 * The arguments of a network beyond `rnn_config` (library 0.3 on), for
 * `rnn_model_new_ext` and `rnn_model_config_ext`. Fill it with
 * `rnn_config_ext_init`, which sets `size`, then change fields: a later
 * library may append fields, and reads only those the caller's `size`
 * covers, so a program built against this header keeps working.
 */
typedef struct rnn_config_ext {
    /**
     * `sizeof(rnn_config_ext)` as the caller's header defines it (set by
     * `rnn_config_ext_init`).
     */
    size_t size;
    /**
     * An LSTM's projection size P (PyTorch's `proj_size`), `0 < P <
     * hidden_size`; 0: none. With P, `h0`/`h_n` are `[L*D, B, P]` and the
     * outputs `D*P` wide; `c0`/`c_n` stay `[L*D, B, H]`.
     */
    size_t proj_size;
    /**
     * 1: sequences (`x`, `y`, their gradients) are `[B, T, F]` (PyTorch's
     * `batch_first`); 0: `[T, B, F]`. States are `[L*D, B, ..]` either way.
     */
    uint32_t batch_first;
    /**
     * An `rnn_merge`: `RNN_MERGE_SUM` adds the two directions of a
     * bidirectional layer (outputs `H` wide, or `P`).
     */
    uint32_t merge;
    /**
     * Dropout between stacked layers (PyTorch's `dropout`), in `[0, 1)`:
     * applied by the trainer's forward and training steps
     * (`rnn_trainer_*`), never by `rnn_model_forward` or streams.
     */
    double dropout;
    /**
     * Recurrent (variational) dropout on `h_{t-1}`, one mask per sequence
     * (Keras's `recurrent_dropout`), in `[0, 1)`, training steps only; not
     * for the reset-before-linear GRU.
     */
    double recurrent_dropout;
} rnn_config_ext;

/**
 * The description of a Neural Turing Machine. Fill it with
 * `rnn_ntm_config_init` (the copy task of Graves et al. 2014), then change
 * fields.
 */
typedef struct rnn_ntm_config {
    /**
     * An `rnn_ntm_controller`.
     */
    uint32_t controller;
    /**
     * Input features per step, I (>= 1).
     */
    size_t input_size;
    /**
     * Output logits per step, O (>= 1).
     */
    size_t output_size;
    /**
     * Controller units, C (>= 1).
     */
    size_t controller_size;
    /**
     * Memory rows, N (>= 1).
     */
    size_t memory_rows;
    /**
     * Memory width, M (>= 1).
     */
    size_t memory_width;
    /**
     * Read heads, R (1 to 64).
     */
    size_t read_heads;
    /**
     * Write heads, W (0 to 64).
     */
    size_t write_heads;
    /**
     * The heads shift by -S..=S rows (S < N).
     */
    size_t shift_range;
    /**
     * 1: the initial memory is a learned parameter `init.memory`; 0: every
     * cell starts at `memory_init`.
     */
    uint32_t learned_memory;
    /**
     * The constant initial memory (finite; read when `learned_memory` is 0).
     */
    float memory_init;
    /**
     * Seed of the initialisation.
     */
    uint64_t seed;
} rnn_ntm_config;

/**
 * SGD hyper-parameters (`torch.optim.SGD`); `rnn_sgd_config_init` fills
 * PyTorch's defaults.
 */
typedef struct rnn_sgd_config {
    /**
     * Learning rate (>= 0).
     */
    double lr;
    /**
     * Momentum factor (default 0: plain SGD).
     */
    double momentum;
    /**
     * Dampening of the momentum (default 0).
     */
    double dampening;
    /**
     * L2 penalty added to the gradient (default 0).
     */
    double weight_decay;
    /**
     * 1: Nesterov momentum (needs momentum > 0 and dampening 0); 0: not.
     */
    uint32_t nesterov;
} rnn_sgd_config;

/**
 * Adam / AdamW hyper-parameters (`torch.optim.Adam`, `AdamW`);
 * `rnn_adam_config_init` fills Adam's defaults. For AdamW set `decoupled =
 * 1` and `weight_decay` (PyTorch's AdamW default is 1e-2).
 */
typedef struct rnn_adam_config {
    /**
     * Learning rate (default 1e-3).
     */
    double lr;
    /**
     * First-moment decay, in [0, 1) (default 0.9).
     */
    double beta1;
    /**
     * Second-moment decay, in [0, 1) (default 0.999).
     */
    double beta2;
    /**
     * Added to the denominator (default 1e-8).
     */
    double eps;
    /**
     * Weight decay (default 0): an L2 term in the gradient, or with
     * `decoupled` a decay `p *= 1 - lr*wd` (AdamW).
     */
    double weight_decay;
    /**
     * 1: decoupled weight decay (AdamW); 0: Adam.
     */
    uint32_t decoupled;
} rnn_adam_config;

/**
 * RMSProp hyper-parameters (`torch.optim.RMSprop`); `rnn_rmsprop_config_init`
 * fills PyTorch's defaults.
 */
typedef struct rnn_rmsprop_config {
    /**
     * Learning rate (default 1e-2).
     */
    double lr;
    /**
     * Decay of the squared-gradient average, in [0, 1] (default 0.99).
     */
    double alpha;
    /**
     * Added to the denominator (default 1e-8).
     */
    double eps;
    /**
     * L2 penalty added to the gradient (default 0).
     */
    double weight_decay;
    /**
     * Momentum factor (default 0).
     */
    double momentum;
    /**
     * 1: centered (normalise by the variance estimate); 0: not.
     */
    uint32_t centered;
} rnn_rmsprop_config;

/**
 * Sums `len` floats at `buf` across the caller's workers, in place, so that
 * every worker ends with the same sums (an `MPI_Allreduce` with `MPI_SUM`,
 * for example); returns 0 on success, anything else on failure.
 * `user_data` is the pointer given to `rnn_trainer_set_allreduce`.
 */
typedef int (*rnn_allreduce_fn)(float *buf, size_t len, void *user_data);

#ifdef __cplusplus
extern "C" {
#endif // __cplusplus

/**
 * The version of the loaded library as `major << 16 | minor << 8 | patch`.
 * Compare with the `RNN_VERSION_*` macros of the header a program was
 * compiled against: the major versions must agree.
 *
 * Thread-safe; never fails.
 */
uint32_t rnn_abi_version(void);

/**
 * Sets the number of threads every later library call uses, at most
 * `RNN_MAX_THREADS` (1024). The default comes from the environment variable
 * `RNN_NUM_THREADS` when it holds a count from 1 to `RNN_MAX_THREADS` (any
 * other value is ignored), else the number of cores (at most
 * `RNN_MAX_THREADS`). Calls already running finish on the previous
 * threads. Results are deterministic for a fixed thread count.
 *
 * Errors: `RNN_STATUS_INVALID_ARGUMENT` (n = 0, n > `RNN_MAX_THREADS`, or
 * the threads could not be started); the previous threads stay in use.
 * Thread-safe.
 */
enum rnn_status rnn_set_num_threads(size_t n);

/**
 * Writes the number of threads library calls use to `*n`.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (n). Thread-safe.
 *
 * # Safety
 * `n` is NULL or writable.
 */
enum rnn_status rnn_get_num_threads(size_t *n);

/**
 * Fills `*config` with a one-layer, unidirectional network of `cell` (an
 * `rnn_cell_kind`) with biases, tanh (Elman), linear-before-reset (GRU),
 * seed 0, and the given sizes.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config), `RNN_STATUS_INVALID_ARGUMENT`
 * (cell not an `rnn_cell_kind`; sizes are checked when the model is made).
 * Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to a writable `rnn_config`.
 */
enum rnn_status rnn_config_init(struct rnn_config *config,
                                uint32_t cell,
                                size_t input_size,
                                size_t hidden_size);

/**
 * Fills `*ext` with the defaults (no projection, `[T, B, F]` sequences,
 * concatenated directions, no dropout) and its `size`.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (ext). Thread-safe.
 *
 * # Safety
 * `ext` is NULL or points to a writable `rnn_config_ext`.
 */
enum rnn_status rnn_config_ext_init(struct rnn_config_ext *ext);

/**
 * A static, NUL-terminated description of `status`, e.g. `"buffer too
 * small"`; `"unknown status"` for a value that is not an `rnn_status`.
 *
 * Thread-safe; never returns NULL; the string is never freed.
 */
const char *rnn_status_string(uint32_t status);

/**
 * The message of the last failed call on the calling thread, naming the
 * function, the argument and what was wrong (e.g. `"rnn_model_forward: y:
 * needs 40 elements, got a buffer of 39"`); the empty string after a
 * successful call.
 *
 * The message is thread-local: each thread sees its own calls' outcome.
 * Never returns NULL. The string belongs to the library and stays valid
 * until the next library call on the same thread; copy it to keep it.
 */
const char *rnn_last_error_message(void);

/**
 * Creates a model from `*config` with PyTorch's default initialisation
 * (uniform(-1/sqrt(H), 1/sqrt(H)) from `config->seed`). On success `*out`
 * is a new model owned by the caller (free it with `rnn_model_free`); on
 * failure `*out` is NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config, out), `RNN_STATUS_INVALID_ARGUMENT`
 * (an enum field out of range, a flag not 0/1, a zero size, more than 1024
 * layers or 2^32 parameters), `RNN_STATUS_OUT_OF_MEMORY` (the parameters
 * cannot be allocated). Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to an `rnn_config`; `out` is NULL or writable.
 */
enum rnn_status rnn_model_new(const struct rnn_config *config, struct rnn_model **out);

/**
 * Creates a model from `*config` and the further arguments of `*ext` (NULL:
 * the defaults of `rnn_config_ext_init`), as `rnn_model_new`.
 *
 * Errors: as `rnn_model_new`, and `RNN_STATUS_INVALID_ARGUMENT` for
 * `ext->size` not written by `rnn_config_ext_init`, `merge` not an
 * `rnn_merge`, `batch_first` not 0/1, a `proj_size` on a GRU or Elman
 * network or not below `hidden_size`. Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to an `rnn_config`; `ext` is NULL or points to
 * an `rnn_config_ext` of `ext->size` bytes; `out` is NULL or writable.
 */
enum rnn_status rnn_model_new_ext(const struct rnn_config *config,
                                  const struct rnn_config_ext *ext,
                                  struct rnn_model **out);

/**
 * Loads a model from a safetensors file: metadata keys `cell` (`rnn_tanh`,
 * `rnn_relu`, `lstm`, `gru`, `gru_reset_before`), `num_layers`,
 * `bidirectional`, `bias`, `input_size`, `hidden_size` (and optional
 * `seed`, `proj_size`, `batch_first`, `merge`: see `rnn_config_ext`, which
 * `rnn_model_config_ext` fills); tensors under PyTorch's `state_dict` names
 * and shapes, float32.
 * A tensor named like a parameter (`weight_*`, `bias_*`) that the
 * configuration does not use is an error naming it (say bias tensors in a
 * file whose metadata says `bias = false`); other tensors are ignored. The
 * metadata is checked against the file's tensors before anything is
 * allocated for the model, so a load takes memory bounded by the file's
 * size, whatever its metadata claims. On success `*out` is a new model
 * owned by the caller; on failure `*out` is NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (path, out), `RNN_STATUS_IO` (missing or
 * unreadable file, not safetensors, truncated, bad or missing metadata, a
 * missing, misshapen or unused parameter tensor; the message names the file
 * and the problem), `RNN_STATUS_OUT_OF_MEMORY` (the file's parameters
 * cannot be held in memory). Thread-safe.
 *
 * # Safety
 * `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
 */
enum rnn_status rnn_model_load(const char *path, struct rnn_model **out);

/**
 * Saves the model to a safetensors file (configuration as metadata,
 * parameters under PyTorch's names), atomically: the parameters are
 * streamed to a temporary file unique to the call in the same folder, which
 * is fsynced and renamed over `path` (and the folder fsynced). A crash
 * never leaves half a file, and concurrent saves to one path (threads or
 * processes) and concurrent loads of it each see one complete file (the
 * last rename wins). The save takes no memory proportional to the model.
 * `rnn_model_load` reads it back identically.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, path), `RNN_STATUS_IO` (the file
 * could not be written; `path` is unchanged), `RNN_STATUS_OUT_OF_MEMORY`.
 * Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `path` is NULL or a NUL-terminated string.
 */
enum rnn_status rnn_model_save(const struct rnn_model *m, const char *path);

/**
 * Makes an independent copy of a model (same configuration and
 * parameters). On success `*out` is a new model owned by the caller; on
 * failure `*out` is NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_OUT_OF_MEMORY`
 * (no memory for the copy). Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `out` is NULL or writable.
 */
enum rnn_status rnn_model_clone(const struct rnn_model *m, struct rnn_model **out);

/**
 * Frees a model. NULL is accepted (nothing happens). The model must not be
 * in use by another thread, and must not be used afterwards.
 *
 * # Safety
 * `m` is NULL or a model from this library, not yet freed.
 */
void rnn_model_free(struct rnn_model *m);

/**
 * Writes the model's configuration to `*config`.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, config). Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `config` is NULL or writable.
 */
enum rnn_status rnn_model_config(const struct rnn_model *m, struct rnn_config *config);

/**
 * Writes the model's arguments beyond `rnn_config` to `*ext`, whose `size`
 * the caller set (with `rnn_config_ext_init`): the fields it covers.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, ext), `RNN_STATUS_INVALID_ARGUMENT`
 * (`ext->size` smaller than this library's `rnn_config_ext`). Thread-safe on
 * a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `ext` is NULL or points to a writable
 * `rnn_config_ext` of `ext->size` bytes.
 */
enum rnn_status rnn_model_config_ext(const struct rnn_model *m, struct rnn_config_ext *ext);

/**
 * Inference forward pass.
 *
 * - `x`: `[seq_len, batch, I]`, time-major, row-major (`x[(t*batch + b)*I + i]`;
 *   `[batch, seq_len, I]` for a batch-first model, see `rnn_config_ext`);
 *   read at that size.
 * - `h0`, `c0`: initial states `[L*D, batch, S]` and `[L*D, batch, H]` (index
 *   `layer*D + direction`, forward direction first; S = H, or an LSTM's
 *   projection size), or NULL for zeros; `c0` only for an LSTM (non-NULL for
 *   another cell: `RNN_STATUS_INVALID_ARGUMENT`).
 * - `y`: receives `[seq_len, batch, D*S]` (batch-first: `[batch, seq_len,
 *   D*S]`; summed directions: `S` wide), the last layer's hidden state at
 *   every step, directions concatenated (forward first); `y_cap` is its
 *   capacity in floats. Required.
 * - `h_n`, `c_n`: receive the final states `[L*D, batch, S]` and `[L*D,
 *   batch, H]`, or NULL when not wanted; `c_n` only for an LSTM.
 *
 * A capacity below the needed size gives `RNN_STATUS_BUFFER_TOO_SMALL`, and
 * every check is made before any output is written: a failed call writes
 * nothing. Output buffers must not overlap each other or the inputs.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, x, y), `RNN_STATUS_INVALID_ARGUMENT`
 * (seq_len or batch 0, sizes that overflow, c0/c_n for a cell without cell
 * state, misaligned buffers), `RNN_STATUS_BUFFER_TOO_SMALL`,
 * `RNN_STATUS_OUT_OF_MEMORY` (the outputs or work buffers of `seq_len x
 * batch` cannot be allocated).
 * Thread-safe: several threads may run forward on one const model at once.
 *
 * # Safety
 * `m` is NULL or a live model; each array is NULL or holds the number of
 * floats stated above (outputs: their `_cap`).
 */
enum rnn_status rnn_model_forward(const struct rnn_model *m,
                                  const float *x,
                                  size_t seq_len,
                                  size_t batch,
                                  const float *h0,
                                  const float *c0,
                                  float *y,
                                  size_t y_cap,
                                  float *h_n,
                                  size_t h_n_cap,
                                  float *c_n,
                                  size_t c_n_cap);

/**
 * As `rnn_model_forward`, for a batch of sequences of different lengths.
 *
 * `lengths`: `[batch]`, each in `1..=seq_len`, any order, or NULL (every
 * sequence has `seq_len` steps). PyTorch's `pack_padded_sequence(
 * enforce_sorted=False)` semantics without packing: `y` is zero past a
 * sequence's end, `h_n`/`c_n` are the states at its last step, and the
 * reverse direction starts at its last step. `x` past a sequence's end is
 * ignored.
 *
 * Errors: as `rnn_model_forward`, and `RNN_STATUS_INVALID_ARGUMENT` for a
 * length outside `1..=seq_len`. Thread-safe on a const model.
 *
 * # Safety
 * As `rnn_model_forward`; `lengths` is NULL or `batch` readable sizes.
 */
enum rnn_status rnn_model_forward_lengths(const struct rnn_model *m,
                                          const float *x,
                                          size_t seq_len,
                                          size_t batch,
                                          const size_t *lengths,
                                          const float *h0,
                                          const float *c0,
                                          float *y,
                                          size_t y_cap,
                                          float *h_n,
                                          size_t h_n_cap,
                                          float *c_n,
                                          size_t c_n_cap);

/**
 * Fills `*config` with the copy-task machine of Graves et al. 2014: LSTM
 * controller of 100 units, memory 128 x 20 (constant 1e-6), one read and
 * one write head, shifts -1..=1, 9 inputs (8 bits and a delimiter), 8
 * outputs, seed 0.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
 *
 * # Safety
 * `config` is NULL or writable.
 */
enum rnn_status rnn_ntm_config_init(struct rnn_ntm_config *config);

/**
 * Creates a machine from `*config` (initialisation of docs/ntm.md, from
 * `config->seed`). On success `*out` is a new machine owned by the caller
 * (free it with `rnn_ntm_free`); on failure `*out` is NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (a zero size, too many heads, a shift range
 * of N or more, a non-finite `memory_init`, a flag not 0/1, more than 2^32
 * parameters), `RNN_STATUS_OUT_OF_MEMORY` (the parameters cannot be
 * allocated). Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to an `rnn_ntm_config`; `out` is NULL or
 * writable.
 */
enum rnn_status rnn_ntm_new(const struct rnn_ntm_config *config, struct rnn_ntm **out);

/**
 * Loads a machine saved by `rnn_ntm_save` (or `rnn ntm`'s
 * `model.safetensors`). On success `*out` is a new machine owned by the
 * caller; on failure `*out` is NULL.
 *
 * The configuration in the metadata is checked against the file's tensors
 * before anything is allocated for the machine, so a load takes memory
 * bounded by the file's size, whatever its metadata claims. A tensor of the
 * NTM's parameter groups (`controller.*`, `heads.*`, `output.*`, `init.*`)
 * that the configuration does not use is an error naming it; other
 * tensors are ignored.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (path, out), `RNN_STATUS_IO` (missing,
 * unreadable, truncated or malformed file, not an NTM, bad metadata, a
 * missing, misshapen or unused parameter tensor; the message names the
 * file), `RNN_STATUS_OUT_OF_MEMORY` (the file's parameters cannot be held
 * in memory). Thread-safe.
 *
 * # Safety
 * `path` is NULL or a NUL-terminated string; `out` is NULL or writable.
 */
enum rnn_status rnn_ntm_load(const char *path, struct rnn_ntm **out);

/**
 * Saves the machine (configuration as metadata), atomically, as
 * `rnn_model_save`: a temporary file unique to the call, fsynced and
 * renamed; a crash never leaves half a file, and concurrent saves and loads
 * of one path each see one complete file.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, path), `RNN_STATUS_IO`,
 * `RNN_STATUS_OUT_OF_MEMORY`. Thread-safe on a const machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `path` is NULL or a NUL-terminated string.
 */
enum rnn_status rnn_ntm_save(const struct rnn_ntm *m, const char *path);

/**
 * Makes an independent copy of a machine (same configuration and
 * parameters), as `rnn_model_clone` does for models. On success `*out` is
 * a new machine owned by the caller; on failure `*out` is NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_OUT_OF_MEMORY`
 * (no memory for the copy). Thread-safe on a const machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `out` is NULL or writable.
 */
enum rnn_status rnn_ntm_clone(const struct rnn_ntm *m, struct rnn_ntm **out);

/**
 * Frees a machine. NULL is accepted (nothing happens).
 *
 * # Safety
 * `m` is NULL or a machine from this library, not yet freed nor in use.
 */
void rnn_ntm_free(struct rnn_ntm *m);

/**
 * Writes the machine's configuration to `*config` (`memory_init` is 0 for
 * a learned memory).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, config). Thread-safe on a const
 * machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `config` is NULL or writable.
 */
enum rnn_status rnn_ntm_get_config(const struct rnn_ntm *m, struct rnn_ntm_config *config);

/**
 * Runs the machine over `x` `[seq_len, batch, I]` (`x_len` floats) and
 * writes the logits `[seq_len, batch, O]` to `y` (capacity `y_cap`).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, x, y), `RNN_STATUS_INVALID_ARGUMENT`
 * (seq_len or batch 0, sizes that overflow), `RNN_STATUS_SHAPE_MISMATCH`
 * (x_len is not `seq_len * batch * I`), `RNN_STATUS_BUFFER_TOO_SMALL`
 * (y_cap), `RNN_STATUS_OUT_OF_MEMORY` (the work buffers of `seq_len x
 * batch`: memories, addressing weights, controller states); nothing is
 * written on error. Thread-safe on a const machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `x` is NULL or `x_len` readable floats;
 * `y` is NULL or `y_cap` writable floats, not overlapping `x`.
 */
enum rnn_status rnn_ntm_forward(const struct rnn_ntm *m,
                                const float *x,
                                size_t x_len,
                                size_t seq_len,
                                size_t batch,
                                float *y,
                                size_t y_cap);

/**
 * The gradients of `sum(y * dy)` for one batch: runs the machine over `x`
 * `[seq_len, batch, I]`, backpropagates `dy` `[seq_len, batch, O]` (the
 * gradient w.r.t. the logits, e.g. `(sigmoid(y) - target) / n` for a mean
 * binary cross-entropy), and writes every parameter's gradient to `grads`
 * as one flat buffer in parameter order (`rnn_ntm_param_name` order, each
 * tensor row-major; `grads_cap` >= the total parameter count, see
 * `rnn_ntm_param_total`), and, if `dx` is not NULL, the gradient w.r.t.
 * `x` `[seq_len, batch, I]` (capacity `dx_cap`). If `y` is not NULL the
 * logits are written there too (capacity `y_cap`).
 *
 * Errors: as `rnn_ntm_forward` (`RNN_STATUS_OUT_OF_MEMORY` also for the
 * tape of the whole sequence and the gradients), plus
 * `RNN_STATUS_NULL_POINTER` (dy, grads), `RNN_STATUS_SHAPE_MISMATCH`
 * (dy_len), `RNN_STATUS_BUFFER_TOO_SMALL` (grads_cap, dx_cap, y_cap);
 * nothing is written on error. Thread-safe on
 * a const machine.
 *
 * # Safety
 * Pointers are NULL or valid for their lengths; outputs do not overlap
 * inputs or each other.
 */
enum rnn_status rnn_ntm_gradients(const struct rnn_ntm *m,
                                  const float *x,
                                  size_t x_len,
                                  size_t seq_len,
                                  size_t batch,
                                  const float *dy,
                                  size_t dy_len,
                                  float *grads,
                                  size_t grads_cap,
                                  float *dx,
                                  size_t dx_cap,
                                  float *y,
                                  size_t y_cap);

/**
 * Writes the number of parameter tensors to `*count`.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, count). Thread-safe on a const
 * machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `count` is NULL or writable.
 */
enum rnn_status rnn_ntm_param_count(const struct rnn_ntm *m, size_t *count);

/**
 * Writes the total number of parameter values (all tensors) to `*total`:
 * the length of `rnn_ntm_gradients`' `grads`.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, total). Thread-safe on a const
 * machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `total` is NULL or writable.
 */
enum rnn_status rnn_ntm_param_total(const struct rnn_ntm *m, size_t *total);

/**
 * Writes the name of parameter `index` (buffer order) to `*name`: a
 * NUL-terminated string owned by the machine, valid until it is freed.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name), `RNN_STATUS_INVALID_ARGUMENT`
 * (index out of range). Thread-safe on a const machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `name` is NULL or writable.
 */
enum rnn_status rnn_ntm_param_name(const struct rnn_ntm *m, size_t index, const char **name);

/**
 * Copies parameter `name` (row-major, its element count = the product of
 * its docs/ntm.md shape) to `out` (capacity `out_cap`) and writes the count
 * to `*len` (if `len` is not NULL).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_BUFFER_TOO_SMALL`.
 * Thread-safe on a const machine.
 *
 * # Safety
 * `m` is NULL or a live machine; `name` is NULL or NUL-terminated; `out` is
 * NULL or `out_cap` writable floats; `len` is NULL or writable.
 */
enum rnn_status rnn_ntm_param_get(const struct rnn_ntm *m,
                                  const char *name,
                                  float *out,
                                  size_t out_cap,
                                  size_t *len);

/**
 * Sets parameter `name` from `values` (`values_len` floats, exactly its
 * element count).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name, values),
 * `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_SHAPE_MISMATCH`
 * (values_len); nothing changes on error. Needs exclusive access.
 *
 * # Safety
 * `m` is NULL or a live machine used by no other thread; `name` is NULL or
 * NUL-terminated; `values` is NULL or `values_len` readable floats.
 */
enum rnn_status rnn_ntm_param_set(struct rnn_ntm *m,
                                  const char *name,
                                  const float *values,
                                  size_t values_len);

/**
 * Fills `*config` with PyTorch's SGD defaults at learning rate `lr`
 * (no momentum, dampening, weight decay or Nesterov).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
 *
 * # Safety
 * `config` is NULL or writable.
 */
enum rnn_status rnn_sgd_config_init(struct rnn_sgd_config *config, double lr);

/**
 * Fills `*config` with PyTorch's Adam defaults at learning rate `lr`
 * (betas 0.9, 0.999, eps 1e-8, no weight decay, not decoupled).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
 *
 * # Safety
 * `config` is NULL or writable.
 */
enum rnn_status rnn_adam_config_init(struct rnn_adam_config *config, double lr);

/**
 * Fills `*config` with PyTorch's RMSprop defaults at learning rate `lr`
 * (alpha 0.99, eps 1e-8, no weight decay or momentum, not centered).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config). Thread-safe.
 *
 * # Safety
 * `config` is NULL or writable.
 */
enum rnn_status rnn_rmsprop_config_init(struct rnn_rmsprop_config *config, double lr);

/**
 * Creates an SGD optimizer. On success `*out` is a new optimizer owned by
 * the caller (free it with `rnn_optimizer_free`); on failure NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (a negative or non-finite value, a flag not
 * 0/1, Nesterov without momentum or with dampening). Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to an `rnn_sgd_config`; `out` NULL or writable.
 */
enum rnn_status rnn_optimizer_new_sgd(const struct rnn_sgd_config *config,
                                      struct rnn_optimizer **out);

/**
 * Creates an Adam (or, with `decoupled = 1`, AdamW) optimizer. On success
 * `*out` is a new optimizer owned by the caller; on failure NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (a value out of range, a flag not 0/1).
 * Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to an `rnn_adam_config`; `out` NULL or writable.
 */
enum rnn_status rnn_optimizer_new_adam(const struct rnn_adam_config *config,
                                       struct rnn_optimizer **out);

/**
 * Creates an RMSProp optimizer. On success `*out` is a new optimizer owned
 * by the caller; on failure NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (config, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (a value out of range, a flag not 0/1).
 * Thread-safe.
 *
 * # Safety
 * `config` is NULL or points to an `rnn_rmsprop_config`; `out` NULL or
 * writable.
 */
enum rnn_status rnn_optimizer_new_rmsprop(const struct rnn_rmsprop_config *config,
                                          struct rnn_optimizer **out);

/**
 * Updates `m`'s parameters from the gradients of `t`'s last backward (after
 * any clipping). Invalidates `t`'s tape (run forward again before
 * backward).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (opt, m, t), `RNN_STATUS_INVALID_ARGUMENT`
 * (no backward yet; a trainer of another model), `RNN_STATUS_SHAPE_MISMATCH`
 * (the optimizer's state was sized for a model with another parameter
 * count), `RNN_STATUS_NUMERICAL` (a non-finite gradient),
 * `RNN_STATUS_OUT_OF_MEMORY` (the optimizer's state, allocated at its first
 * step: one or two buffers the size of the parameters); nothing is changed
 * on error. Needs exclusive access to the optimizer and the model.
 *
 * # Safety
 * `opt`, `m` are NULL or live handles used by no other thread; `t` NULL or
 * a live trainer no thread is changing.
 */
enum rnn_status rnn_optimizer_step(struct rnn_optimizer *opt,
                                   struct rnn_model *m,
                                   const struct rnn_trainer *t);

/**
 * Writes the learning rate to `*lr`.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (opt, lr).
 *
 * # Safety
 * `opt` is NULL or a live optimizer no thread is changing; `lr` NULL or
 * writable.
 */
enum rnn_status rnn_optimizer_lr(const struct rnn_optimizer *opt, double *lr);

/**
 * Sets the learning rate (for schedules); the state is kept.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (opt), `RNN_STATUS_INVALID_ARGUMENT` (lr
 * negative or not finite). Needs exclusive access to the optimizer.
 *
 * # Safety
 * `opt` is NULL or a live optimizer used by no other thread.
 */
enum rnn_status rnn_optimizer_set_lr(struct rnn_optimizer *opt, double lr);

/**
 * Forgets the optimizer's state (moments, step count), as if new.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (opt). Needs exclusive access.
 *
 * # Safety
 * `opt` is NULL or a live optimizer used by no other thread.
 */
enum rnn_status rnn_optimizer_reset(struct rnn_optimizer *opt);

/**
 * Frees an optimizer. NULL is accepted.
 *
 * # Safety
 * `opt` is NULL or an optimizer from this library, not yet freed nor in use.
 */
void rnn_optimizer_free(struct rnn_optimizer *opt);

/**
 * Writes the number of parameter tensors to `*count` (2 or 4 per layer and
 * direction).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, count). Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `count` is NULL or writable.
 */
enum rnn_status rnn_model_param_count(const struct rnn_model *m, size_t *count);

/**
 * Writes the name of parameter `index` (`0 <= index < count`, buffer order)
 * to `*name`: a NUL-terminated string owned by the model, valid until the
 * model is freed.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name), `RNN_STATUS_INVALID_ARGUMENT`
 * (index out of range). Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `name` is NULL or writable.
 */
enum rnn_status rnn_model_param_name(const struct rnn_model *m, size_t index, const char **name);

/**
 * Writes the shape of parameter `name`: its number of dimensions to `*ndim`
 * (1 or 2) and the dimensions to `shape[0..ndim]`. `shape_cap` is the
 * capacity of `shape`; 2 always suffices. The element count is the product.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name, shape, ndim),
 * `RNN_STATUS_INVALID_ARGUMENT` (unknown name),
 * `RNN_STATUS_BUFFER_TOO_SMALL` (shape_cap < ndim; nothing written).
 * Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `name` NULL or NUL-terminated; `shape` NULL
 * or `shape_cap` writable sizes; `ndim` NULL or writable.
 */
enum rnn_status rnn_model_param_shape(const struct rnn_model *m,
                                      const char *name,
                                      size_t *shape,
                                      size_t shape_cap,
                                      size_t *ndim);

/**
 * Copies parameter `name` (row-major, `numel` floats) into `out`, whose
 * capacity is `out_cap` floats.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_BUFFER_TOO_SMALL`
 * (nothing written). Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `name` NULL or NUL-terminated; `out` NULL or
 * `out_cap` writable floats.
 */
enum rnn_status rnn_model_param_get(const struct rnn_model *m,
                                    const char *name,
                                    float *out,
                                    size_t out_cap);

/**
 * Sets parameter `name` from `values` (row-major), which must hold exactly
 * the parameter's element count (`len`). Invalidates the tapes of trainers
 * on this model (run forward again before backward).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, name, values),
 * `RNN_STATUS_INVALID_ARGUMENT` (unknown name), `RNN_STATUS_SHAPE_MISMATCH`
 * (len differs); nothing is changed on error. Needs exclusive access to the
 * model.
 *
 * # Safety
 * `m` is NULL or a live model used by no other thread; `name` NULL or
 * NUL-terminated; `values` NULL or `len` readable floats.
 */
enum rnn_status rnn_model_param_set(struct rnn_model *m,
                                    const char *name,
                                    const float *values,
                                    size_t len);

/**
 * Creates a zero state for streaming `batch` sequences through `m` (or any
 * model of the same configuration). On success `*out` is a new stream
 * owned by the caller (free it with `rnn_stream_free`); on failure NULL.
 *
 * The states (`[L, batch, H]`, twice for an LSTM) and the work buffer of a
 * step's output (`[batch, H]`) are allocated here, so a batch too large for
 * memory fails here, not at a later step.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_INVALID_ARGUMENT`
 * (batch 0; a bidirectional model, whose reverse direction needs the whole
 * sequence), `RNN_STATUS_OUT_OF_MEMORY` (the states of `batch` sequences
 * cannot be allocated, or their size overflows). Thread-safe on a const
 * model.
 *
 * # Safety
 * `m` is NULL or a live model; `out` is NULL or writable.
 */
enum rnn_status rnn_stream_new(const struct rnn_model *m, size_t batch, struct rnn_stream **out);

/**
 * Runs one time step: `x_t` `[batch, I]` in (read at that size), `y_t`
 * `[batch, H]` out (the last layer's new hidden state; `y_t_cap` is its
 * capacity), the state advanced. Equal to `rnn_model_forward` run one step
 * at a time.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (s, m, x_t, y_t),
 * `RNN_STATUS_INVALID_ARGUMENT` (a model of another configuration),
 * `RNN_STATUS_BUFFER_TOO_SMALL`, `RNN_STATUS_OUT_OF_MEMORY` (a work
 * buffer); on error the state is unchanged.
 * Thread-safe on a const model; the stream needs exclusive access.
 *
 * # Safety
 * `s` is NULL or a live stream used by no other thread; `m` NULL or a live
 * model; `x_t` NULL or `batch * I` readable floats; `y_t` NULL or
 * `y_t_cap` writable floats.
 */
enum rnn_status rnn_stream_step(struct rnn_stream *s,
                                const struct rnn_model *m,
                                const float *x_t,
                                float *y_t,
                                size_t y_t_cap);

/**
 * Resets the stream's states to zero.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (s). The stream needs exclusive access.
 *
 * # Safety
 * `s` is NULL or a live stream used by no other thread.
 */
enum rnn_status rnn_stream_reset(struct rnn_stream *s);

/**
 * Copies the stream's states out: `h` receives the hidden states
 * `[L, batch, H]` (capacity `h_cap`), `c` the cell states (LSTM only).
 * Either may be NULL when not wanted.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (s), `RNN_STATUS_INVALID_ARGUMENT` (c
 * for a cell without cell state), `RNN_STATUS_BUFFER_TOO_SMALL` (nothing
 * written). Thread-safe on a stream no thread is stepping.
 *
 * # Safety
 * `s` is NULL or a live stream; `h`, `c` NULL or their length of writable
 * floats.
 */
enum rnn_status rnn_stream_get_state(const struct rnn_stream *s,
                                     float *h,
                                     size_t h_cap,
                                     float *c,
                                     size_t c_cap);

/**
 * Sets the stream's states: `h` the hidden states `[L, batch, H]`, exactly
 * `h_cap` floats; `c` the cell states (LSTM only). Either may be NULL to
 * leave that state as it is.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (s), `RNN_STATUS_INVALID_ARGUMENT` (c
 * for a cell without cell state), `RNN_STATUS_SHAPE_MISMATCH` (a length
 * differs); nothing is changed on error. The stream needs exclusive access.
 *
 * # Safety
 * `s` is NULL or a live stream used by no other thread; `h`, `c` NULL or
 * their length of readable floats.
 */
enum rnn_status rnn_stream_set_state(struct rnn_stream *s,
                                     const float *h,
                                     size_t h_len,
                                     const float *c,
                                     size_t c_len);

/**
 * Frees a stream. NULL is accepted.
 *
 * # Safety
 * `s` is NULL or a stream from this library, not yet freed nor in use.
 */
void rnn_stream_free(struct rnn_stream *s);

#if defined(RNN_TEST_HOOKS)
/**
 * TESTING ONLY (feature `test-hooks`): panics inside the library, to check
 * the panic boundary. `where_ = 0`: on the calling thread; `1`: on a worker
 * thread of the library's pool. Returns `RNN_STATUS_PANIC` with a message
 * (`RNN_STATUS_INVALID_ARGUMENT` for another `where_`); the process does not
 * abort.
 */
enum rnn_status rnn_test_force_panic(uint32_t where_);
#endif

/**
 * Creates a trainer for `m`, with its gradient buffer (the size of the
 * model's parameters). On success `*out` is a new trainer owned by the
 * caller (free it with `rnn_trainer_free`); on failure NULL.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (m, out), `RNN_STATUS_OUT_OF_MEMORY`
 * (no memory for the gradients). Thread-safe on a const model.
 *
 * # Safety
 * `m` is NULL or a live model; `out` is NULL or writable.
 */
enum rnn_status rnn_trainer_new(const struct rnn_model *m, struct rnn_trainer **out);

/**
 * Frees a trainer. NULL is accepted.
 *
 * # Safety
 * `t` is NULL or a trainer from this library, not yet freed nor in use.
 */
void rnn_trainer_free(struct rnn_trainer *t);

/**
 * Training forward pass: as `rnn_model_forward_lengths` (same arguments,
 * shapes and errors; `lengths` may be NULL), and records in the trainer
 * what `rnn_trainer_backward` needs.
 *
 * Errors: as `rnn_model_forward_lengths` (`RNN_STATUS_OUT_OF_MEMORY` also
 * for the tape of `seq_len x batch`), and `RNN_STATUS_NULL_POINTER` (t),
 * `RNN_STATUS_INVALID_ARGUMENT` (a trainer made for another model).
 * Thread-safe on a const model; the trainer needs exclusive access.
 *
 * # Safety
 * As `rnn_model_forward_lengths`; `t` is NULL or a live trainer used by no
 * other thread.
 */
enum rnn_status rnn_trainer_forward(struct rnn_trainer *t,
                                    const struct rnn_model *m,
                                    const float *x,
                                    size_t seq_len,
                                    size_t batch,
                                    const size_t *lengths,
                                    const float *h0,
                                    const float *c0,
                                    float *y,
                                    size_t y_cap,
                                    float *h_n,
                                    size_t h_n_cap,
                                    float *c_n,
                                    size_t c_n_cap);

/**
 * Backpropagation through time from the last `rnn_trainer_forward`, whose
 * model parameters must be unchanged since.
 *
 * - `grad_y`: dL/dy `[seq_len, batch, D*H]` (sizes of the last forward);
 *   required, read at that size.
 * - `grad_h_n`, `grad_c_n`: dL/dh_n, dL/dc_n `[L*D, batch, H]`, or NULL for
 *   zero; `grad_c_n` only for an LSTM.
 *
 * Afterwards every parameter's gradient (`rnn_trainer_grad`, overwritten,
 * not accumulated) and dL/dx, dL/dh0, dL/dc0 (`rnn_trainer_input_grads`)
 * are readable.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (t, m, grad_y),
 * `RNN_STATUS_INVALID_ARGUMENT` (no forward yet, parameters changed since,
 * another model, grad_c_n for a cell without cell state),
 * `RNN_STATUS_OUT_OF_MEMORY` (the input gradients or work buffers).
 * Thread-safe on a const model; the trainer needs exclusive access.
 *
 * # Safety
 * `t` is NULL or a live trainer used by no other thread; `m` NULL or a live
 * model; each array NULL or its stated size of readable floats.
 */
enum rnn_status rnn_trainer_backward(struct rnn_trainer *t,
                                     const struct rnn_model *m,
                                     const float *grad_y,
                                     const float *grad_h_n,
                                     const float *grad_c_n);

/**
 * Copies the gradient of parameter `name` (same shape and layout as the
 * parameter) from the last backward into `out` (capacity `out_cap`).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (t, name, out),
 * `RNN_STATUS_INVALID_ARGUMENT` (unknown name, no backward yet),
 * `RNN_STATUS_BUFFER_TOO_SMALL`. Thread-safe on a trainer no thread is
 * changing.
 *
 * # Safety
 * `t` is NULL or a live trainer; `name` NULL or NUL-terminated; `out` NULL
 * or `out_cap` writable floats.
 */
enum rnn_status rnn_trainer_grad(const struct rnn_trainer *t,
                                 const char *name,
                                 float *out,
                                 size_t out_cap);

/**
 * Copies the input gradients of the last backward: `dx` `[seq_len, batch,
 * I]`, `dh0` and (LSTM) `dc0` `[L*D, batch, H]`, each into a buffer of the
 * given capacity, or NULL when not wanted.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (t), `RNN_STATUS_INVALID_ARGUMENT` (no
 * backward yet; dc0 for a cell without cell state),
 * `RNN_STATUS_BUFFER_TOO_SMALL` (nothing written). Thread-safe on a trainer
 * no thread is changing.
 *
 * # Safety
 * `t` is NULL or a live trainer; each buffer NULL or its capacity of
 * writable floats.
 */
enum rnn_status rnn_trainer_input_grads(const struct rnn_trainer *t,
                                        float *dx,
                                        size_t dx_cap,
                                        float *dh0,
                                        size_t dh0_cap,
                                        float *dc0,
                                        size_t dc0_cap);

/**
 * Scales the parameter gradients of the last backward so that their global
 * L2 norm is at most `max_norm` (`torch.nn.utils.clip_grad_norm_`), and
 * writes the norm before clipping to `*norm` (may be NULL).
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (t), `RNN_STATUS_INVALID_ARGUMENT`
 * (max_norm not finite and > 0, no backward yet). The trainer needs
 * exclusive access.
 *
 * # Safety
 * `t` is NULL or a live trainer used by no other thread; `norm` NULL or
 * writable.
 */
enum rnn_status rnn_trainer_clip_grad_norm(struct rnn_trainer *t, float max_norm, float *norm);

/**
 * Makes `rnn_trainer_step_mse` a data-parallel step: each worker (a
 * process or thread of the caller's, with its own model, trainer and
 * optimizer, all started from the same parameters) passes its slice of the
 * global batch, and between its backward pass and the clipping the step
 * calls `sum(buf, len, user_data)` once. `buf` holds this worker's
 * parameter gradients times its batch size, then its loss times its batch
 * size, then its batch size (`len` = parameters + 2); the callback must
 * replace it with the element-wise sum over all workers, the same on
 * every worker. The step then divides by the summed batch size, so every
 * worker clips and applies the gradient of the global batch's mean loss
 * (slices of unequal sizes are weighted by their sizes) and reports that
 * loss. `sum` NULL: back to a single worker.
 *
 * Errors: `RNN_STATUS_NULL_POINTER` (t). A nonzero return of the callback
 * makes the step fail with `RNN_STATUS_COLLECTIVE` (parameters not
 * updated). The trainer needs exclusive access; `user_data` is the
 * caller's (the library never reads it).
 *
 * # Safety
 * `t` is NULL or a live trainer used by no other thread; `sum`, when not
 * NULL, is safe to call with a buffer of `len` floats and `user_data`,
 * for as long as the trainer uses it.
 */
enum rnn_status rnn_trainer_set_allreduce(struct rnn_trainer *t,
                                          rnn_allreduce_fn sum,
                                          void *user_data);

/**
 * One training step on the mean squared error between `y` and `target`:
 * training forward (as `rnn_trainer_forward`, outputs kept inside), loss
 * `mean((y - target)^2)` over all `seq_len*batch*D*H` elements, backward,
 * a check that the loss and every gradient are finite, clipping of the
 * gradients' global norm to `max_grad_norm` (0: no clipping), and one
 * update of `m`'s parameters by `opt`. Writes the loss (before the update)
 * to `*loss` (may be NULL). The clipped gradients stay readable through
 * `rnn_trainer_grad`.
 *
 * `target`: `[seq_len, batch, D*H]`, read at that size. With `lengths`,
 * `y` is zero past each sequence's end, so `target` should be too.
 *
 * Errors: as `rnn_trainer_forward` (y/h_n/c_n excepted), and
 * `RNN_STATUS_NULL_POINTER` (opt, target), `RNN_STATUS_INVALID_ARGUMENT`
 * (max_grad_norm negative or not finite), `RNN_STATUS_NUMERICAL` (a
 * non-finite loss or gradient: the parameters are not updated),
 * `RNN_STATUS_OUT_OF_MEMORY` (the tape, the gradients, or the optimizer's
 * state, sized at its first step: the parameters are not updated).
 * Needs exclusive access to the model, the trainer and the optimizer.
 *
 * # Safety
 * `t`, `m`, `opt` are NULL or live handles used by no other thread; `x`,
 * `lengths`, `h0`, `c0`, `target` NULL or their stated sizes; `loss` NULL or
 * writable.
 */
enum rnn_status rnn_trainer_step_mse(struct rnn_trainer *t,
                                     struct rnn_model *m,
                                     struct rnn_optimizer *opt,
                                     const float *x,
                                     size_t seq_len,
                                     size_t batch,
                                     const size_t *lengths,
                                     const float *h0,
                                     const float *c0,
                                     const float *target,
                                     float max_grad_norm,
                                     double *loss);

#ifdef __cplusplus
}  // extern "C"
#endif  // __cplusplus

#endif  /* RNN_H */
