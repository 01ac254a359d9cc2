use recurrent::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (t, b, i, h) = (100, 32, 128, 256);
    let net = Recurrent::new(NetConfig::new(CellKind::Lstm, i, h)).unwrap();
    let x = vec![0.1f32; t * b * i];
    let n: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(10);
    let st = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(net.forward(SeqInput::new(&x, t, b)).unwrap());
    }
    println!("forward {:?}/iter", st.elapsed() / n as u32);
    let mut tape = Tape::new();
    let st = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            net.forward_train(SeqInput::new(&x, t, b), &mut tape)
                .unwrap(),
        );
    }
    println!("forward_train reuse {:?}/iter", st.elapsed() / n as u32);
}
