//! The C entry points, called directly from Rust, give bit for bit what the
//! Rust API gives: forward (with and without lengths), streaming, training
//! forward/backward with every gradient, clipping and the train step; and
//! parameter access agrees with the Rust parameter set.

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

use rnn::*;
use rnn_models::optim::{Adam, AdamConfig, Optimizer, clip_grad_norm};
use rnn_models::{
    CellKind, Gradients, GruVariant, Merge, NetConfig, Nonlinearity, OutputGrads, Recurrent,
};
use rnn_models::{SeqInput, Tape};

const KINDS: [CellKind; 5] = [
    CellKind::Elman(Nonlinearity::Tanh),
    CellKind::Elman(Nonlinearity::Relu),
    CellKind::Lstm,
    CellKind::Gru(GruVariant::LinearBeforeReset),
    CellKind::Gru(GruVariant::ResetBeforeLinear),
];

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn c_config(c: &NetConfig) -> rnn_config {
    let (cell, activation, gru_variant) = match c.cell {
        CellKind::Elman(Nonlinearity::Relu) => (rnn_cell_kind::Elman, rnn_activation::Relu, 0),
        CellKind::Elman(_) => (rnn_cell_kind::Elman, rnn_activation::Tanh, 0),
        CellKind::Lstm => (rnn_cell_kind::Lstm, rnn_activation::Tanh, 0),
        CellKind::Gru(GruVariant::LinearBeforeReset) => {
            (rnn_cell_kind::Gru, rnn_activation::Tanh, 0)
        }
        CellKind::Gru(GruVariant::ResetBeforeLinear) => {
            (rnn_cell_kind::Gru, rnn_activation::Tanh, 1)
        }
    };
    let mut cfg = std::mem::MaybeUninit::<rnn_config>::uninit();
    // SAFETY: a writable rnn_config.
    let st = unsafe { rnn_config_init(cfg.as_mut_ptr(), cell as u32, c.input_size, c.hidden_size) };
    assert_eq!(st, rnn_status::Ok);
    // SAFETY: initialised by rnn_config_init.
    let mut cfg = unsafe { cfg.assume_init() };
    cfg.activation = activation as u32;
    cfg.gru_variant = gru_variant;
    cfg.num_layers = c.num_layers;
    cfg.bias = c.bias.into();
    cfg.bidirectional = c.bidirectional.into();
    cfg.seed = c.seed;
    cfg
}

/// A C model and the Rust twin with the same parameters.
struct Pair {
    c: *mut rnn_model,
    rust: Recurrent,
}

/// The `rnn_config_ext` of `c`.
fn c_ext(c: &NetConfig) -> rnn_config_ext {
    let mut ext = std::mem::MaybeUninit::<rnn_config_ext>::uninit();
    // SAFETY: a writable rnn_config_ext.
    assert_eq!(
        unsafe { rnn_config_ext_init(ext.as_mut_ptr()) },
        rnn_status::Ok
    );
    // SAFETY: initialised by rnn_config_ext_init.
    let mut ext = unsafe { ext.assume_init() };
    ext.proj_size = c.proj_size;
    ext.batch_first = c.batch_first.into();
    ext.merge = match c.merge {
        Merge::Concat => rnn_merge::Concat,
        Merge::Sum => rnn_merge::Sum,
    } as u32;
    ext.dropout = c.dropout.into();
    ext.recurrent_dropout = c.recurrent_dropout.into();
    ext
}

