//! The measuring harness: samples, summaries, ratios and the aligned
//! table. Pure: it does no I/O except writing to the `Write` it is given.
//!
//! A [`Case`] is one workload measured with several tools side by side in
//! one invocation; each tool's [`Measurement`] keeps every sample of the
//! timed runs (the warm-up run is never recorded). A [`Ratio`] compares the
//! medians of two tools of the same case, so the number that matters does
//! not depend on how loaded the machine was when it was taken.

use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// What a measurement's samples are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Wall-clock seconds: lower is better.
    Seconds,
    /// Throughput in 10^9 bytes per second: higher is better.
    GigabytesPerSecond,
}

impl Unit {
    fn format(self, v: f64) -> String {
        match self {
            Unit::Seconds if v < 1.0 => format!("{:.1} ms", v * 1e3),
            Unit::Seconds => format!("{v:.3} s"),
            Unit::GigabytesPerSecond => format!("{v:.3} GB/s"),
        }
    }
}

/// Median, minimum and maximum of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Summary {
    /// `None` for an empty sample. The median of an even count is the mean
    /// of the middle two.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
        Some(Summary { median, min: s[0], max: s[n - 1] })
    }
}

/// One tool's samples in one case.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    /// Short name used by ratios (`strata`, `tar`, ...).
    pub tool: String,
    /// What was run, as a person would type it.
    pub command: String,
    pub unit: Unit,
    pub samples: Vec<f64>,
    pub summary: Option<Summary>,
}

impl Measurement {
    pub fn new(tool: &str, command: &str, unit: Unit) -> Measurement {
        Measurement { tool: tool.to_owned(), command: command.to_owned(), unit, samples: Vec::new(), summary: None }
    }

    pub fn push(&mut self, sample: f64) {
        self.samples.push(sample);
        self.summary = Summary::of(&self.samples);
    }
}

/// `numerator / denominator` of two tools' medians.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub numerator: String,
    pub denominator: String,
    pub value: f64,
    pub unit: Unit,
}

impl Ratio {
    /// How to read the ratio, e.g. "strata 1.25x faster".
    pub fn verdict(&self) -> String {
        let faster = match self.unit {
            Unit::Seconds => self.value < 1.0,
            Unit::GigabytesPerSecond => self.value > 1.0,
        };
        let factor = if self.value > 1.0 { self.value } else { 1.0 / self.value };
        if (factor - 1.0).abs() < 0.005 {
            "even".to_owned()
        } else {
            format!("{} {factor:.2}x {}", self.numerator, if faster { "faster" } else { "slower" })
        }
    }
}

/// A tool that could not be measured in a case, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub what: String,
    pub reason: String,
}

/// One workload measured with several tools.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    pub name: String,
    /// Free-form facts about the case (filesystem and its mount options,
    /// dataset size, cache state).
    pub facts: BTreeMap<String, String>,
    pub measurements: Vec<Measurement>,
    pub ratios: Vec<Ratio>,
    pub skipped: Vec<Skip>,
}

impl Case {
    pub fn new(name: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            facts: BTreeMap::new(),
            measurements: Vec::new(),
            ratios: Vec::new(),
            skipped: Vec::new(),
        }
    }

    pub fn fact(&mut self, key: &str, value: impl Into<String>) {
        self.facts.insert(key.to_owned(), value.into());
    }

    pub fn measurement(&self, tool: &str) -> Option<&Measurement> {
        self.measurements.iter().find(|m| m.tool == tool)
    }

    /// Adds `numerator / denominator` of the two tools' medians, if both
    /// were measured.
    pub fn add_ratio(&mut self, numerator: &str, denominator: &str) {
        let (Some(n), Some(d)) = (self.measurement(numerator), self.measurement(denominator)) else {
            return;
        };
        let (Some(ns), Some(ds)) = (n.summary, d.summary) else {
            return;
        };
        if ds.median > 0.0 {
            self.ratios.push(Ratio {
                numerator: numerator.to_owned(),
                denominator: denominator.to_owned(),
                value: ns.median / ds.median,
                unit: n.unit,
            });
        }
    }
}

/// One benchmark (`unpack`, `copy`, ...): its cases and what was skipped.
#[derive(Debug, Clone, Serialize)]
pub struct Suite {
    pub name: String,
    /// How the suite measures, in a sentence or two (what is timed, sync
    /// policy, cache state).
    pub method: String,
    pub cases: Vec<Case>,
    /// Whole cases that could not run, and why.
    pub skipped: Vec<Skip>,
}

impl Suite {
    pub fn new(name: &str, method: impl Into<String>) -> Suite {
        Suite { name: name.to_owned(), method: method.into(), cases: Vec::new(), skipped: Vec::new() }
    }

