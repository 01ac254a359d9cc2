//! The NTM's C entry points give bit for bit what the Rust API gives
//! (forward, every gradient, dx), round-trip through files and parameter
//! access, and refuse bad input with the right status, writing nothing.

use std::ffi::{CStr, CString};
use std::ptr::{null, null_mut};

use rnn::*;
use rnn_models::ntm::{Controller, MemoryInit, Ntm, NtmConfig, NtmGradScratch, NtmTape};

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

/// A small machine's C configuration and the Rust one it stands for.
fn configs(controller: u32, learned: bool) -> (rnn_ntm_config, NtmConfig) {
    let mut c = std::mem::MaybeUninit::<rnn_ntm_config>::uninit();
    // SAFETY: a writable rnn_ntm_config.
    assert_eq!(
        unsafe { rnn_ntm_config_init(c.as_mut_ptr()) },
        rnn_status::Ok
    );
    // SAFETY: initialised above.
    let mut c = unsafe { c.assume_init() };
    (c.controller, c.input_size, c.output_size) = (controller, 4, 3);
    (c.controller_size, c.memory_rows, c.memory_width) = (7, 10, 5);
    (c.read_heads, c.write_heads, c.shift_range) = (2, 1, 1);
    c.learned_memory = u32::from(learned);
    c.seed = 5;
    let rust = NtmConfig {
        controller: if controller == 0 {
            Controller::Lstm
        } else {
            Controller::FeedForward
        },
        input_size: 4,
        output_size: 3,
        controller_size: 7,
        memory_rows: 10,
        memory_width: 5,
        read_heads: 2,
        write_heads: 1,
        shift_range: 1,
        memory: if learned {
            MemoryInit::Learned
        } else {
            MemoryInit::Constant(1e-6)
        },
        seed: 5,
    };
    (c, rust)
}

fn new_ntm(c: &rnn_ntm_config) -> *mut rnn_ntm {
    let mut m = null_mut();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { rnn_ntm_new(c, &mut m) }, rnn_status::Ok);
    m
}

#[test]
fn forward_and_gradients_equal_the_rust_api() {
    for (controller, learned) in [(0, false), (1, true)] {
        let (c, rc) = configs(controller, learned);
        let m = new_ntm(&c);
        let ntm = Ntm::new(rc).unwrap();
        let (t, b) = (6, 3);
        let x = data(t * b * 4, 1);
        let dy = data(t * b * 3, 2);
        let mut y = vec![f32::NAN; t * b * 3];
        // SAFETY: valid pointers and lengths.
        let st = unsafe { rnn_ntm_forward(m, x.as_ptr(), x.len(), t, b, y.as_mut_ptr(), y.len()) };
        assert_eq!(st, rnn_status::Ok);
        assert_eq!(y, ntm.forward(&x, t, b).unwrap());

        let mut total = 0;
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { rnn_ntm_param_total(m, &mut total) },
            rnn_status::Ok
        );
        assert_eq!(total, ntm.params().num_elements());
        let mut grads = vec![f32::NAN; total];
        let mut dx = vec![f32::NAN; x.len()];
        let mut y2 = vec![f32::NAN; y.len()];
        // SAFETY: valid pointers and lengths.
        let st = unsafe {
            rnn_ntm_gradients(
                m,
                x.as_ptr(),
                x.len(),
                t,
                b,
                dy.as_ptr(),
                dy.len(),
                grads.as_mut_ptr(),
                grads.len(),
                dx.as_mut_ptr(),
                dx.len(),
                y2.as_mut_ptr(),
                y2.len(),
            )
        };
        assert_eq!(st, rnn_status::Ok);
        let mut tape = NtmTape::new();
        ntm.forward_train(&x, t, b, &mut tape).unwrap();
        let mut g = ntm.zero_grads();
        let mut dx_ref = vec![0.0; x.len()];
        ntm.backward(
            &tape,
            &dy,
            &mut g,
            Some(&mut dx_ref),
            &mut NtmGradScratch::default(),
        )
        .unwrap();
        assert_eq!(grads, g.as_slice());
        assert_eq!(dx, dx_ref);
        assert_eq!(y2, y);
        // dx and y may be left out.
        // SAFETY: valid pointers and lengths; NULL optional outputs.
        let st = unsafe {
            rnn_ntm_gradients(
                m,
                x.as_ptr(),
                x.len(),
                t,
                b,
                dy.as_ptr(),
                dy.len(),
                grads.as_mut_ptr(),
                grads.len(),
                null_mut(),
                0,
                null_mut(),
                0,
            )
        };
        assert_eq!(st, rnn_status::Ok);
        // SAFETY: a machine from rnn_ntm_new.
        unsafe { rnn_ntm_free(m) };
    }
}

