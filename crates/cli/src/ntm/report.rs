//! What `rnn ntm` prints and writes: descriptions of the task and the
//! machine, the generalisation table, metrics and the weightings plot.

use super::*;

/// The longest training size (length, or items for recall).
pub(super) fn longest(task: &Task) -> usize {
    match *task {
        Task::Copy { max_len, .. } | Task::RepeatCopy { max_len, .. } => max_len,
        Task::AssociativeRecall { max_items, .. } | Task::PrioritySort { max_items, .. } => {
            max_items
        }
    }
}

/// `(shortest, longest)` training size.
pub(super) fn training_range(task: &Task) -> (usize, usize) {
    match *task {
        Task::Copy {
            min_len, max_len, ..
        }
        | Task::RepeatCopy {
            min_len, max_len, ..
        } => (min_len, max_len),
        Task::AssociativeRecall {
            min_items,
            max_items,
            ..
        }
        | Task::PrioritySort {
            min_items,
            max_items,
            ..
        } => (min_items, max_items),
    }
}

/// What a size counts: `length` or `items`.
pub(super) fn size_word(task: &Task) -> &'static str {
    match task {
        Task::AssociativeRecall { .. } | Task::PrioritySort { .. } => "items",
        _ => "length",
    }
}

/// A size in words: `length 20` or `6 items`.
pub(super) fn size_label(task: &Task, size: usize) -> String {
    match task {
        Task::AssociativeRecall { .. } | Task::PrioritySort { .. } => format!("{size} items"),
        _ => format!("length {size}"),
    }
}

/// Steps of the longest sequence of the given size (`usize::MAX` when
/// that overflows).
pub(super) fn max_steps(task: &Task, size: usize) -> usize {
    match *task {
        Task::Copy { .. } => size.saturating_mul(2).saturating_add(1),
        Task::RepeatCopy { max_repeats, .. } => max_repeats
            .saturating_add(1)
            .saturating_mul(size)
            .saturating_add(3),
        Task::AssociativeRecall { item_len, .. } => size
            .saturating_add(2)
            .saturating_mul(item_len.saturating_add(1)),
        Task::PrioritySort { .. } => size.saturating_mul(2).saturating_add(1),
    }
}

/// The sizes of the generalisation table.
pub(super) fn table_sizes(task: &Task) -> &'static [usize] {
    match task {
        Task::Copy { .. } => &[10, 20, 30, 40, 60, 80, 100, 120],
        Task::RepeatCopy { .. } => &[5, 10, 15, 20],
        Task::AssociativeRecall { .. } => &[2, 4, 6, 8, 10, 12],
        Task::PrioritySort { .. } => &[10, 15, 20, 25, 30, 40],
    }
}

/// One held-out set of the generalisation table: the task it is drawn
/// from and its size; for repeat copy's extra sets, the fixed repeat count.
#[derive(Clone, Copy, Debug)]
pub(super) struct TableSet {
    pub(super) task: Task,
    pub(super) size: usize,
    pub(super) repeats: Option<usize>,
}

/// The sets of the generalisation table: every size of [`table_sizes`] as
/// trained; for repeat copy also 1.5 and 2 times the most repeats trained
/// (length 10, and 2 times at length 20), the count on the training scale.
pub(super) fn table_sets(task: &Task) -> Vec<TableSet> {
    let mut sets: Vec<TableSet> = table_sizes(task)
        .iter()
        .map(|&size| TableSet {
            task: *task,
            size,
            repeats: None,
        })
        .collect();
    if let Task::RepeatCopy { max_repeats, .. } = *task {
        let more = [
            (10, max_repeats.saturating_mul(3) / 2),
            (10, max_repeats.saturating_mul(2)),
            (20, max_repeats.saturating_mul(2)),
        ];
        for (size, n) in more {
            let mut t = *task;
            if let Task::RepeatCopy {
                min_repeats,
                max_repeats,
                ..
            } = &mut t
            {
                (*min_repeats, *max_repeats) = (n, n);
            }
            sets.push(TableSet {
                task: t,
                size,
                repeats: Some(n),
            });
        }
    }
    sets
}

