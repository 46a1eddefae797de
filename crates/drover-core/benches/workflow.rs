//! Conductor overhead per task: a 50-task sequential workflow whose actions end at
//! once, each step persisted (serde JSON round trip of the whole state) as the shell
//! will do after every transition. Prints the per-task overhead in microseconds.
//!
//! `cargo bench -p drover-core --bench workflow`

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use drover_core::workflow::conductor;
use drover_core::workflow::spec::{WorkflowSpec, decode_workflow};
use drover_core::workflow::state::{
    Directive, OutcomeStatus, TaskOutcome, WorkflowState, WorkflowStatus,
};
use serde_json::json;

const TASKS: usize = 50;

/// `t0 → t1 → … → t49`, each publishing a counter the next one reads.
fn workflow() -> WorkflowSpec {
    let mut text = String::from("version: 1.0\ninput: [{n: 0}]\ntasks:\n");
    for i in 0..TASKS {
        let _ = write!(
            text,
            "  t{i}:\n    action: core.noop\n    input:\n      n: \"{{{{ ctx().n }}}}\"\n"
        );
        if i + 1 < TASKS {
            let _ = write!(
                text,
                "    next:\n      - when: \"{{{{ succeeded() }}}}\"\n        publish:\n          - n: \"{{{{ ctx().n + 1 }}}}\"\n        do: t{}\n",
                i + 1
            );
        }
    }
    text.push_str("output:\n  - n: \"{{ ctx().n }}\"\n");
    match decode_workflow("bench.yaml", &text) {
        Ok(spec) => spec,
        Err(e) => panic!("{e:?}"),
    }
}

/// Runs the workflow to its end; returns how many tasks ran.
fn drive(spec: &WorkflowSpec) -> usize {
    let (mut state, mut out) = conductor::start(spec, Default::default()).unwrap();
    let mut ran = 0;
    while let Some(Directive::RunAction { key, input, .. }) = out.pop() {
        ran += 1;
        let outcome = TaskOutcome {
            status: OutcomeStatus::Succeeded,
            result: json!({"echo": input}),
        };
        out = conductor::task_finished(spec, &mut state, &key, outcome).unwrap();
        // What the shell persists after every transition, and reads back on resume.
        let saved = serde_json::to_vec(&state).unwrap();
        state = serde_json::from_slice::<WorkflowState>(&saved).unwrap();
    }
    assert_eq!(state.status, WorkflowStatus::Succeeded);
    ran
}

fn bench(c: &mut Criterion) {
    let spec = workflow();
    assert_eq!(drive(&spec), TASKS);

    // One plain figure, printed for the record.
    let runs = 20;
    let started = Instant::now();
    for _ in 0..runs {
        black_box(drive(&spec));
    }
    let per_task = started.elapsed().as_secs_f64() * 1e6 / (runs * TASKS) as f64;
    println!(
        "workflow conductor: {per_task:.1} µs per task (50-task chain, state persisted per step)"
    );

    let mut group = c.benchmark_group("workflow");
    group.measurement_time(Duration::from_secs(5));
    group.sample_size(20);
    group.bench_function("sequential_50_tasks", |b| {
        b.iter(|| drive(black_box(&spec)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
