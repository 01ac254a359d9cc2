//! Interchange with PyTorch: a `state_dict()` saved by PyTorch with
//! `safetensors.torch.save_file` (plus librnn's metadata keys; see
//! `tests/fixtures/gen_save_file.py`) loads with `Recurrent::load` and gives
//! PyTorch's outputs (float32 reference, so within 1e-5 + 1e-4 * max|ref|).

use std::path::Path;

use recurrent::{Recurrent, SeqInput, TensorFile};

#[test]
fn state_dicts_saved_by_pytorch_load_and_match() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/save_file");
    let mut checked = 0;
    for cell in ["lstm", "gru", "rnn_relu"] {
        let net = Recurrent::load(dir.join(format!("{cell}.safetensors"))).unwrap();
        let io = TensorFile::read(&dir.join(format!("{cell}.io.safetensors"))).unwrap();
        let (xs, x) = io.f32("x").unwrap();
        let (_, y_ref) = io.f32("y").unwrap();
        let out = net.forward(SeqInput::new(x, xs[0], xs[1])).unwrap();
        let max_ref = y_ref.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let err = out
            .y
            .iter()
            .zip(y_ref)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(err <= 1e-5 + 1e-4 * max_ref, "{cell}: max abs error {err}");
        checked += 1;
    }
    assert_eq!(checked, 3);
}
