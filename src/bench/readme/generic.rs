//! Tables made from the generic results of `strata bench` (a
//! [`Report`](crate::bench::Report) as JSON: suites, cases, measurements
//! with every sample, ratios), so a new bench or a new row appears in the
//! README without code here.
//!
//! Every ratio is shown with its noise bound, recomputed from the samples
//! the file keeps ([`Noise::of`]), so files written before bounds were
//! stored read the same as new ones; a bound containing 1.0 is marked
//! *inside noise*.
//!
//! The engine table pairs, within each case, a measurement on the io_uring
//! engine with one on the sync engine. A measurement's engine is the case
//! fact `"<tool> engine"` when there is one (`io_uring` or `sync`: the
//! way for a bench to say it), else read from its command line: `io_uring`
//! in it means io_uring, `sync engine` means sync; else from the tool's
//! name: a `-`-separated word `uring`, or `sync`/`plain` (the twin).

use super::super::harness::{fmt_ratio, Noise};
use super::fmt3_ns;
use serde_json::Value;

/// A ratio as the table shows it: value, bound, reading.
struct Shown {
    value: f64,
    noise: Option<Noise>,
}

impl Shown {
    fn of(n: &Value, d: &Value) -> Option<Shown> {
        let (a, b) = (median(n)?, median(d)?);
        (b > 0.0).then(|| Shown { value: a / b, noise: Noise::of(&samples(n), &samples(d)) })
    }

    /// `1.62× [1.48–1.77]`, then `(inside noise)` when the bound holds 1.
    fn text(&self) -> String {
        let mut s = fmt_ratio(self.value, self.noise.as_ref());
        if self.noise.is_some_and(|n| n.straddles_one()) {
            s.push_str(" (inside noise)");
        }
        s
    }
}

fn median(m: &Value) -> Option<f64> {
    m["summary"]["median"].as_f64()
}

