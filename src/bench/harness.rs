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

/// How a [`Noise`] bound was drawn from the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseMethod {
    /// Both tools ran once per round (interleaved), so sample *i* of one
    /// pairs with sample *i* of the other: the bound is the lowest and
    /// highest of the per-round ratios `n[i] / d[i]`.
    PairedRounds,
    /// The sample counts differ, so no pairing: the bound is the worst and
    /// best pairing, `min(n) / max(d)` to `max(n) / min(d)`.
    Extremes,
}

/// The spread a ratio of medians could have had on this run: every ratio
/// the samples support lies in `[low, high]`. When it contains 1.0 the
/// two tools are not told apart by this run ([`Noise::straddles_one`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Noise {
    pub low: f64,
    pub high: f64,
    pub method: NoiseMethod,
}

impl Noise {
    /// The bound of `median(n) / median(d)` from the two sample sets;
    /// `None` when either is empty or a denominator sample is not
    /// positive.
    pub fn of(n: &[f64], d: &[f64]) -> Option<Noise> {
        if n.is_empty() || d.is_empty() || d.iter().any(|x| *x <= 0.0 || !x.is_finite()) {
            return None;
        }
        let (low, high, method) = if n.len() == d.len() {
            let r: Vec<f64> = n.iter().zip(d).map(|(a, b)| a / b).collect();
            let low = r.iter().copied().fold(f64::INFINITY, f64::min);
            let high = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (low, high, NoiseMethod::PairedRounds)
        } else {
            let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
            let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (min(n) / max(d), max(n) / min(d), NoiseMethod::Extremes)
        };
        Some(Noise { low, high, method })
    }

    /// Whether the bound contains 1.0: the run cannot tell the two apart.
    pub fn straddles_one(&self) -> bool {
        self.low <= 1.0 && self.high >= 1.0
    }
}

/// `1.62× [1.48–1.77]`: a value and its bound, each with two decimals
/// (three below 0.1).
pub fn fmt_ratio(value: f64, noise: Option<&Noise>) -> String {
    let f = |v: f64| if v < 0.1 { format!("{v:.3}") } else { format!("{v:.2}") };
    match noise {
        Some(n) => format!("{}× [{}–{}]", f(value), f(n.low), f(n.high)),
        None => format!("{}×", f(value)),
    }
}

/// `numerator / denominator` of two tools' medians.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub numerator: String,
    pub denominator: String,
    pub value: f64,
    pub unit: Unit,
    /// The ratio's bound from the samples; `None` for a derived ratio
    /// whose terms are not two measurements of the case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<Noise>,
}

impl Ratio {
    /// How to read the ratio, e.g. "strata 1.25x faster".
    pub fn verdict(&self) -> String {
        let faster = match self.unit {
            Unit::Seconds => self.value < 1.0,
            Unit::GigabytesPerSecond => self.value > 1.0,
        };
        let factor = if self.value > 1.0 { self.value } else { 1.0 / self.value };
        let reading = if (factor - 1.0).abs() < 0.005 {
            "even".to_owned()
        } else {
            format!("{} {factor:.2}x {}", self.numerator, if faster { "faster" } else { "slower" })
        };
        if self.inside_noise() {
            format!("{reading} (inside noise)")
        } else {
            reading
        }
    }

    /// Whether the noise bound contains 1.0.
    pub fn inside_noise(&self) -> bool {
        self.noise.is_some_and(|n| n.straddles_one())
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
                noise: Noise::of(&n.samples, &d.samples),
            });
        }
    }

    /// Fills in the noise bound of every ratio that has none and whose
    /// terms are two measurements of this case (for ratios a suite built
    /// by hand).
    pub fn fill_noise(&mut self) {
        for i in 0..self.ratios.len() {
            if self.ratios[i].noise.is_some() {
                continue;
            }
            let r = &self.ratios[i];
            let (Some(n), Some(d)) = (self.measurement(&r.numerator), self.measurement(&r.denominator)) else {
                continue;
            };
            let noise = Noise::of(&n.samples, &d.samples);
            self.ratios[i].noise = noise;
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
                fmt_ratio(r.value, r.noise.as_ref()),
                r.verdict(),
            ]);
        }
    }
    if !ratio_rows.is_empty() {
        writeln!(out)?;
        print_table(out, &["case", "ratio", "value [noise bound]", "reading"], &ratio_rows, 2)?;
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
        // Round 2 (9.0 against 4.0) puts the bound across 1.0.
        assert_eq!(c.ratios[0].verdict(), "strata 2.00x faster (inside noise)");
        let r = Ratio { unit: Unit::GigabytesPerSecond, noise: None, ..c.ratios[0].clone() };
        assert_eq!(r.verdict(), "strata 2.00x slower");
    }

    #[test]
    fn noise_bound_pairs_rounds_when_it_can() {
        // Round i of each tool: ratios 0.5, 0.8, 0.4.
        let n = Noise::of(&[1.0, 4.0, 2.0], &[2.0, 5.0, 5.0]).unwrap();
        assert_eq!((n.low, n.high, n.method), (0.4, 0.8, NoiseMethod::PairedRounds));
        assert!(!n.straddles_one());
        // Unequal counts: worst and best pairings, 1/5 to 4/2.
        let n = Noise::of(&[1.0, 4.0], &[2.0, 5.0, 5.0]).unwrap();
        assert_eq!((n.low, n.high, n.method), (0.2, 2.0, NoiseMethod::Extremes));
        assert!(n.straddles_one());
        assert!(Noise::of(&[], &[1.0]).is_none());
        assert!(Noise::of(&[1.0], &[0.0]).is_none());
    }

    #[test]
    fn ratios_carry_their_bound_and_say_when_inside_noise() {
        let mut c = Case::new("c");
        for (tool, samples) in [("a", [1.0, 1.1, 0.9]), ("b", [1.0, 1.0, 1.0]), ("c", [2.0, 2.0, 2.5])] {
            let mut m = Measurement::new(tool, tool, Unit::Seconds);
            samples.iter().for_each(|s| m.push(*s));
            c.measurements.push(m);
        }
        c.add_ratio("a", "b");
        c.add_ratio("a", "c");
        let r = &c.ratios[0];
        assert_eq!(fmt_ratio(r.value, r.noise.as_ref()), "1.00× [0.90–1.10]");
        assert!(r.inside_noise());
        assert_eq!(r.verdict(), "even (inside noise)");
        let r = &c.ratios[1];
        assert_eq!(fmt_ratio(r.value, r.noise.as_ref()), "0.50× [0.36–0.55]");
        assert_eq!(r.verdict(), "a 2.00x faster");
        // A ratio built by hand gets its bound from the case's samples.
        c.ratios.push(Ratio { noise: None, ..c.ratios[1].clone() });
        c.ratios.push(Ratio { noise: None, denominator: "c − x".into(), ..c.ratios[1].clone() });
        c.fill_noise();
        assert_eq!(c.ratios[2].noise, c.ratios[1].noise);
        assert!(c.ratios[3].noise.is_none());
        let json = serde_json::to_value(&c.ratios[1]).unwrap();
        assert_eq!(json["noise"]["method"], "paired_rounds");
    }

    #[test]
    fn table_aligns_text_left_and_numbers_right() {
        let mut out = Vec::new();
        let rows = vec![vec!["a".into(), "1.0 s".into()], vec!["long".into(), "10.0 s".into()]];
        print_table(&mut out, &["name", "t"], &rows, 1).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "name       t\na      1.0 s\nlong  10.0 s\n");
    }
}