#[test]
fn files_config_and_parameters_round_trip() {
    let (c, _) = configs(0, true);
    let m = new_ntm(&c);
    let dir = std::env::temp_dir().join(format!("rnn-capi-ntm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = CString::new(dir.join("m.safetensors").to_str().unwrap()).unwrap();
    // SAFETY: valid pointers.
    assert_eq!(unsafe { rnn_ntm_save(m, path.as_ptr()) }, rnn_status::Ok);
    let mut l = null_mut();
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { rnn_ntm_load(path.as_ptr(), &mut l) },
        rnn_status::Ok
    );
    let mut back = std::mem::MaybeUninit::<rnn_ntm_config>::uninit();
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { rnn_ntm_get_config(l, back.as_mut_ptr()) },
        rnn_status::Ok
    );
    // SAFETY: written above.
    // memory_init is not part of a learned-memory machine: it reads back 0.
    assert_eq!(
        unsafe { back.assume_init() },
        rnn_ntm_config {
            memory_init: 0.0,
            ..c
        }
    );

    let mut count = 0;
    // SAFETY: valid pointers.
    assert_eq!(
        unsafe { rnn_ntm_param_count(l, &mut count) },
        rnn_status::Ok
    );
    for i in 0..count {
        let mut name = null();
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { rnn_ntm_param_name(l, i, &mut name) },
            rnn_status::Ok
        );
        let mut a = vec![0.0f32; 4096];
        let mut b = vec![1.0f32; 4096];
        let (mut na, mut nb) = (0, 0);
        // SAFETY: valid pointers and capacities.
        unsafe {
            assert_eq!(
                rnn_ntm_param_get(m, name, a.as_mut_ptr(), a.len(), &mut na),
                rnn_status::Ok
            );
            assert_eq!(
                rnn_ntm_param_get(l, name, b.as_mut_ptr(), b.len(), &mut nb),
                rnn_status::Ok
            );
        }
        assert_eq!(na, nb);
        assert_eq!(a[..na], b[..nb], "{:?}", unsafe { CStr::from_ptr(name) });
    }
    // Set, then get back.
    let name = c"init.read";
    let values = data(10, 3);
    // SAFETY: valid pointers and lengths.
    unsafe {
        assert_eq!(
            rnn_ntm_param_set(l, name.as_ptr(), values.as_ptr(), 10),
            rnn_status::Ok
        );
        let mut got = vec![0.0; 10];
        assert_eq!(
            rnn_ntm_param_get(l, name.as_ptr(), got.as_mut_ptr(), 10, null_mut()),
            rnn_status::Ok
        );
        assert_eq!(got, values);
        // Wrong length, unknown name: errors, nothing changes.
        assert_eq!(
            rnn_ntm_param_set(l, name.as_ptr(), values.as_ptr(), 9),
            rnn_status::ShapeMismatch
        );
        assert_eq!(
            rnn_ntm_param_set(l, c"nope".as_ptr(), values.as_ptr(), 10),
            rnn_status::InvalidArgument
        );
        let mut again = vec![0.0; 10];
        assert_eq!(
            rnn_ntm_param_get(l, name.as_ptr(), again.as_mut_ptr(), 10, null_mut()),
            rnn_status::Ok
        );
        assert_eq!(again, values);
        let mut small = [7.0f32; 9];
        assert_eq!(
            rnn_ntm_param_get(l, name.as_ptr(), small.as_mut_ptr(), 9, null_mut()),
            rnn_status::BufferTooSmall
        );
        assert_eq!(small, [7.0; 9]);
        rnn_ntm_free(m);
        rnn_ntm_free(l);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let (c, _) = configs(0, false);
    // SAFETY (whole test): pointers are valid or deliberately NULL.
    unsafe {
        let mut m = null_mut();
        assert_eq!(rnn_ntm_new(null(), &mut m), rnn_status::NullPointer);
        assert!(m.is_null());
        assert_eq!(rnn_ntm_new(&c, null_mut()), rnn_status::NullPointer);
        for bad in [
            rnn_ntm_config { controller: 7, ..c },
            rnn_ntm_config {
                learned_memory: 2,
                ..c
            },
            rnn_ntm_config {
                memory_rows: 0,
                ..c
            },
            rnn_ntm_config { read_heads: 0, ..c },
            rnn_ntm_config {
                shift_range: 10,
                ..c
            },
            rnn_ntm_config {
                memory_init: f32::NAN,
                ..c
            },
            rnn_ntm_config {
                controller_size: usize::MAX / 4,
                ..c
            },
        ] {
            let mut m = null_mut();
            assert_eq!(
                rnn_ntm_new(&bad, &mut m),
                rnn_status::InvalidArgument,
                "{bad:?}"
            );
            assert!(m.is_null());
        }
        let m = new_ntm(&c);
        let (t, b) = (3, 2);
        let x = data(t * b * 4, 1);
        let mut y = vec![5.0f32; t * b * 3];
        let fwd = |x: *const f32, xl, t, b, y: *mut f32, yc| rnn_ntm_forward(m, x, xl, t, b, y, yc);
        assert_eq!(
            fwd(null(), 0, t, b, y.as_mut_ptr(), y.len()),
            rnn_status::NullPointer
        );
        assert_eq!(
            fwd(x.as_ptr(), x.len(), t, b, null_mut(), 0),
            rnn_status::NullPointer
        );
        assert_eq!(
            fwd(x.as_ptr(), x.len() - 1, t, b, y.as_mut_ptr(), y.len()),
            rnn_status::ShapeMismatch
        );
        assert_eq!(
            fwd(x.as_ptr(), x.len(), t, b, y.as_mut_ptr(), y.len() - 1),
            rnn_status::BufferTooSmall
        );
        assert_eq!(
            fwd(x.as_ptr(), 0, 0, b, y.as_mut_ptr(), y.len()),
            rnn_status::InvalidArgument
        );
        assert!(y.iter().all(|&v| v == 5.0), "a failed call wrote y");
        assert_eq!(
            rnn_ntm_forward(null(), x.as_ptr(), x.len(), t, b, y.as_mut_ptr(), y.len()),
            rnn_status::NullPointer
        );
        // Gradients: a short grads buffer, a wrong dy.
        let dy = data(t * b * 3, 2);
        let mut grads = vec![5.0f32; 8];
        let st = rnn_ntm_gradients(
            m,
            x.as_ptr(),
            x.len(),
            t,
            b,
            dy.as_ptr(),
            dy.len(),
            grads.as_mut_ptr(),
            grads.len(),
            null_mut(),
            0,
            null_mut(),
            0,
        );
        assert_eq!(st, rnn_status::BufferTooSmall);
        assert!(grads.iter().all(|&v| v == 5.0));
        let mut total = 0;
        assert_eq!(rnn_ntm_param_total(m, &mut total), rnn_status::Ok);
        let mut grads = vec![5.0f32; total];
        let st = rnn_ntm_gradients(
            m,
            x.as_ptr(),
            x.len(),
            t,
            b,
            dy.as_ptr(),
            dy.len() - 1,
            grads.as_mut_ptr(),
            grads.len(),
            null_mut(),
            0,
            null_mut(),
            0,
        );
        assert_eq!(st, rnn_status::ShapeMismatch);
        assert!(grads.iter().all(|&v| v == 5.0));
        // Files: missing, not a safetensors file, a recurrent network.
        let mut l = null_mut();
        assert_eq!(
            rnn_ntm_load(c"/nonexistent/ntm.safetensors".as_ptr(), &mut l),
            rnn_status::Io
        );
        assert!(l.is_null());
        assert_eq!(rnn_ntm_load(null(), &mut l), rnn_status::NullPointer);
        let fixture = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/parity/gru_l1_b1_t1_i3_h5_bias.safetensors"
        );
        let fixture = CString::new(fixture).unwrap();
        assert_eq!(rnn_ntm_load(fixture.as_ptr(), &mut l), rnn_status::Io);
        assert!(
            CStr::from_ptr(rnn_last_error_message())
                .to_str()
                .unwrap()
                .contains("not an NTM")
        );
        let mut name = null();
        assert_eq!(
            rnn_ntm_param_name(m, 1000, &mut name),
            rnn_status::InvalidArgument
        );
        assert!(name.is_null());
        rnn_ntm_free(m);
        rnn_ntm_free(null_mut());
    }
}

