//! Without memory for the packed copy of `W_hh`, the time loops read it in
//! place: the same results (to rounding), for every cell, both directions,
//! thread counts that split the units, with and without lengths. A test
//! binary of its own: the switch that forces it is process-wide.

mod common;

use common::{Cell, Inputs, assert_close, run_cell, sorted_lengths};
use rnn_kernels::SeqShape;

#[test]
fn products_in_place_equal_packed_products() {
    let (t_len, hd, b) = (5, 100, 40);
    let (_, active) = sorted_lengths(t_len, b);
    for cell in Cell::ALL {
        let x = Inputs::new(cell, t_len, b, hd);
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
