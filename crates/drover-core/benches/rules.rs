//! Rule matching throughput: 100 enabled rules over 10 trigger types (a few on
//! `host.*`, a few backstops), criteria mixing every kind of operator, matched against
//! a stream of realistic events. Prints events/s for one core; the target is
//! more than 220,000.
//!
//! `cargo bench -p drover-core --bench rules`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use drover_core::automation::rule::{RuleSet, decode_rule};
use serde_json::{Value, json};

const NOW: i64 = 1_700_000_000_000;

const TYPES: [&str; 10] = [
    "host.down",
    "host.up",
    "instance.failed",
    "execution.finished",
    "kv.set",
    "rollout.finished",
    "webhook",
    "timer.interval",
    "provider.sync_failed",
    "generator.rendered",
];

/// Criteria number `i` (YAML, indented under `criteria:`), cycling through operators.
fn criteria(i: usize) -> String {
    let n = i % 16;
    match n {
        0 => format!("  trigger.status:\n    type: equals\n    pattern: s{}\n", i % 3),
        1 => "  trigger.host:\n    type: matchwildcard\n    pattern: \"web-*\"\n".into(),
        2 => "  trigger.host:\n    type: regex\n    pattern: \"^(web|db)-\\\\d+$\"\n".into(),
        3 => "  trigger.region:\n    type: iequals\n    pattern: EU-West\n".into(),
        4 => "  trigger.load:\n    type: gt\n    pattern: 80\n  trigger.load#max:\n    type: lt\n    pattern: 99\n".into(),
        5 => "  trigger.region:\n    type: inside\n    pattern: [eu-west, us-east, ap-south]\n".into(),
        6 => "  trigger.message:\n    type: icontains\n    pattern: TIMEOUT\n".into(),
        7 => "  trigger.labels.team:\n    type: exists\n  trigger.labels.oncall:\n    type: nexists\n".into(),
        8 => "  trigger.at:\n    type: timediff_lt\n    pattern: 300\n".into(),
        9 => "  trigger.checks:\n    type: search\n    condition: any\n    pattern:\n      item.name:\n        type: equals\n        pattern: http\n      item.ok:\n        type: equals\n        pattern: false\n".into(),
        10 => "  trigger.status:\n    type: equals\n    pattern: s1\n  or:\n    - trigger.region:\n        type: startswith\n        pattern: eu\n    - trigger.load:\n        type: gt\n        pattern: 90\n".into(),
        11 => "  trigger.message:\n    type: ncontains\n    pattern: ignore\n  trigger.host:\n    type: endswith\n    pattern: \"7\"\n".into(),
        12 => "  trigger.message:\n    type: matchregex\n    pattern: \"(?i)error.*disk\"\n".into(),
        13 => "  trigger.tags:\n    type: contains\n    pattern: critical\n".into(),
        14 => "  trigger.host:\n    type: iregex\n    pattern: \"DB-[0-9]+\"\n  trigger.status:\n    type: neq\n    pattern: s0\n".into(),
        _ => "  trigger.labels.env:\n    type: equals\n    pattern: prod\n".into(),
    }
}

fn rules() -> RuleSet {
    let mut rules = Vec::new();
    for i in 0..100 {
        let (trigger, kind) = match i {
            0..=2 => ("host.*", "standard"),
            3..=5 => (TYPES[i % 10], "backstop"),
            _ => (TYPES[i % 10], "standard"),
        };
        let params = match trigger {
            "webhook" => "\n  parameters:\n    url: hooks/ci",
            "timer.interval" => "\n  parameters:\n    unit: seconds\n    delta: 30",
            _ => "",
        };
        let text = format!(
            "name: rule_{i}\nenabled: true\ntrigger:\n  type: {trigger}{params}\ntype:\n  ref: {kind}\naction:\n  ref: core.local\n  parameters:\n    cmd: echo {{{{ trigger.host }}}}\ncriteria:\n{}",
            criteria(i)
        );
        match decode_rule("bench.yaml", &text, "bench") {
            Ok(rule) => rules.push(rule),
            Err(e) => panic!("rule {i}: {e:?}\n{text}"),
        }
    }
    RuleSet::new(rules)
}

fn events(n: usize) -> Vec<(&'static str, Value)> {
    (0..n)
        .map(|i| {
            let host = if i % 3 == 0 {
                format!("db-{i}")
            } else {
                format!("web-{i}")
            };
            let region = ["eu-west", "us-east", "EU-WEST", "sa-east"][i % 4];
            let message = [
                "connection timeout on port 443",
                "error: disk full on /var",
                "all good",
                "ignore me",
            ][i % 4];
            let payload = json!({
                "host": host,
                "status": format!("s{}", i % 3),
                "region": region,
                "load": (i * 7) % 100,
                "message": message,
                "labels": {"team": "ops", "env": if i % 2 == 0 { "prod" } else { "dev" }},
                "tags": ["web", if i % 5 == 0 { "critical" } else { "minor" }],
                "at": if i % 2 == 0 { "2023-11-14T22:12:00Z" } else { "2023-11-14T20:00:00Z" },
                "checks": [{"name": "tcp", "ok": true}, {"name": "http", "ok": i % 4 == 0}],
            });
            (TYPES[i % 10], payload)
        })
        .collect()
}

/// Events per second over `rounds` passes of `events`, with how many rules fired.
fn throughput(set: &RuleSet, events: &[(&str, Value)], rounds: usize) -> (f64, usize) {
    let start = Instant::now();
    let mut fired = 0;
    for _ in 0..rounds {
        for (kind, payload) in events {
            fired += black_box(set.matching(kind, payload, NOW)).len();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    ((events.len() * rounds) as f64 / seconds, fired)
}

fn bench(c: &mut Criterion) {
    let set = rules();
    let events = events(1_000);
    let (rate, fired) = throughput(&set, &events, 200);
    println!(
        "rules: {rate:.0} events/s against 100 rules on one core ({:.2} rules fired per event)",
        fired as f64 / (events.len() * 200) as f64
    );
    let mut group = c.benchmark_group("rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("match 1000 events x 100 rules", |b| {
        b.iter(|| {
            for (kind, payload) in &events {
                black_box(set.matching(kind, payload, NOW));
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