impl Pair {
    /// Through `rnn_model_new`, or `rnn_model_new_ext` where `cfg` needs it.
    fn new(cfg: NetConfig) -> Self {
        let mut c = null_mut();
        let plain = NetConfig {
            proj_size: 0,
            batch_first: false,
            merge: Merge::Concat,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            ..cfg.clone()
        };
        // SAFETY: valid configs and out-pointer.
        let st = if plain == cfg {
            unsafe { rnn_model_new(&c_config(&cfg), &mut c) }
        } else {
            unsafe { rnn_model_new_ext(&c_config(&cfg), &c_ext(&cfg), &mut c) }
        };
        assert_eq!(st, rnn_status::Ok, "{}", last_error());
        Self {
            c,
            rust: Recurrent::new(cfg).unwrap(),
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // SAFETY: a live model, freed once.
        unsafe { rnn_model_free(self.c) };
    }
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated thread-local string.
    unsafe { CStr::from_ptr(rnn_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

fn configs() -> Vec<NetConfig> {
    let mut out = Vec::new();
    for (k, kind) in KINDS.into_iter().enumerate() {
        for (layers, bidir) in [(1, false), (2, true), (2, false)] {
            let mut c = NetConfig::new(kind, 5, 4);
            c.num_layers = layers;
            c.bidirectional = bidir;
            c.bias = layers == 1 || k % 2 == 0;
            c.seed = 11 + k as u64;
            out.push(c);
        }
    }
    out
}

#[test]
fn models_from_config_equal_rust_models() {
    for cfg in configs() {
        let p = Pair::new(cfg.clone());
        let mut count = 0;
        // SAFETY: live model, writable count.
        assert_eq!(
            unsafe { rnn_model_param_count(p.c, &mut count) },
            rnn_status::Ok
        );
        assert_eq!(count, p.rust.params().len());
        for (i, (name, shape, values)) in p.rust.params().iter().enumerate() {
            let mut cname = null();
            // SAFETY: live model, writable out-pointer.
            assert_eq!(
                unsafe { rnn_model_param_name(p.c, i, &mut cname) },
                rnn_status::Ok
            );
            // SAFETY: a NUL-terminated name owned by the live model.
            assert_eq!(unsafe { CStr::from_ptr(cname) }.to_str().unwrap(), name);
            let (mut dims, mut ndim) = ([0usize; 2], 0);
            // SAFETY: live model, name, 2 writable sizes.
            let st = unsafe { rnn_model_param_shape(p.c, cname, dims.as_mut_ptr(), 2, &mut ndim) };
            assert_eq!(st, rnn_status::Ok);
            assert_eq!(&dims[..ndim], shape);
            let mut got = vec![f32::NAN; values.len()];
            // SAFETY: live model, buffer of the stated length.
            let st = unsafe { rnn_model_param_get(p.c, cname, got.as_mut_ptr(), got.len()) };
            assert_eq!(st, rnn_status::Ok);
            assert_eq!(got, values, "{name}");
        }
        let mut back = std::mem::MaybeUninit::<rnn_config>::uninit();
        // SAFETY: live model, writable config.
        assert_eq!(
            unsafe { rnn_model_config(p.c, back.as_mut_ptr()) },
            rnn_status::Ok
        );
        // SAFETY: written by rnn_model_config.
        assert_eq!(unsafe { back.assume_init() }, c_config(&cfg));
    }
}

/// Runs the C forward (lengths entry point when `lengths` is given).
fn c_forward(
    p: &Pair,
    x: &[f32],
    t: usize,
    b: usize,
    lengths: Option<&[usize]>,
    h0: &[f32],
    c0: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = p.rust.config();
    let mut y = vec![f32::NAN; t * b * c.output_size()];
    let mut h_n = vec![f32::NAN; h0.len()];
    let mut c_n = vec![f32::NAN; c0.map_or(0, <[f32]>::len)];
    let c0p = c0.map_or(null(), <[f32]>::as_ptr);
    let c_np = if c0.is_some() {
        c_n.as_mut_ptr()
    } else {
        null_mut()
    };
    // SAFETY: every buffer holds the size the call reads or its stated capacity.
    let st = unsafe {
        match lengths {
            None => rnn_model_forward(
                p.c,
                x.as_ptr(),
                t,
                b,
                h0.as_ptr(),
                c0p,
                y.as_mut_ptr(),
                y.len(),
                h_n.as_mut_ptr(),
                h_n.len(),
                c_np,
                c_n.len(),
            ),
            Some(l) => rnn_model_forward_lengths(
                p.c,
                x.as_ptr(),
                t,
                b,
                l.as_ptr(),
                h0.as_ptr(),
                c0p,
                y.as_mut_ptr(),
                y.len(),
                h_n.as_mut_ptr(),
                h_n.len(),
                c_np,
                c_n.len(),
            ),
        }
    };
    assert_eq!(st, rnn_status::Ok, "{}", last_error());
    (y, h_n, c_n)
}

/// The C forward of `p` equals Rust's bit for bit on `T x B` sequences in
/// the model's layout, with and without `lengths`.
fn assert_forward_is_rust(p: &Pair, (t, b): (usize, usize), lengths: &[usize]) {
    let cfg = p.rust.config();
    let lstm = cfg.cell.has_cell_state();
    let ld = cfg.num_layers * cfg.directions();
    let x = data(t * b * cfg.input_size, 1);
    let h0 = data(ld * b * cfg.state_size(), 2);
    let c0 = data(ld * b * cfg.hidden_size, 3);
    for with_lengths in [false, true] {
        let mut input = SeqInput::new(&x, t, b).h0(&h0);
        if lstm {
            input = input.c0(&c0);
        }
        if with_lengths {
            input = input.lengths(lengths);
        }
        let want = p.rust.forward(input).unwrap();
        let (y, h_n, c_n) = c_forward(
            p,
            &x,
            t,
            b,
            with_lengths.then_some(lengths),
            &h0,
            lstm.then_some(&c0[..]),
        );
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&y), bits(&want.y), "{cfg:?} y");
        assert_eq!(bits(&h_n), bits(&want.h_n), "{cfg:?} h_n");
        assert_eq!(bits(&c_n), bits(&want.c_n), "{cfg:?} c_n");
    }
}

#[test]
fn forward_is_bit_identical_to_rust() {
    for cfg in configs() {
        assert_forward_is_rust(&Pair::new(cfg), (6, 3), &[4, 6, 1]);
    }
}

#[test]
fn streaming_is_bit_identical_to_rust() {
    let b = 2;
    for cfg in configs().into_iter().filter(|c| !c.bidirectional) {
        let p = Pair::new(cfg.clone());
        let mut rust_state = p.rust.stream_state(b).unwrap();
        let mut s = null_mut();
        // SAFETY: live model, writable out-pointer.
        assert_eq!(unsafe { rnn_stream_new(p.c, b, &mut s) }, rnn_status::Ok);
        let h = cfg.hidden_size;
        for step in 0..4 {
            let x = data(b * cfg.input_size, 20 + step);
            let mut want = vec![0.0; b * h];
            p.rust.step(&x, &mut rust_state, &mut want).unwrap();
            let mut got = vec![f32::NAN; b * h];
            // SAFETY: live stream and model; buffers of the stated sizes.
            let st = unsafe { rnn_stream_step(s, p.c, x.as_ptr(), got.as_mut_ptr(), got.len()) };
            assert_eq!(st, rnn_status::Ok, "{}", last_error());
            assert_eq!(got, want);
        }
        let mut hs = vec![0.0; rust_state.h().len()];
        // SAFETY: live stream, buffer of the stated size.
        let st = unsafe { rnn_stream_get_state(s, hs.as_mut_ptr(), hs.len(), null_mut(), 0) };
        assert_eq!(st, rnn_status::Ok);
        assert_eq!(hs, rust_state.h());
        // SAFETY: a live stream, freed once.
        unsafe { rnn_stream_free(s) };
    }
}

fn grads_by_name(tr: *const rnn_trainer, rust: &Gradients) {
    for (name, _, want) in rust.params.iter() {
        let cname = CString::new(name).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        // SAFETY: live trainer, name, buffer of the stated size.
        let st = unsafe { rnn_trainer_grad(tr, cname.as_ptr(), got.as_mut_ptr(), got.len()) };
        assert_eq!(st, rnn_status::Ok, "{}", last_error());
        assert_eq!(got, want, "grad {name}");
    }
}

#[test]
fn training_is_bit_identical_to_rust() {
    let (t, b) = (5, 2);
    for cfg in configs() {
        let mut p = Pair::new(cfg.clone());
        let lstm = cfg.cell.has_cell_state();
        let state = cfg.num_layers * cfg.directions() * b * cfg.hidden_size;
        let x = data(t * b * cfg.input_size, 4);
        let h0 = data(state, 5);
        let c0 = data(state, 6);
        let y_len = t * b * cfg.directions() * cfg.hidden_size;
        let gy = data(y_len, 7);
        let gh = data(state, 8);
        let gc = data(state, 9);
        let lengths = [5usize, 3];

        // Rust reference.
        let mut input = SeqInput::new(&x, t, b).h0(&h0).lengths(&lengths);
        if lstm {
            input = input.c0(&c0);
        }
        let mut tape = Tape::new();
        let want_out = p.rust.forward_train(input, &mut tape).unwrap();
        let mut og = OutputGrads::new(&gy).h_n(&gh);
        if lstm {
            og = og.c_n(&gc);
        }
        let mut want = Gradients::for_net(&p.rust);
        p.rust.backward(&mut tape, og, &mut want).unwrap();

        // C.
        let mut tr = null_mut();
        // SAFETY: live model, writable out-pointer.
        assert_eq!(unsafe { rnn_trainer_new(p.c, &mut tr) }, rnn_status::Ok);
        let mut y = vec![f32::NAN; y_len];
        let c0p = if lstm { c0.as_ptr() } else { null() };
        // SAFETY: live handles; buffers of the sizes the call reads / states.
        let st = unsafe {
            rnn_trainer_forward(
                tr,
                p.c,
                x.as_ptr(),
                t,
                b,
                lengths.as_ptr(),
                h0.as_ptr(),
                c0p,
                y.as_mut_ptr(),
                y.len(),
                null_mut(),
                0,
                null_mut(),
                0,
            )
        };
        assert_eq!(st, rnn_status::Ok, "{}", last_error());
        assert_eq!(y, want_out.y);
        let gcp = if lstm { gc.as_ptr() } else { null() };
        // SAFETY: live handles; gradients of the sizes the call reads.
        let st = unsafe { rnn_trainer_backward(tr, p.c, gy.as_ptr(), gh.as_ptr(), gcp) };
        assert_eq!(st, rnn_status::Ok, "{}", last_error());
        grads_by_name(tr, &want);
        let mut dx = vec![f32::NAN; want.x.len()];
        let mut dh0 = vec![f32::NAN; want.h0.len()];
        let mut dc0 = vec![f32::NAN; want.c0.len()];
        let dc0p = if lstm { dc0.as_mut_ptr() } else { null_mut() };
        // SAFETY: live trainer; buffers of the stated capacities.
        let st = unsafe {
            rnn_trainer_input_grads(
                tr,
                dx.as_mut_ptr(),
                dx.len(),
                dh0.as_mut_ptr(),
                dh0.len(),
                dc0p,
                dc0.len(),
            )
        };
        assert_eq!(st, rnn_status::Ok, "{}", last_error());
        assert_eq!(
            (dx, dh0, dc0),
            (want.x.clone(), want.h0.clone(), want.c0.clone())
        );

        // Clipping, as clip_grad_norm on the Rust gradients.
        let mut norm = 0.0f32;
        // SAFETY: live trainer, writable norm.
        let st = unsafe { rnn_trainer_clip_grad_norm(tr, 0.5, &mut norm) };
        assert_eq!(st, rnn_status::Ok);
        let want_norm = clip_grad_norm(want.params.as_mut_slice(), 0.5);
        assert_eq!(norm, want_norm);
        grads_by_name(tr, &want);

        // An optimizer step applies exactly Adam to the clipped gradients.
        let mut cfg_adam = std::mem::MaybeUninit::uninit();
        // SAFETY: writable config.
        assert_eq!(
            unsafe { rnn_adam_config_init(cfg_adam.as_mut_ptr(), 0.01) },
            rnn_status::Ok
        );
        let mut opt = null_mut();
        // SAFETY: config initialised above; writable out-pointer.
        let st = unsafe { rnn_optimizer_new_adam(cfg_adam.as_ptr(), &mut opt) };
        assert_eq!(st, rnn_status::Ok);
        // SAFETY: live handles.
        assert_eq!(unsafe { rnn_optimizer_step(opt, p.c, tr) }, rnn_status::Ok);
        let mut adam = Adam::new(AdamConfig::new(0.01)).unwrap();
        adam.step(p.rust.params_mut(), want.params.as_slice())
            .unwrap();
        let w = p.rust.params().get("weight_hh_l0").unwrap().to_vec();
        let mut got = vec![f32::NAN; w.len()];
        // SAFETY: live model, buffer of the stated size.
        let st = unsafe {
            rnn_model_param_get(p.c, c"weight_hh_l0".as_ptr(), got.as_mut_ptr(), got.len())
        };
        assert_eq!(st, rnn_status::Ok);
        assert_eq!(got, w);
        // The tape is stale now: backward refuses.
        // SAFETY: live handles; gradient of the size the call reads.
        let st = unsafe { rnn_trainer_backward(tr, p.c, gy.as_ptr(), null(), null()) };
        assert_eq!(st, rnn_status::InvalidArgument);
        assert!(last_error().contains("changed"), "{}", last_error());
        // SAFETY: live handles, freed once.
        unsafe {
            rnn_optimizer_free(opt);
            rnn_trainer_free(tr);
        }
    }
}

#[test]
fn train_step_is_bit_identical_to_rust() {
    let (t, b) = (7, 3);
    let mut cfg = NetConfig::new(CellKind::Lstm, 3, 6);
    cfg.num_layers = 2;
    let mut p = Pair::new(cfg.clone());
    let x = data(t * b * 3, 30);
    let target = data(t * b * 6, 31);
    let mut tr = null_mut();
    let mut opt = null_mut();
    let mut sgd = std::mem::MaybeUninit::<rnn_sgd_config>::uninit();
    // SAFETY: writable config / out-pointers, live model.
    unsafe {
        assert_eq!(rnn_trainer_new(p.c, &mut tr), rnn_status::Ok);
        assert_eq!(rnn_sgd_config_init(sgd.as_mut_ptr(), 0.1), rnn_status::Ok);
        let mut sgd = sgd.assume_init();
        sgd.momentum = 0.9;
        assert_eq!(rnn_optimizer_new_sgd(&sgd, &mut opt), rnn_status::Ok);
    }
    let mut rust_opt = rnn_models::optim::Sgd::new(rnn_models::optim::SgdConfig {
        momentum: 0.9,
        ..rnn_models::optim::SgdConfig::new(0.1)
    })
    .unwrap();
    let mut tape = Tape::new();
    let mut grads = Gradients::for_net(&p.rust);
    let mut losses = Vec::new();
    for _ in 0..5 {
        let out = p
            .rust
            .forward_train(SeqInput::new(&x, t, b), &mut tape)
            .unwrap();
        let mut dy = vec![0.0; out.y.len()];
        let want = rnn_models::loss::mse(&out.y, &target, &mut dy).unwrap();
        p.rust
            .backward(&mut tape, OutputGrads::new(&dy), &mut grads)
            .unwrap();
        clip_grad_norm(grads.params.as_mut_slice(), 1.0);
        rust_opt
            .step(p.rust.params_mut(), grads.params.as_slice())
            .unwrap();

        let mut loss = f64::NAN;
        // SAFETY: live handles; inputs of the sizes the call reads.
        let st = unsafe {
            rnn_trainer_step_mse(
                tr,
                p.c,
                opt,
                x.as_ptr(),
                t,
                b,
                null(),
                null(),
                null(),
                target.as_ptr(),
                1.0,
                &mut loss,
            )
        };
        assert_eq!(st, rnn_status::Ok, "{}", last_error());
        assert_eq!(loss, want);
        losses.push(loss);
    }
    assert!(losses[4] < losses[0], "{losses:?}");
    grads_by_name(tr, &grads);
    for (name, _, want) in p.rust.params().iter() {
        let cname = CString::new(name).unwrap();
        let mut got = vec![f32::NAN; want.len()];
        // SAFETY: live model, buffer of the stated size.
        let st = unsafe { rnn_model_param_get(p.c, cname.as_ptr(), got.as_mut_ptr(), got.len()) };
        assert_eq!(st, rnn_status::Ok);
        assert_eq!(got, want, "{name}");
    }
    // SAFETY: live handles, freed once.
    unsafe {
        rnn_optimizer_free(opt);
        rnn_trainer_free(tr);
    }
}

#[test]
fn errors_name_the_function_and_argument() {
    let mut out = null_mut();
    // SAFETY: NULL path is checked; `out` writable.
    let st = unsafe { rnn_model_load(null(), &mut out) };
    assert_eq!(st, rnn_status::NullPointer);
    assert!(out.is_null());
    let msg = last_error();
    assert!(
        msg.contains("rnn_model_load") && msg.contains("path"),
        "{msg}"
    );
    // A successful call clears the message.
    let mut n = 0;
    // SAFETY: writable out-pointer.
    assert_eq!(unsafe { rnn_get_num_threads(&mut n) }, rnn_status::Ok);
    assert!(n >= 1);
    assert_eq!(last_error(), "");
    for v in 0..=rnn_status::Collective as u32 {
        assert_eq!(rnn_status::from_u32(v).map(|s| s as u32), Some(v));
        // SAFETY: static NUL-terminated strings.
        let s = unsafe { CStr::from_ptr(rnn_status_string(v)) };
        assert_ne!(s.to_str().unwrap(), "unknown status");
    }
    assert_eq!(
        rnn_status::OutOfMemory as u32,
        8,
        "values are never reordered"
    );
    assert_eq!(
        rnn_status::Collective as u32,
        9,
        "values are never reordered"
    );
    // SAFETY: as above.
    let s = unsafe { CStr::from_ptr(rnn_status_string(10)) };
    assert_eq!(s.to_str().unwrap(), "unknown status");
    assert_eq!(rnn_status::from_u32(10), None);
}

/// Networks that need `rnn_config_ext`: an LSTM projection, batch-first
/// sequences, summed directions.
fn ext_configs() -> Vec<NetConfig> {
    let lstm = NetConfig::new(CellKind::Lstm, 5, 6);
    vec![
        NetConfig {
            proj_size: 3,
            num_layers: 2,
            ..lstm.clone()
        },
        NetConfig {
            proj_size: 2,
            bidirectional: true,
            batch_first: true,
            merge: Merge::Sum,
            num_layers: 2,
            seed: 3,
            ..lstm
        },
        NetConfig {
            bidirectional: true,
            batch_first: true,
            num_layers: 2,
            seed: 4,
            ..NetConfig::new(CellKind::Gru(GruVariant::LinearBeforeReset), 5, 4)
        },
        NetConfig {
            bidirectional: true,
            merge: Merge::Sum,
            seed: 5,
            ..NetConfig::new(CellKind::Elman(Nonlinearity::Tanh), 5, 4)
        },
        // Inference never drops.
        NetConfig {
            num_layers: 3,
            dropout: 0.25,
            recurrent_dropout: 0.1,
            seed: 6,
            ..NetConfig::new(CellKind::Lstm, 5, 4)
        },
    ]
}

/// `rnn_model_new_ext` makes the Rust network of the same configuration
/// (parameters, `rnn_model_config_ext`), and its forward passes are bit for
/// bit Rust's, with and without lengths, in the model's layout.
#[test]
fn ext_models_equal_rust_models() {
    let (t, b) = (5, 3);
    for cfg in ext_configs() {
        let p = Pair::new(cfg.clone());
        assert_eq!(p.rust.config(), &cfg);
        let mut back = std::mem::MaybeUninit::<rnn_config_ext>::uninit();
        // SAFETY: a writable rnn_config_ext, its size set by the init.
        unsafe {
            assert_eq!(rnn_config_ext_init(back.as_mut_ptr()), rnn_status::Ok);
            assert_eq!(rnn_model_config_ext(p.c, back.as_mut_ptr()), rnn_status::Ok);
        }
        // SAFETY: written above.
        assert_eq!(unsafe { back.assume_init() }, c_ext(&cfg), "{cfg:?}");
        let mut count = 0;
        // SAFETY: live model, writable count.
        assert_eq!(
            unsafe { rnn_model_param_count(p.c, &mut count) },
            rnn_status::Ok
        );
        assert_eq!(count, p.rust.params().len());
        assert_forward_is_rust(&p, (t, b), &[4, 5, 2]);
    }
}

/// A bad extension is an invalid argument naming the field; a newer
/// header's larger struct is read when its unknown tail is zero.
#[test]
fn bad_extensions_are_refused() {
    let cfg = c_config(&NetConfig::new(CellKind::Lstm, 3, 4));
    let new_ext = |ext: &rnn_config_ext| {
        let mut out = null_mut();
        // SAFETY: valid config, extension of its stated size, out-pointer.
        let st = unsafe { rnn_model_new_ext(&cfg, ext, &mut out) };
        if !out.is_null() {
            // SAFETY: a live model, freed once.
            unsafe { rnn_model_free(out) };
        }
        (st, last_error())
    };
    let ok = c_ext(&NetConfig::new(CellKind::Lstm, 3, 4));
    let cases: [(rnn_config_ext, &str); 7] = [
        (rnn_config_ext { size: 8, ..ok }, "size"),
        (
            rnn_config_ext {
                recurrent_dropout: -0.5,
                ..ok
            },
            "recurrent_dropout",
        ),
        (rnn_config_ext { dropout: 1.5, ..ok }, "dropout"),
        (rnn_config_ext { merge: 2, ..ok }, "merge"),
        (
            rnn_config_ext {
                batch_first: 7,
                ..ok
            },
            "batch_first",
        ),
        (rnn_config_ext { proj_size: 4, ..ok }, "proj_size"),
        (
            rnn_config_ext {
                size: 1usize << 62,
                ..ok
            },
            "size",
        ),
    ];
    for (ext, field) in cases {
        let (st, msg) = new_ext(&ext);
        assert_eq!(st, rnn_status::InvalidArgument, "{ext:?}");
        assert!(msg.contains(field), "{ext:?}: {msg}");
    }
    // A GRU has no projection.
    let gru = c_config(&NetConfig::new(
        CellKind::Gru(GruVariant::LinearBeforeReset),
        3,
        4,
    ));
    let mut out = null_mut();
    // SAFETY: valid config, extension, out-pointer.
    let st = unsafe { rnn_model_new_ext(&gru, &rnn_config_ext { proj_size: 2, ..ok }, &mut out) };
    assert_eq!(st, rnn_status::InvalidArgument);
    assert!(out.is_null() && last_error().contains("proj_size"));
    // NULL: the defaults.
    // SAFETY: valid config, NULL extension, out-pointer.
    assert_eq!(
        unsafe { rnn_model_new_ext(&cfg, null(), &mut out) },
        rnn_status::Ok
    );
    // SAFETY: a live model, freed once.
    unsafe { rnn_model_free(out) };
    // A newer header's struct: 8 more bytes, zero (defaults) or not.
    #[repr(C)]
    struct Newer {
        ext: rnn_config_ext,
        more: u64,
    }
    for (more, want) in [(0, rnn_status::Ok), (1, rnn_status::InvalidArgument)] {
        let newer = Newer {
            ext: rnn_config_ext {
                size: std::mem::size_of::<Newer>(),
                ..ok
            },
            more,
        };
        let mut out = null_mut();
        // SAFETY: `size` readable bytes behind the pointer.
        let st = unsafe { rnn_model_new_ext(&cfg, &newer.ext, &mut out) };
        assert_eq!(st, want, "{}", last_error());
        if !out.is_null() {
            // SAFETY: a live model, freed once.
            unsafe { rnn_model_free(out) };
        }
    }
}
