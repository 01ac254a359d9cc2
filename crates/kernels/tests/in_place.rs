//! Without memory for the packed copy of their weights, the time loops read
//! them in place: the same results (to rounding), for every cell (with a
//! recurrent mask, and an LSTM with a projection), both directions, thread
//! counts that split the units, with and without lengths. A test binary of
//! its own: the switch that forces it is process-wide.

mod common;

use common::{Cell, Inputs, assert_close, run_cell, sorted_lengths};
use rnn_kernels::SeqShape;

#[test]
fn products_in_place_equal_packed_products() {
    let (t_len, hd, b) = (5, 100, 40);
    let (_, active) = sorted_lengths(t_len, b);
    for cell in Cell::ALL {
        let plain = Inputs::new(cell, t_len, b, hd);
        let mut variants = vec![plain.clone()];
        if cell.takes_mask() {
            variants.push(plain.clone().masked());
        }
        if let Cell::Lstm = cell {
            variants.push(plain.projected(hd / 2).masked());
        }
        for (x, reverse) in variants.iter().flat_map(|x| [(x, false), (x, true)]) {
            for lengths in [None, Some(&active[..])] {
                for threads in [1, 2] {
                    let shape = SeqShape {
                        seq_len: t_len,
                        batch: b,
                        hidden: hd,
                        reverse,
                        active: lengths,
                    };
                    let packed = run_cell(cell, shape, x, threads);
                    rnn_kernels::read_weights_in_place(true);
                    let in_place = run_cell(cell, shape, x, threads);
                    rnn_kernels::read_weights_in_place(false);
                    let case = format!(
                        "{cell:?} projected={} masked={} reverse={reverse} lengths={} \
                         threads={threads}",
                        !x.w_hr.is_empty(),
                        !x.mask.is_empty(),
                        lengths.is_some()
                    );
                    assert_close(
                        &case,
                        1e-4,
                        &[
                            ("gates", &in_place.gates[..], &packed.gates[..]),
                            ("states", &in_place.states[..], &packed.states[..]),
                            ("masked", &in_place.masked[..], &packed.masked[..]),
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