fn samples(m: &Value) -> Vec<f64> {
    m["samples"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

fn arr(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// A median with its unit: `6.5 ms`, `1.78 GB/s`.
fn fmt_median(m: &Value) -> String {
    match median(m) {
        None => "–".to_owned(),
        Some(v) if m["unit"] == "gigabytes_per_second" => format!("{v:.3} GB/s"),
        Some(v) => fmt3_ns(v * 1e9),
    }
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | ").replace('\n', " "))
}

/// Escapes `|` inside a cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn measurement<'a>(case: &'a Value, tool: &str) -> Option<&'a Value> {
    arr(&case["measurements"]).iter().find(|m| m["tool"] == tool)
}

/// A suite's table: one row per case, one column per tool (in the order
/// first measured), medians; then the case's ratios with their bounds.
/// `None` when the file has no suite of that name.
pub(super) fn suite_table(v: &Value, suite: &str) -> Option<String> {
    let s = arr(&v["suites"]).iter().find(|s| s["name"] == suite)?;
    let mut tools: Vec<&str> = Vec::new();
    for case in arr(&s["cases"]) {
        for m in arr(&case["measurements"]) {
            if !tools.contains(&str_of(&m["tool"])) {
                tools.push(str_of(&m["tool"]));
            }
        }
    }
    let mut head = vec!["case".to_owned()];
    head.extend(tools.iter().map(|t| format!("`{}`", cell(t))));
    head.push("ratios of medians [noise bound]".to_owned());
    let mut t = row(&head);
    t.push_str(&row(&vec!["---".to_owned(); head.len()]));
    for case in arr(&s["cases"]) {
        let mut cells = vec![cell(str_of(&case["name"]))];
        cells.extend(tools.iter().map(|tool| measurement(case, tool).map_or_else(|| "–".to_owned(), fmt_median)));
        let ratios: Vec<String> = arr(&case["ratios"])
            .iter()
            .filter_map(|r| {
                let (n, d) = (str_of(&r["numerator"]), str_of(&r["denominator"]));
                let shown = Shown::of(measurement(case, n)?, measurement(case, d)?)?;
                Some(format!("{} / {}: {}", cell(n), cell(d), shown.text()))
            })
            .collect();
        cells.push(if ratios.is_empty() { "–".to_owned() } else { ratios.join("; ") });
        t.push_str(&row(&cells));
    }
    Some(t)
}

/// The I/O engine a measurement ran on, if it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Uring,
    Sync,
}

fn engine(case: &Value, m: &Value) -> Option<Engine> {
    let fact = &case["facts"][format!("{} engine", str_of(&m["tool"]))];
    let text = if fact.is_string() { str_of(fact) } else { str_of(&m["command"]) };
    if text.contains("io_uring") {
        Some(Engine::Uring)
    } else if text.contains("sync engine") || text == "sync" {
        Some(Engine::Sync)
    } else {
        engine_of_tool(str_of(&m["tool"]))
    }
}

/// The engine a tool's name states, as the benches name their engine rows:
/// a `-`-separated word `uring` (`strata-uring-writer`, `uring`), or
/// `sync`/`plain` (`strata-sync-writer`, `plain`: the syscall twin).
fn engine_of_tool(tool: &str) -> Option<Engine> {
    let words: Vec<&str> = tool.split('-').collect();
    if words.contains(&"uring") {
        Some(Engine::Uring)
    } else if words.contains(&"sync") || words.contains(&"plain") {
        Some(Engine::Sync)
    } else {
        None
    }
}

/// The filesystem a case ran on: the first word of its `fs` fact, else a
/// filesystem named in the case name.
fn fs_of(case: &Value) -> String {
    if let Some(fs) = case["facts"]["fs"].as_str().and_then(|f| f.split_whitespace().next()) {
        return fs.to_owned();
    }
    let name = str_of(&case["name"]);
    ["xfs", "ext4", "btrfs", "tmpfs"]
        .iter()
        .find(|f| name.split_whitespace().any(|w| w == **f))
        .map_or_else(|| "–".to_owned(), |f| (*f).to_owned())
}

/// `warm` or `cold`: the first word of the `cache` fact (with `NOT
/// proven` kept), else a word of the case name.
fn cache_of(case: &Value) -> String {
    if let Some(c) = case["facts"]["cache"].as_str() {
        let word = c.split_whitespace().next().map_or("–", |w| w.trim_end_matches([':', ',', ';']));
        return if c.contains("NOT proven") { format!("{word} (not proven)") } else { word.to_owned() };
    }
    let name = str_of(&case["name"]);
    ["warm", "cold"]
        .iter()
        .find(|w| name.split_whitespace().any(|x| x == **w))
        .map_or_else(|| "warm".to_owned(), |w| (*w).to_owned())
}

/// The path a case measures: the suite, and what is left of the case's
/// name once its filesystem and cache words are taken out.
fn path_of(suite: &str, case: &Value) -> String {
    let rest: Vec<&str> = str_of(&case["name"])
        .split_whitespace()
        .filter(|w| !["xfs", "ext4", "btrfs", "tmpfs", "warm", "cold", "on"].contains(w))
        .collect();
    if rest.is_empty() {
        suite.to_owned()
    } else {
        format!("{suite}: {}", rest.join(" "))
    }
}

/// Every (io_uring, sync) pair of a case: the pairs its ratios name
/// (either way round), else the only io_uring and the only sync
/// measurement when there is one of each.
fn engine_pairs(case: &Value) -> Vec<(&Value, &Value)> {
    let mut pairs = Vec::new();
    for r in arr(&case["ratios"]) {
        let (Some(n), Some(d)) =
            (measurement(case, str_of(&r["numerator"])), measurement(case, str_of(&r["denominator"])))
        else {
            continue;
        };
        let pair = match (engine(case, n), engine(case, d)) {
            (Some(Engine::Uring), Some(Engine::Sync)) => (n, d),
            (Some(Engine::Sync), Some(Engine::Uring)) => (d, n),
            _ => continue,
        };
        if !pairs.iter().any(|(u, s): &(&Value, &Value)| u["tool"] == pair.0["tool"] && s["tool"] == pair.1["tool"]) {
            pairs.push(pair);
        }
    }
    if pairs.is_empty() {
        let on = |e| arr(&case["measurements"]).iter().filter(|m| engine(case, m) == Some(e)).collect::<Vec<_>>();
        if let ([u], [s]) = (on(Engine::Uring).as_slice(), on(Engine::Sync).as_slice()) {
            pairs.push((*u, *s));
        }
    }
    pairs
}

/// `engines`: path × engine × fs × warm/cold from every case, in every
/// file, that measured one path on both engines. The ratio is of times
/// (io_uring / sync; a throughput ratio is turned round), below 1 when
/// io_uring is faster.
pub(super) fn engine_table(files: &[(String, Value)]) -> String {
    let mut t = row(&[
        "path".into(),
        "fs".into(),
        "cache".into(),
        "io_uring".into(),
        "sync".into(),
        "io_uring / sync time [noise bound]".into(),
        "results file".into(),
    ]);
    t.push_str("|---|---|---|---|---|---|---|\n");
    for (file, v) in files {
        let name = file.rsplit('/').next().unwrap_or(file);
        for s in arr(&v["suites"]) {
            for case in arr(&s["cases"]) {
                for (u, sy) in engine_pairs(case) {
                    let Some(mut shown) = Shown::of(u, sy) else { continue };
                    if u["unit"] == "gigabytes_per_second" {
                        shown.value = 1.0 / shown.value;
                        shown.noise =
                            shown.noise.map(|n| Noise { low: 1.0 / n.high, high: 1.0 / n.low, method: n.method });
                    }
                    let label = |m: &Value| format!("{} (`{}`)", fmt_median(m), cell(str_of(&m["tool"])));
                    t.push_str(&row(&[
                        cell(&path_of(str_of(&s["name"]), case)),
                        fs_of(case),
                        cache_of(case),
                        label(u),
                        label(sy),
                        shown.text(),
                        format!("`{name}`"),
                    ]));
                }
            }
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(tool: &str, command: &str, samples: &[f64]) -> Value {
        let s = crate::bench::harness::Summary::of(samples).unwrap();
        serde_json::json!({"tool": tool, "command": command, "unit": "seconds", "samples": samples,
            "summary": {"median": s.median, "min": s.min, "max": s.max}})
    }

    fn report() -> Value {
        serde_json::json!({"suites": [{"name": "usage", "cases": [
            {"name": "xfs cold", "facts": {"fs": "xfs (rw)", "cache": "cold proven (mincore)"},
             "measurements": [m("uring", "tree_usage (io_uring engine)", &[0.1, 0.2, 0.3]),
                              m("sync", "tree_usage (sync engine)", &[0.2, 0.2, 0.2]),
                              m("du", "du -sb", &[0.4, 0.4, 0.5])],
             "ratios": [{"numerator": "sync", "denominator": "du"}, {"numerator": "sync", "denominator": "uring"}]},
            {"name": "blob on ext4", "facts": {"w engine": "io_uring", "p engine": "sync"},
             "measurements": [m("w", "write", &[1.0, 1.0]), m("p", "pwrite", &[2.0, 2.0])], "ratios": []}]}]})
    }

    #[test]
    fn suite_table_has_medians_and_bounded_ratios() {
        let t = suite_table(&report(), "usage").unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "| case | `uring` | `sync` | `du` | `w` | `p` | ratios of medians [noise bound] |");
        assert_eq!(
            lines[2],
            "| xfs cold | 200 ms | 200 ms | 400 ms | – | – | \
             sync / du: 0.50× [0.40–0.50]; sync / uring: 1.00× [0.67–2.00] (inside noise) |"
        );
        assert!(suite_table(&report(), "nosuch").is_none());
    }

    #[test]
    fn engine_table_pairs_engines_by_ratio_or_by_fact() {
        let t = engine_table(&[("benches/results/x.json".into(), report())]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        // The ratio was sync / uring: turned round to io_uring / sync.
        assert_eq!(
            lines[2],
            "| usage | xfs | cold | 200 ms (`uring`) | 200 ms (`sync`) | 1.00× [0.50–1.50] (inside noise) | `x.json` |"
        );
        assert_eq!(lines[3], "| usage: blob | ext4 | warm | 1 s (`w`) | 2 s (`p`) | 0.50× [0.50–0.50] | `x.json` |");
    }

    #[test]
    fn a_tool_name_says_its_engine_when_nothing_else_does() {
        assert_eq!(engine_of_tool("strata-uring-writer"), Some(Engine::Uring));
        assert_eq!(engine_of_tool("uring"), Some(Engine::Uring));
        assert_eq!(engine_of_tool("strata-sync-writer"), Some(Engine::Sync));
        assert_eq!(engine_of_tool("plain"), Some(Engine::Sync));
        assert_eq!(engine_of_tool("sha256sum"), None);
        assert_eq!(engine_of_tool("strata-inline-blob-hash"), None);
        assert_eq!(engine_of_tool("during"), None);
    }
}
