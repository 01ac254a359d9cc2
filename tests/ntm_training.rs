//! The NTM end to end: a tiny machine learns short copies (a loose
//! threshold, well under a minute), save/load round trips, bad input.

use recurrent::Error;
use recurrent::ntm::{
    Controller, MemoryInit, Ntm, NtmConfig, NtmGradScratch, NtmTape, NtmTrainConfig, NtmTrainer,
    Selection, Task, TrainPlan, evaluate,
};

fn tiny(bits: usize) -> NtmConfig {
    NtmConfig {
        controller: Controller::Lstm,
        input_size: bits + 1,
        output_size: bits,
        controller_size: 32,
        memory_rows: 16,
        memory_width: 8,
        read_heads: 1,
        write_heads: 1,
        shift_range: 1,
        memory: MemoryInit::Constant(1e-6),
        seed: 7,
    }
}

/// Copies of 1-5 four-bit vectors, the task of these tests.
fn short_copies() -> Task {
    Task::Copy {
        bits: 4,
        min_len: 1,
        max_len: 5,
    }
}

/// Adam at 3e-3 on batches of 4: fast enough for a tiny machine.
fn adam(seed: u64) -> NtmTrainConfig {
    NtmTrainConfig {
        seed,
        batch: 4,
        optimizer: recurrent::ntm::NtmOptimizer::Adam { lr: 3e-3 },
        ..NtmTrainConfig::default()
    }
}

/// 2,000 sequences, evaluated every 200, selecting on 32 copies of length
/// 12, with `stop_below`.
fn selecting_plan(stop_below: f64) -> TrainPlan {
    TrainPlan {
        max_sequences: 2000,
        eval_every: 200,
        eval_sequences: 32,
        eval_size: 5,
        eval_seed: 99,
        stop_below: Some(stop_below),
        checkpoint: None,
        select: Some(Selection {
            task: None,
            size: 12,
            sequences: 32,
            seed: 1234,
        }),
    }
}

#[test]
fn tiny_ntm_learns_short_copies() {
    let task = short_copies();
    let ntm = Ntm::new(tiny(4)).unwrap();
    let before = evaluate(&ntm, &task, 5, 256, 99).unwrap();
    let config = adam(3);
    let mut trainer = NtmTrainer::new(ntm, task, config).unwrap();
    let plan = TrainPlan {
        max_sequences: 40000,
        eval_every: 500,
        eval_sequences: 256,
        eval_size: 5,
        eval_seed: 99,
        stop_below: Some(0.5),
        checkpoint: None,
        select: None,
    };
    let report = trainer.run(&plan, |_| {}).unwrap();
    let last = report.evaluations.last().unwrap();
    println!(
        "before: {:.2} bit errors/seq; after {} sequences ({:.1} s): {:.3}",
        before.errors_per_sequence(),
        report.sequences,
        report.seconds,
        last.bit_errors
    );
    // 20 scored bits per length-5 sequence: chance is 10 errors.
    assert!(
        before.errors_per_sequence() > 5.0,
        "untrained machine already copies: {before:?}"
    );
    assert!(
        last.bit_errors < 0.5,
        "tiny NTM did not learn length-5 copies: {last:?}"
    );
}

#[test]
fn a_selecting_run_trains_past_convergence_and_ends_with_the_selected_machine() {
    let task = short_copies();
    let config = adam(5);
    // Every evaluation is under 1e9: without selection the run would stop
    // at the first one.
    let plan = selecting_plan(1e9);
    let select = plan.select.unwrap();
    let mut trainer = NtmTrainer::new(Ntm::new(tiny(4)).unwrap(), task, config).unwrap();
    let report = trainer.run(&plan, |_| {}).unwrap();
    assert_eq!(report.sequences, 2000);
    assert_eq!(report.evaluations.len(), 10);
    assert_eq!(report.converged_at, Some(200));
    let losses: Vec<f64> = report
        .evaluations
        .iter()
        .map(|e| e.selection.expect("a selection score").loss)
        .collect();
    let k = report.selected.expect("a selected evaluation");
    assert!(
        losses.iter().all(|&l| losses[k] <= l),
        "selected {k} of {losses:?}"
    );
    // The machine the run ends with is the selected one: it scores the
    // selected evaluation's loss again, bit for bit.
    let again = evaluate(
        trainer.ntm(),
        &task,
        select.size,
        select.sequences,
        select.seed,
    )
    .unwrap();
    assert_eq!(again.loss(), losses[k]);
    // Selection is what kept it: the machines differ on this set.
    assert!(
        losses.iter().any(|&l| l != losses[k]),
        "every evaluation scored the same: {losses:?}"
    );
}

