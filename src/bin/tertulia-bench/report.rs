//! What a run prints: a human table and one JSON line with the same figures.

use std::time::Duration;

use serde_json::{Map, Value};

/// The figures of one run, in the order they are printed.
pub struct Report {
    workload: &'static str,
    rows: Vec<Row>,
}

/// One figure: its JSON key, value, and the target for it, if it has one.
struct Row {
    key: String,
    value: Value,
    target: Option<&'static str>,
}

impl Report {
    /// An empty report for `workload`.
    pub fn new(workload: &'static str) -> Self {
        Report {
            workload,
            rows: Vec::new(),
        }
    }

    /// Adds a figure.
    pub fn add(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.rows.push(Row {
            key: key.into(),
            value: value.into(),
            target: None,
        });
        self
    }

    /// Adds a figure before every other (what describes the whole run, such as its nodes).
    pub fn add_first(&mut self, key: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.rows.insert(
            0,
            Row {
                key: key.into(),
                value: value.into(),
                target: None,
            },
        );
        self
    }

    /// Adds a figure with the target it is judged against.
    pub fn add_target(
        &mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
        target: &'static str,
    ) -> &mut Self {
        self.rows.push(Row {
            key: key.into(),
            value: value.into(),
            target: Some(target),
        });
        self
    }

    /// Adds the latency percentiles of `samples` (microseconds) as `<prefix>_p50_ms` etc.
    pub fn add_latency(&mut self, prefix: &str, samples: &mut [u32], targets: [&'static str; 3]) {
        let summary = Latency::of(samples);
        self.add(format!("{prefix}_samples"), samples.len());
        self.add(format!("{prefix}_p50_ms"), ms(summary.p50));
        self.add_target(format!("{prefix}_p99_ms"), ms(summary.p99), targets[0]);
        self.add_target(format!("{prefix}_p999_ms"), ms(summary.p999), targets[1]);
        self.add_target(format!("{prefix}_max_ms"), ms(summary.max), targets[2]);
    }

    /// The human table.
    pub fn table(&self) -> String {
        let key_width = self.rows.iter().map(|r| r.key.len()).max().unwrap_or(0);
        let values: Vec<String> = self.rows.iter().map(|r| human(&r.value)).collect();
        // Long strings (an error message) stay out of the alignment of the figures.
        let value_width = values
            .iter()
            .map(String::len)
            .filter(|&len| len <= 24)
            .max()
            .unwrap_or(0);
        let mut out = format!("tertulia-bench {}\n", self.workload);
        for (row, value) in self.rows.iter().zip(&values) {
            let target = row
                .target
                .map(|t| format!("  (target {t})"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {:<key_width$}  {:>value_width$}{target}\n",
                row.key, value
            ));
        }
        out
    }

    /// The JSON line.
    pub fn json(&self) -> String {
        let mut map = Map::new();
        map.insert("workload".to_owned(), Value::from(self.workload));
        for row in &self.rows {
            map.insert(row.key.clone(), row.value.clone());
        }
        Value::Object(map).to_string()
    }
}

/// Numbers rounded for people; everything else as JSON.
fn human(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or_default();
            if f.abs() >= 100.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.3}")
            }
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Microseconds as milliseconds with microsecond precision.
fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

/// Per-second rate of `count` over `elapsed`.
pub fn per_sec(count: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        (count as f64 / secs).round()
    } else {
        0.0
    }
}

/// Percentiles of a latency sample, in microseconds.
pub struct Latency {
    pub p50: u32,
    pub p99: u32,
    pub p999: u32,
    pub max: u32,
}

impl Latency {
    /// Sorts `samples` and reads the percentiles (nearest rank); all zero when empty.
    pub fn of(samples: &mut [u32]) -> Self {
        samples.sort_unstable();
        let at = |q: f64| -> u32 {
            if samples.is_empty() {
                return 0;
            }
            let rank = (q * samples.len() as f64).ceil() as usize;
            samples[rank.clamp(1, samples.len()) - 1]
        };
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples.last().copied().unwrap_or(0),
        }
    }
}

/// A duration in microseconds, saturating.
pub fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut samples: Vec<u32> = (1..=1000).rev().collect();
        let l = Latency::of(&mut samples);
        assert_eq!((l.p50, l.p99, l.p999, l.max), (500, 990, 999, 1000));
        let empty = Latency::of(&mut []);
        assert_eq!(empty.max, 0);
    }

    #[test]
    fn the_json_line_holds_every_figure() {
        let mut report = Report::new("relay");
        report.add("pairs", 2).add_target("lost", 0, "0");
        let json: Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["workload"], "relay");
        assert_eq!(json["lost"], 0);
        assert!(report.table().contains("(target 0)"));
    }
}