pub(super) fn describe_task(task: &Task) -> String {
    match *task {
        Task::Copy {
            bits,
            min_len,
            max_len,
        } => format!("copy: {bits}-bit vectors, lengths {min_len}..={max_len}"),
        Task::RepeatCopy {
            bits,
            min_len,
            max_len,
            min_repeats,
            max_repeats,
            ..
        } => format!(
            "repeat-copy: {bits}-bit vectors, lengths {min_len}..={max_len}, {min_repeats}..={max_repeats} repeats"
        ),
        Task::AssociativeRecall {
            bits,
            item_len,
            min_items,
            max_items,
        } => format!(
            "recall: {bits}-bit vectors, items of {item_len} vectors, {min_items}..={max_items} items"
        ),
        Task::PrioritySort {
            bits,
            min_items,
            max_items,
            dropped,
        } => format!(
            "priority-sort: {bits}-bit vectors with priorities, {min_items}..={max_items} of them, all but the {dropped} lowest output, highest first"
        ),
    }
}

pub(super) fn task_json(task: &Task) -> serde_json::Value {
    let mut v = match *task {
        Task::Copy {
            bits,
            min_len,
            max_len,
        } => json!({ "bits": bits, "min_len": min_len, "max_len": max_len }),
        Task::RepeatCopy {
            bits,
            min_len,
            max_len,
            min_repeats,
            max_repeats,
            count_scale,
        } => json!({
            "bits": bits, "min_len": min_len, "max_len": max_len,
            "min_repeats": min_repeats, "max_repeats": max_repeats, "count_scale": count_scale,
        }),
        Task::AssociativeRecall {
            bits,
            item_len,
            min_items,
            max_items,
        } => json!({
            "bits": bits, "item_len": item_len, "min_items": min_items, "max_items": max_items,
        }),
        Task::PrioritySort {
            bits,
            min_items,
            max_items,
            dropped,
        } => json!({
            "bits": bits, "min_items": min_items, "max_items": max_items, "dropped": dropped,
        }),
    };
    v["name"] = json!(task.name());
    v
}

pub(super) fn config_json(c: &NtmConfig) -> serde_json::Value {
    let (memory, init) = match c.memory {
        MemoryInit::Constant(v) => ("constant", Some(v)),
        MemoryInit::Learned => ("learned", None),
    };
    json!({
        "controller": c.controller.name(),
        "input_size": c.input_size,
        "output_size": c.output_size,
        "controller_size": c.controller_size,
        "memory_rows": c.memory_rows,
        "memory_width": c.memory_width,
        "read_heads": c.read_heads,
        "write_heads": c.write_heads,
        "shift_range": c.shift_range,
        "memory": memory,
        "memory_init": init,
        "seed": c.seed,
        "parameters": c.num_parameters(),
    })
}

pub(super) fn describe_machine(c: &NtmConfig) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    format!(
        "{} controller ({} units), memory {} x {} ({}), {} read head{}, {} write head{}, shifts -{s}..={s}: {} parameters",
        match c.controller {
            Controller::Lstm => "LSTM",
            Controller::FeedForward => "feed-forward",
        },
        c.controller_size,
        c.memory_rows,
        c.memory_width,
        memory_label(c.memory),
        c.read_heads,
        plural(c.read_heads),
        c.write_heads,
        plural(c.write_heads),
        group_digits(c.num_parameters()),
        s = c.shift_range,
    )
}

