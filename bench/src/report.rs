//! The report: distributions (N, min, median, p90, max) and single values, printed as a
//! table and optionally written as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::{Summary, summarize};

/// Where and how the figures were taken.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Meta {
    /// When the run started (UTC).
    pub date_utc: String,
    /// CPUs available to the harness.
    pub cpus: usize,
    /// `MemTotal` of the machine, GiB.
    pub mem_total_gib: f64,
    /// `/proc/loadavg` (1, 5, 15 min) at the start.
    pub loadavg_start: String,
    /// `/proc/loadavg` at the end.
    pub loadavg_end: String,
    /// The drover binary measured.
    pub drover_binary: String,
    /// Its `--version` output.
    pub drover_version: String,
    /// `sqlite` or `postgres`.
    pub store: String,
    /// Agents in the fan-out fleet.
    pub agents: u32,
    /// Wall time of the whole harness, seconds.
    pub harness_seconds: f64,
}

/// A measured distribution.
#[derive(Debug, Clone, Serialize)]
pub struct Dist {
    /// Stable key for scripts.
    pub key: String,
    /// What was measured.
    pub label: String,
    /// Unit of the values (`ms`, `MiB`).
    pub unit: String,
    /// Attempts that failed and are not in the sample.
    pub failures: usize,
    /// Sum of the sample (for memory: the whole fleet).
    pub sum: f64,
    /// The order statistics.
    #[serde(flatten)]
    pub stats: Summary,
    /// Every value, in the order measured (JSON only).
    pub samples: Vec<f64>,
}

/// A single measured value.
#[derive(Debug, Clone, Serialize)]
pub struct Value {
    /// Stable key for scripts.
    pub key: String,
    /// What was measured.
    pub label: String,
    /// Unit (`MiB`, `s`).
    pub unit: String,
    /// The value.
    pub value: f64,
}

/// Everything the harness measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    /// Context of the run.
    pub meta: Meta,
    /// Distributions.
    pub distributions: Vec<Dist>,
    /// Single values.
    pub values: Vec<Value>,
    /// Failures and oddities seen on the way (failed runs, warnings in logs…).
    pub problems: Vec<String>,
}

impl Report {
    /// Adds a distribution (nothing if the sample is empty; that is noted as a problem).
    pub fn dist(&mut self, key: &str, label: &str, unit: &str, sample: &[f64], failures: usize) {
        match summarize(sample) {
            Some(stats) => self.distributions.push(Dist {
                key: key.into(),
                label: label.into(),
                unit: unit.into(),
                failures,
                sum: sample.iter().sum(),
                stats,
                samples: sample.to_vec(),
            }),
            None => self.problems.push(format!(
                "{label}: no successful sample ({failures} failures)"
            )),
        }
    }

    /// Adds a single value.
    pub fn value(&mut self, key: &str, label: &str, unit: &str, value: f64) {
        self.values.push(Value {
            key: key.into(),
            label: label.into(),
            unit: unit.into(),
            value,
        });
    }

    /// The report as text: a header, the distribution table, the value table, problems.
    pub fn render(&self) -> String {
        let m = &self.meta;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "drover-bench {} | {} CPUs, {:.1} GiB | load {} -> {} | store {} | {} agents | {:.0} s",
            m.date_utc,
            m.cpus,
            m.mem_total_gib,
            m.loadavg_start,
            m.loadavg_end,
            m.store,
            m.agents,
            m.harness_seconds
        );
        let _ = writeln!(s, "binary {} ({})", m.drover_binary, m.drover_version);
        let width = self
            .distributions
            .iter()
            .map(|d| d.label.len())
            .chain(self.values.iter().map(|v| v.label.len()))
            .max()
            .unwrap_or(10)
            .max(6);
        let _ = writeln!(
            s,
            "\n{:<width$}  {:>4}  {:>5} {:>8} {:>8} {:>8} {:>8}  {:>6}",
            "FIGURE", "UNIT", "N", "MIN", "MEDIAN", "P90", "MAX", "FAILED"
        );
        for d in &self.distributions {
            let st = &d.stats;
            let _ = writeln!(
                s,
                "{:<width$}  {:>4}  {:>5} {:>8} {:>8} {:>8} {:>8}  {:>6}",
                d.label,
                d.unit,
                st.n,
                num(st.min),
                num(st.median),
                num(st.p90),
                num(st.max),
                d.failures
            );
        }
        if !self.values.is_empty() {
            let _ = writeln!(s, "\n{:<width$}  {:>4}  {:>8}", "VALUE", "UNIT", "");
            for v in &self.values {
                let _ = writeln!(s, "{:<width$}  {:>4}  {:>8}", v.label, v.unit, num(v.value));
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(s, "\nproblems: none seen");
        } else {
            let _ = writeln!(s, "\nproblems ({}):", self.problems.len());
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        s
    }
}

/// A number with about three significant digits.
fn num(v: f64) -> String {
    if v.abs() < 10.0 {
        format!("{v:.2}")
    } else if v.abs() < 1000.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}