    pub fn skip(&mut self, what: impl Into<String>, reason: impl Into<String>) {
        self.skipped.push(Skip { what: what.into(), reason: reason.into() });
    }
}

/// Times `f`, returning its result and the elapsed seconds.
pub fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed().as_secs_f64())
}

/// Seconds as a [`Duration`]-free float, for throughput math.
pub fn gbps(bytes: u64, seconds: f64) -> f64 {
    // Precision loss above 2^53 bytes is irrelevant for a throughput.
    #[allow(clippy::cast_precision_loss)]
    let b = bytes as f64;
    b / seconds / 1e9
}

/// Formats a duration the way the progress lines do.
pub fn fmt_duration(d: Duration) -> String {
    Unit::Seconds.format(d.as_secs_f64())
}

/// Prints rows as left-aligned text columns (the first `left` columns)
/// and right-aligned number columns (the rest), separated by two spaces.
pub fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>], left: usize) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if i < left {
                s.push_str(cell);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            }
        }
        s
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}

/// Prints a suite: the method, one row per tool per case, then the
/// ratios and skips.
pub fn print_suite(out: &mut impl Write, suite: &Suite) -> io::Result<()> {
    writeln!(out, "== {} ==", suite.name)?;
    writeln!(out, "{}", suite.method)?;
    let mut rows = Vec::new();
    for case in &suite.cases {
        for m in &case.measurements {
            let (median, min, max) = match m.summary {
                Some(s) => (m.unit.format(s.median), m.unit.format(s.min), m.unit.format(s.max)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            rows.push(vec![case.name.clone(), m.command.clone(), median, min, max, m.samples.len().to_string()]);
        }
    }
    if !rows.is_empty() {
        writeln!(out)?;
        print_table(out, &["case", "tool", "median", "min", "max", "runs"], &rows, 2)?;
    }
    // Where each case ran: the filesystem and its mount options.
    let mut fs_rows = Vec::new();
    for case in &suite.cases {
        if let Some(fs) = case.facts.get("fs") {
            fs_rows.push(vec![case.name.clone(), fs.clone()]);
        }
    }
    if !fs_rows.is_empty() {
        writeln!(out)?;
        print_table(out, &["case", "filesystem (mount options; superblock options)"], &fs_rows, 2)?;
    }
    let mut ratio_rows = Vec::new();
    for case in &suite.cases {
        for r in &case.ratios {
            let what = match r.unit {
                Unit::Seconds => "time",
                Unit::GigabytesPerSecond => "throughput",
            };
            ratio_rows.push(vec![
                case.name.clone(),
                format!("{} / {} ({what})", r.numerator, r.denominator),
                format!("{:.3}", r.value),
                r.verdict(),
            ]);
        }
    }
    if !ratio_rows.is_empty() {
        writeln!(out)?;
        print_table(out, &["case", "ratio", "value", "reading"], &ratio_rows, 2)?;
    }
    let skips: Vec<String> = suite
        .skipped
        .iter()
        .map(|s| format!("skipped {}: {}", s.what, s.reason))
        .chain(
            suite
                .cases
                .iter()
                .flat_map(|c| c.skipped.iter().map(move |s| format!("skipped {} in {}: {}", s.what, c.name, s.reason))),
        )
        .collect();
    if !skips.is_empty() {
        writeln!(out)?;
        for s in skips {
            writeln!(out, "{s}")?;
        }
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_takes_the_middle() {
        assert!(Summary::of(&[]).is_none());
        let s = Summary::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }

    #[test]
    fn ratios_compare_medians_and_read_by_unit() {
        let mut c = Case::new("c");
        for (tool, samples) in [("strata", [1.0, 9.0, 2.0]), ("tar", [4.0, 4.0, 4.0])] {
            let mut m = Measurement::new(tool, tool, Unit::Seconds);
            samples.iter().for_each(|s| m.push(*s));
            c.measurements.push(m);
        }
        c.add_ratio("strata", "tar");
        c.add_ratio("strata", "missing");
        assert_eq!(c.ratios.len(), 1);
        assert_eq!(c.ratios[0].value, 0.5);
        assert_eq!(c.ratios[0].verdict(), "strata 2.00x faster");
        let r = Ratio { unit: Unit::GigabytesPerSecond, ..c.ratios[0].clone() };
        assert_eq!(r.verdict(), "strata 2.00x slower");
    }

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let mut out = Vec::new();
        let rows = vec![vec!["a".into(), "1.0 s".into()], vec!["long".into(), "10.0 s".into()]];
        print_table(&mut out, &["name", "t"], &rows, 1).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name       t\na      1.0 s\nlong  10.0 s\n");
    }
}