/// `62860` as `62,860`.
pub(super) fn group_digits(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// One row of the generalisation table.
#[derive(Clone, Copy, Debug)]
pub(super) struct SetScore {
    pub(super) size: usize,
    /// The fixed repeat count of repeat copy's extra sets.
    pub(super) repeats: Option<usize>,
    pub(super) sequences: usize,
    pub(super) loss: f64,
    pub(super) errors_per_sequence: f64,
    pub(super) bits_per_sequence: f64,
}

impl SetScore {
    pub(super) fn rate(&self) -> f64 {
        if self.bits_per_sequence > 0.0 {
            self.errors_per_sequence / self.bits_per_sequence
        } else {
            0.0
        }
    }
}

/// Loss, bit errors and scored bits per sequence on `sequences` held-out
/// sequences of one size drawn from `seed`.
pub(super) fn score_set(
    ntm: &Ntm,
    task: &Task,
    size: usize,
    sequences: usize,
    seed: u64,
) -> Result<SetScore> {
    let s = evaluate(ntm, task, size, sequences, seed)?;
    Ok(SetScore {
        size,
        repeats: None,
        sequences,
        loss: s.loss(),
        errors_per_sequence: s.errors_per_sequence(),
        bits_per_sequence: s.bits_per_sequence(),
    })
}

/// Held-out sequences of a table set: [`SHORT_CAP`] or [`LONG_CAP`] by its
/// longest sequence, at most `eval_sequences`.
pub(super) fn set_sequences(set: &TableSet, eval_sequences: usize) -> usize {
    let cap = if max_steps(&set.task, set.size) <= LONG_STEPS {
        SHORT_CAP
    } else {
        LONG_CAP
    };
    eval_sequences.min(cap)
}

/// The generalisation table's rows: every set of [`table_sets`].
pub(super) fn generalisation(
    ntm: &Ntm,
    task: &Task,
    eval_sequences: usize,
) -> Result<Vec<SetScore>> {
    table_sets(task)
        .iter()
        .map(|set| {
            let seed =
                EVAL_SEED ^ ((set.size as u64) << 32) ^ set.repeats.map_or(0, |n| (n as u64) << 48);
            let mut row = score_set(
                ntm,
                &set.task,
                set.size,
                set_sequences(set, eval_sequences),
                seed,
            )
            .with_context(|| format!("evaluating {}", size_label(task, set.size)))?;
            row.repeats = set.repeats;
            Ok(row)
        })
        .collect()
}

pub(super) fn print_table(task: &Task, rows: &[SetScore]) {
    let (lo, hi) = training_range(task);
    let word = size_word(task);
    println!(
        "generalisation (held-out; trained on {}{}):",
        match task {
            Task::AssociativeRecall { .. } | Task::PrioritySort { .. } => {
                format!("{lo}..={hi} items")
            }
            _ => format!("lengths {lo}..={hi}"),
        },
        match *task {
            Task::RepeatCopy {
                min_repeats,
                max_repeats,
                ..
            } => format!(", {min_repeats}..={max_repeats} repeats as in training"),
            _ => String::new(),
        }
    );
    let repeats_column = matches!(task, Task::RepeatCopy { .. });
    let repeats_head = if repeats_column {
        format!(" {:>8}", "repeats")
    } else {
        String::new()
    };
    println!(
        "  {word:>7}{repeats_head} {:>10} {:>15} {:>10} {:>13}",
        "sequences", "bit errors/seq", "bits/seq", "% bit errors"
    );
    for r in rows {
        let trained = if (lo..=hi).contains(&r.size) && r.repeats.is_none() {
            "  (trained size)"
        } else {
            ""
        };
        let repeats = match (repeats_column, r.repeats, *task) {
            (false, ..) => String::new(),
            (true, Some(n), _) => format!(" {n:>8}"),
            (
                true,
                None,
                Task::RepeatCopy {
                    min_repeats,
                    max_repeats,
                    ..
                },
            ) => format!(" {:>8}", format!("{min_repeats}-{max_repeats}")),
            (true, None, _) => format!(" {:>8}", "-"),
        };
        println!(
            "  {:>7}{repeats} {:>10} {:>15.3} {:>10.1} {:>12.2}%{trained}",
            r.size,
            r.sequences,
            r.errors_per_sequence,
            r.bits_per_sequence,
            100.0 * r.rate()
        );
    }
}

/// The read and write weightings over one held-out sequence of `size`, as
/// heatmaps (time step across, memory row up), one panel per head (at most
/// four of each kind).
pub(super) fn weightings_png(ntm: &Ntm, task: &Task, size: usize) -> Result<Vec<u8>> {
    let c = ntm.config();
    let mut rng = SplitMix64::new(EVAL_SEED ^ 0x5EED);
    let mut batch = TaskBatch::default();
    task.generate(&mut rng, 1, size, &mut batch)?;
    let mut tape = NtmTape::new();
    ntm.forward_train(&batch.x, batch.seq_len, 1, &mut tape)?;
    let (t, heads, n) = (batch.seq_len, c.heads(), c.memory_rows);
    let w = tape.weightings();
    if w.len() != (t + 1) * heads * n {
        bail!(
            "the weightings hold {} values, expected (T+1) * (R+W) * N = {}",
            w.len(),
            (t + 1) * heads * n
        );
    }
    // Head h after step s: slot s + 1 of [T+1, B=1, R+W, N].
    let per_head: Vec<Vec<f32>> = (0..heads)
        .map(|h| {
            (0..t)
                .flat_map(|s| {
                    let at = ((s + 1) * heads + h) * n;
                    w[at..at + n].iter().copied()
                })
                .collect()
        })
        .collect();
    let first_scored = batch.mask.iter().position(|&m| m > 0.0).unwrap_or(t);
    let shown: Vec<usize> = (0..c.read_heads.min(4))
        .chain(c.read_heads..c.read_heads + c.write_heads.min(4))
        .collect();
    let panels: Vec<Heatmap<'_>> = shown
        .iter()
        .map(|&h| {
            let (kind, k, of) = if h < c.read_heads {
                ("read", h, c.read_heads)
            } else {
                ("write", h - c.read_heads, c.write_heads)
            };
            let which = if of > 1 {
                format!(" {} of {of}", k + 1)
            } else {
                String::new()
            };
            Heatmap {
                title: format!("{kind} head{which}: weighting over memory rows"),
                values: &per_head[h],
                nx: t,
                ny: n,
                x_desc: "time step",
                y_desc: "memory row",
                vline: Some((first_scored as f64, "outputs scored from here")),
            }
        })
        .collect();
    let title = format!(
        "NTM {}: one held-out sequence, {} ({t} steps); darker = more weight",
        task.name(),
        size_label(task, size)
    );
    plot::heatmaps(&title, &panels, 1200)
}

/// Bit errors per sequence drawn at this value when they are 0 (the
/// vertical axis of [`learning_png`] is logarithmic).
pub(super) const CURVE_FLOOR: f64 = 0.01;

/// One run's held-out evaluations, for [`learning_png`].
pub(super) struct Curve {
    /// The legend's label.
    pub label: String,
    /// Training sequences at each evaluation.
    pub sequences: Vec<f64>,
    /// Held-out bit errors per sequence at each evaluation.
    pub bit_errors: Vec<f64>,
}

/// Held-out bit errors per sequence against training sequences, one line
/// per run, on a logarithmic axis (0 drawn at [`CURVE_FLOOR`]), with the
/// stopping threshold dashed.
pub(super) fn learning_png(title: &str, curves: &[Curve], threshold: f64) -> Result<Vec<u8>> {
    let floored: Vec<Vec<f64>> = curves
        .iter()
        .map(|c| c.bit_errors.iter().map(|&e| e.max(CURVE_FLOOR)).collect())
        .collect();
    let x_end = curves
        .iter()
        .filter_map(|c| c.sequences.last().copied())
        .fold(0.0, f64::max);
    let threshold_x = [0.0, x_end];
    let threshold_y = [threshold, threshold];
    let mut lines: Vec<Line<'_>> = curves
        .iter()
        .zip(&floored)
        .enumerate()
        .map(|(k, (c, y))| Line {
            label: c.label.clone(),
            x: &c.sequences,
            y,
            color: plot::PALETTE[k % plot::PALETTE.len()],
            width: 2,
            dashed: false,
        })
        .collect();
    lines.push(Line {
        label: format!("threshold {threshold}"),
        x: &threshold_x,
        y: &threshold_y,
        color: plotters::style::BLACK,
        width: 1,
        dashed: true,
    });
    let y_desc = format!("held-out bit errors per sequence (log; 0 drawn at {CURVE_FLOOR})");
    plot::lines(
        &Chart {
            title,
            x_desc: "training sequences",
            y_desc: &y_desc,
            axis: None,
            log_y: true,
            vline: None,
            legend: plotters::chart::SeriesLabelPosition::LowerLeft,
            size: (1100, 650),
        },
        &lines,
    )
}
