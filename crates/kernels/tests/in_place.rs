//! Without memory for the packed copy of `W_hh`, the time loops read it in
//! place: the same results (to rounding), for every cell, both directions,
//! thread counts that split the units, with and without lengths. A test
//! binary of its own: the switch that forces it is process-wide.

mod common;

use common::{Cell, Inputs, assert_close, data, run_cell};
use rnn_kernels::SeqShape;

#[test]
fn products_in_place_equal_packed_products() {
    let (t_len, hd, b) = (5, 100, 40);
    let lens: Vec<usize> = (0..b).map(|r| (t_len - r * t_len / b).max(1)).collect();
    let active: Vec<usize> = (0..t_len)
        .map(|t| lens.iter().filter(|&&l| l > t).count())
        .collect();
    for cell in Cell::ALL {
        let gh = cell.gates() * hd;
        let w_hh: Vec<f32> = data(gh * hd, 1).iter().map(|v| v * 0.3).collect();
        let b_hn = data(hd, 11);
        let x = Inputs {
            w_hh: &w_hh,
            b_hn: &b_hn,
            gates0: data(t_len * b * gh, 2),
            h0: data(b * hd, 3),
            c0: data(b * hd, 4),
            dy: data(t_len * b * hd, 7),
            dh_n: data(b * hd, 8),
            dc_n: data(b * hd, 9),
        };
        for reverse in [false, true] {
            for lengths in [None, Some(&active[..])] {
                for threads in [1, 2] {
                    let shape = SeqShape {
                        seq_len: t_len,
                        batch: b,
                        hidden: hd,
                        reverse,
                        active: lengths,
                    };
                    let packed = run_cell(cell, shape, &x, threads);
                    rnn_kernels::read_weights_in_place(true);
                    let in_place = run_cell(cell, shape, &x, threads);
                    rnn_kernels::read_weights_in_place(false);
                    let case = format!(
                        "{cell:?} reverse={reverse} lengths={} threads={threads}",
                        lengths.is_some()
                    );
                    assert_close(
                        &case,
                        1e-4,
                        &[
                            ("gates", &in_place.gates[..], &packed.gates[..]),
                            ("states", &in_place.states[..], &packed.states[..]),
                            ("cells", &in_place.cells[..], &packed.cells[..]),
                            ("dgates", &in_place.dgates[..], &packed.dgates[..]),
                            ("dh0", &in_place.dh0[..], &packed.dh0[..]),
                            ("dc0", &in_place.dc0[..], &packed.dc0[..]),
                        ],
                    );
                }
            }
        }
    }
}