#[test]
fn selection_prefers_the_machines_under_the_threshold() {
    let train = |stop_below: f64| {
        let mut trainer =
            NtmTrainer::new(Ntm::new(tiny(4)).unwrap(), short_copies(), adam(5)).unwrap();
        trainer.run(&selecting_plan(stop_below), |_| {}).unwrap()
    };
    let selection_loss = |e: &recurrent::ntm::Evaluation| e.selection.unwrap().loss;
    let argmin = |evals: &[recurrent::ntm::Evaluation], keep: &dyn Fn(f64) -> bool| {
        (0..evals.len())
            .filter(|&i| keep(evals[i].bit_errors))
            .min_by(|&i, &j| selection_loss(&evals[i]).total_cmp(&selection_loss(&evals[j])))
    };
    // Nothing under the threshold: the lowest selection loss of all.
    let none = train(0.0);
    assert_eq!(none.converged_at, None);
    assert_eq!(none.selected, argmin(&none.evaluations, &|_| true));
    // A threshold that the machine of the lowest selection loss misses
    // (training does not depend on it, so the evaluations are the same).
    let best_of_all = none.selected.unwrap();
    let threshold = none.evaluations[best_of_all].bit_errors;
    let some = train(threshold);
    assert_eq!(some.evaluations, none.evaluations);
    let under = argmin(&some.evaluations, &|b| b < threshold);
    assert!(
        under.is_some(),
        "no machine under {threshold}: {:?}",
        some.evaluations
    );
    assert_ne!(under, Some(best_of_all));
    assert_eq!(some.selected, under);
}

#[test]
fn saved_machine_loads_and_gives_the_same_outputs() {
    let config = NtmConfig {
        memory: MemoryInit::Learned,
        read_heads: 2,
        write_heads: 2,
        ..tiny(3)
    };
    let ntm = Ntm::new(config).unwrap();
    let dir = std::env::temp_dir().join(format!("rnn-ntm-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ntm.safetensors");
    ntm.save(&path).unwrap();
    let loaded = Ntm::load(&path).unwrap();
    assert_eq!(loaded.config(), ntm.config());
    assert_eq!(loaded.params(), ntm.params());
    let (t, b) = (6, 3);
    let x: Vec<f32> = (0..t * b * 4)
        .map(|i| ((i * 37 % 11) as f32) / 11.0)
        .collect();
    assert_eq!(
        loaded.forward(&x, t, b).unwrap(),
        ntm.forward(&x, t, b).unwrap()
    );
    // A truncated file is an error naming the file, never a panic.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.join("cut.safetensors");
    for len in [0, 7, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let err = Ntm::load(&cut).unwrap_err().to_string();
        assert!(err.contains("cut.safetensors"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_input_is_an_error_and_changes_nothing() {
    let ntm = Ntm::new(tiny(4)).unwrap();
    let mut tape = NtmTape::new();
    assert!(matches!(
        ntm.forward_train(&[0.0; 9], 2, 1, &mut tape),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        ntm.forward(&[], 0, 1),
        Err(Error::ZeroSize { what: "seq_len" })
    ));
    assert!(matches!(
        ntm.forward(&[], 1, 0),
        Err(Error::ZeroSize { what: "batch" })
    ));
    // backward before any forward, and with a wrong dy.
    let mut grads = ntm.zero_grads();
    let mut scratch = NtmGradScratch::default();
    assert!(
        ntm.backward(&tape, &[0.0; 8], &mut grads, None, &mut scratch)
            .is_err()
    );
    ntm.forward_train(&[0.0; 2 * 5], 2, 1, &mut tape).unwrap();
    assert!(matches!(
        ntm.backward(&tape, &[0.0; 3], &mut grads, None, &mut scratch),
        Err(Error::Shape { .. })
    ));
    // Invalid configurations.
    for bad in [
        NtmConfig {
            memory_rows: 0,
            ..tiny(4)
        },
        NtmConfig {
            shift_range: 16,
            ..tiny(4)
        },
        NtmConfig {
            memory: MemoryInit::Constant(f32::NAN),
            ..tiny(4)
        },
        NtmConfig {
            controller_size: usize::MAX / 2,
            ..tiny(4)
        },
    ] {
        assert!(Ntm::new(bad).is_err());
    }
    // A task whose sizes do not match the machine.
    let err = NtmTrainer::new(ntm, Task::copy(), NtmTrainConfig::default())
        .err()
        .expect("size mismatch");
    assert!(err.to_string().contains("input_size"), "{err}");
}

#[test]
fn a_nan_parameter_stops_training_with_the_step_and_keeps_the_machine() {
    let mut ntm = Ntm::new(tiny(4)).unwrap();
    let i = ntm.params().info("heads.bias").unwrap().offset;
    ntm.params_mut()[i] = f32::NAN;
    let before = ntm.params().clone();
    let task = short_copies();
    let mut trainer = NtmTrainer::new(ntm, task, NtmTrainConfig::default()).unwrap();
    let err = trainer.step().unwrap_err();
    assert!(matches!(err, Error::NonFinite(_)), "{err}");
    assert!(err.to_string().contains("training sequence 1"), "{err}");
    let after = trainer.ntm().params();
    assert!(
        before
            .as_slice()
            .iter()
            .zip(after.as_slice())
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}