/// `rnn_ntm_clone` copies a machine: the same parameters and outputs, and
/// a change to the copy leaves the original alone.
#[test]
fn a_clone_is_an_independent_copy() {
    let (c, _) = configs(0, false);
    let m = new_ntm(&c);
    let mut copy = null_mut();
    // SAFETY: a live machine, a writable out-pointer.
    assert_eq!(unsafe { rnn_ntm_clone(m, &mut copy) }, rnn_status::Ok);
    let (t, b) = (4, 2);
    let x = data(t * b * 4, 3);
    let forward = |h: *const rnn_ntm| {
        let mut y = vec![f32::NAN; t * b * 3];
        // SAFETY: valid pointers and lengths.
        let st = unsafe { rnn_ntm_forward(h, x.as_ptr(), x.len(), t, b, y.as_mut_ptr(), y.len()) };
        assert_eq!(st, rnn_status::Ok);
        y
    };
    assert_eq!(forward(m), forward(copy));
    let mut name = null();
    // SAFETY: a live machine, a writable out-pointer.
    assert_eq!(
        unsafe { rnn_ntm_param_name(copy, 0, &mut name) },
        rnn_status::Ok
    );
    let (mut buf, mut len) = (vec![0.0f32; 1 << 16], 0);
    // SAFETY: a live machine, its own parameter name, a buffer of that
    // capacity and a writable length.
    let st = unsafe { rnn_ntm_param_get(copy, name, buf.as_mut_ptr(), buf.len(), &mut len) };
    assert_eq!(st, rnn_status::Ok);
    let zeros = vec![0.0f32; len];
    // SAFETY: `len` values under the copy's own name.
    let st = unsafe { rnn_ntm_param_set(copy, name, zeros.as_ptr(), zeros.len()) };
    assert_eq!(st, rnn_status::Ok, "{len}");
    assert_ne!(forward(m), forward(copy));
    // SAFETY: NULL handle, writable out: refused.
    assert_eq!(
        unsafe { rnn_ntm_clone(null(), &mut copy) },
        rnn_status::NullPointer
    );
    assert!(copy.is_null());
    // SAFETY: live machines, freed once (the NULL copy is accepted).
    unsafe {
        rnn_ntm_free(m);
        rnn_ntm_free(copy);
    }
}
