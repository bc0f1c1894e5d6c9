//! `strata bench readme`: the README's performance tables, regenerated
//! from committed results files, so that no figure there is typed by hand.
//!
//! A generated table sits between two marker comments that name its kind
//! and its results file (relative to the repository):
//!
//! ```text
//! <!-- bench-table start benches/results/2026-12-07-start-docker-profile.json -->
//! | strata run | … |
//! <!-- /bench-table -->
//! ```
//!
//! [`render`] replaces everything between each pair with the table made
//! from the file and leaves the rest of the text alone; the test
//! `readme_tables_match_their_results_files` runs it on the committed
//! README.md, so a hand-edited figure (or a results file changed without
//! regenerating) fails. Figures are medians (copy-up: p50) with three
//! significant figures.
//!
//! | kind | results file | table |
//! |---|---|---|
//! | `start` | a `bench start` run | one row: every runtime's `run --rm true` median |
//! | `copyup-first-write` | a `bench copy-up` run | first write by size, 64 MiB cold, second write; strata setups and peers |
//! | `copyup-depth` | a `bench copy-up` run | lookup / first write by layer depth and directory depth |
//! | `unpack`, `copy`, `diff`, `usage`, `load`, `build`, `pull`, `hash`, … (any suite name) | a `bench` run with that suite | one row per case: every tool's median, every ratio with its noise bound ([`generic`]) |
//! | `engines` | one or more `bench` runs (`<!-- bench-table engines FILE FILE … -->`) | path × engine × fs × warm/cold: every case that measured a path on io_uring and on the sync engine |

mod generic;

use super::copyup::{Cache, Op, Part, Record, Results};
use std::path::{Path, PathBuf};

/// What stops a README from being regenerated.
#[derive(Debug, thiserror::Error)]
pub enum ReadmeError {
    #[error("read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("README line {line}: {reason}")]
    Marker { line: usize, reason: String },
}

const OPEN: &str = "<!-- bench-table ";
const CLOSE: &str = "<!-- /bench-table -->";

/// A value with three significant figures and its unit: `6.5 ms`,
/// `90.3 µs`, `1.79 s`.
pub fn fmt3_ns(ns: f64) -> String {
    let (v, unit) = match ns {
        n if n < 1e3 => (n, "ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    format!("{s} {unit}")
}

/// Replaces every marked table in `readme` with the one generated from
/// its results file (paths relative to `repo`).
pub fn render(readme: &str, repo: &Path) -> Result<String, ReadmeError> {
    let mut out = String::with_capacity(readme.len());
    let mut lines = readme.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let Some(spec) = line.trim().strip_prefix(OPEN).and_then(|r| r.strip_suffix("-->")) else {
            continue;
        };
        let mut words = spec.split_whitespace();
        let kind = words.next();
        let files: Vec<&str> = words.collect();
        let (Some(kind), Some(file)) = (kind, files.first()) else {
            return Err(ReadmeError::Marker {
                line: n + 1,
                reason: "expected `<!-- bench-table KIND FILE -->`".into(),
            });
        };
        if kind == "engines" {
            out.push_str(&engines(&files, repo)?);
        } else if files.len() > 1 {
            return Err(ReadmeError::Marker { line: n + 1, reason: format!("table kind {kind:?} takes one file") });
        } else {
            out.push_str(&table(kind, &repo.join(file), n + 1)?);
        }
        // Skip the old table up to the closing marker, which is kept.
        loop {
            match lines.next() {
                Some((_, l)) if l.trim() == CLOSE => {
                    out.push_str(l);
                    out.push('\n');
                    break;
                }
                Some(_) => {}
                None => return Err(ReadmeError::Marker { line: n + 1, reason: format!("no `{CLOSE}` after it") }),
            }
        }
    }
    if !readme.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

fn read_json(path: &Path) -> Result<serde_json::Value, ReadmeError> {
    let bytes = std::fs::read(path).map_err(|source| ReadmeError::Read { path: path.to_owned(), source })?;
    serde_json::from_slice(&bytes).map_err(|e| ReadmeError::Parse { path: path.to_owned(), reason: e.to_string() })
}

/// The `engines` table over `files` (relative to `repo`).
fn engines(files: &[&str], repo: &Path) -> Result<String, ReadmeError> {
    let mut loaded = Vec::new();
    for f in files {
        loaded.push(((*f).to_owned(), read_json(&repo.join(f))?));
    }
    Ok(generic::engine_table(&loaded))
}

fn table(kind: &str, path: &Path, line: usize) -> Result<String, ReadmeError> {
    let bytes = std::fs::read(path).map_err(|source| ReadmeError::Read { path: path.to_owned(), source })?;
    let parse = |reason: String| ReadmeError::Parse { path: path.to_owned(), reason };
    match kind {
        "start" => {
            let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| parse(e.to_string()))?;
            start_table(&v).ok_or_else(|| parse("no `start` suite with a `run --rm true` case".into()))
        }
        "copyup-first-write" | "copyup-depth" => {
            let r: Results = serde_json::from_slice(&bytes).map_err(|e| parse(e.to_string()))?;
            Ok(if kind == "copyup-depth" { depth_table(&r) } else { first_write_table(&r) })
        }
        _ => {
            let v = read_json(path)?;
            if v["suites"].is_array() {
                generic::suite_table(&v, kind).ok_or_else(|| parse(format!("no {kind:?} suite in it")))
            } else {
                Err(ReadmeError::Marker { line, reason: format!("unknown table kind {kind:?}") })
            }
        }
    }
}

fn row(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// `start`: the `run --rm true` case of a `bench start` results.json, one
/// column per tool in the order strata, strata-runc, crun, runc, podman,
/// docker (those measured).
fn start_table(v: &serde_json::Value) -> Option<String> {
    let suite = v["suites"].as_array()?.iter().find(|s| s["name"] == "start")?;
    let case = suite["cases"].as_array()?.iter().find(|c| c["name"] == "run --rm true")?;
    let heads = [
        ("strata", "strata run"),
        ("strata-runc", "strata-runc"),
        ("crun", "crun"),
        ("runc", "runc"),
        ("podman", "podman run --rm"),
        ("docker", "docker run --rm"),
    ];
    let mut head = Vec::new();
    let mut cells = Vec::new();
    for (tool, title) in heads {
        let m = case["measurements"].as_array()?.iter().find(|m| m["tool"] == tool);
        if let Some(median) = m.and_then(|m| m["summary"]["median"].as_f64()) {
            head.push(title.to_owned());
            cells.push(fmt3_ns(median * 1e9));
        }
    }
    let mut t = row(&head);
    t.push_str(&row(&vec!["---".to_owned(); head.len()]));
    t.push_str(&row(&cells));
    Some(t)
}

#[allow(clippy::cast_precision_loss)] // nanoseconds well below 2^53
fn p50(r: &Results, f: impl Fn(&Record) -> bool) -> String {
    r.records.iter().find(|x| f(x)).map_or_else(|| "–".to_owned(), |x| fmt3_ns(x.quantiles.p50_ns as f64))
}

/// Setups (in record order) with at least one record matching `f`.
fn setups(r: &Results, f: impl Fn(&Record) -> bool) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in r.records.iter().filter(|x| f(x)) {
        if !out.contains(&x.setup) {
            out.push(x.setup.clone());
        }
    }
    out
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// `copyup-first-write`: p50 of the first write (open + 1-byte pwrite),
/// warm, at 4 KiB, 1 MiB, 64 MiB, 1 GiB; cold at 64 MiB; the second write
/// at 64 MiB. strata's setups, then the peers.
fn first_write_table(r: &Results) -> String {
    let mut t = row(&[
        "setup".into(),
        "4 KiB".into(),
        "1 MiB".into(),
        "64 MiB".into(),
        "1 GiB".into(),
        "64 MiB cold".into(),
        "second write (64 MiB)".into(),
    ]);
    t.push_str("|---|---|---|---|---|---|---|\n");
    let writes = |x: &Record| matches!(x.part, Part::FirstWrite | Part::Peer) && x.operation == Op::Write;
    for setup in setups(r, writes) {
        let at = |part: Part, op: Op, size: u64, cache: Cache| {
            p50(r, |x| {
                (x.part == part || (part == Part::FirstWrite && x.part == Part::Peer))
                    && x.setup == setup
                    && x.operation == op
                    && x.file_size == size
                    && x.cache == cache
            })
        };
        let mut cells = vec![setup.clone()];
        for size in [4 * KIB, MIB, 64 * MIB, GIB] {
            cells.push(at(Part::FirstWrite, Op::Write, size, Cache::Warm));
        }
        cells.push(at(Part::FirstWrite, Op::Write, 64 * MIB, Cache::Cold));
        cells.push(at(Part::SecondWrite, Op::SecondWrite, 64 * MIB, Cache::Warm));
        t.push_str(&row(&cells));
    }
    t
}

/// `copyup-depth`: `lookup / first write` p50 by layer depth and by
/// directory depth, for every setup measured at depth.
fn depth_table(r: &Results) -> String {
    let depths = |part: Part, d: fn(&Record) -> usize| {
        let mut v: Vec<usize> = r.records.iter().filter(|x| x.part == part).map(d).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let layers = depths(Part::LayerDepth, |x| x.layer_depth);
    let dirs = depths(Part::DirDepth, |x| x.dir_depth);
    let mut head = vec!["setup".to_owned()];
    head.extend(layers.iter().map(|n| if *n == 1 { "1 layer".to_owned() } else { n.to_string() }));
    head.extend(dirs.iter().enumerate().map(|(i, n)| if i == 0 { format!("dir depth {n}") } else { n.to_string() }));
    let mut t = row(&head);
    t.push_str(&row(&vec!["---".to_owned(); head.len()]));
    for setup in setups(r, |x| x.part == Part::LayerDepth) {
        let pair = |part: Part, want: usize, d: fn(&Record) -> usize| {
            let one = |op: Op| p50(r, |x| x.part == part && x.setup == setup && x.operation == op && d(x) == want);
            format!("{} / {}", one(Op::Lookup), one(Op::Write))
        };
        let mut cells = vec![setup.clone()];
        cells.extend(layers.iter().map(|n| pair(Part::LayerDepth, *n, |x| x.layer_depth)));
        cells.extend(dirs.iter().map(|n| pair(Part::DirDepth, *n, |x| x.dir_depth)));
        t.push_str(&row(&cells));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_significant_figures() {
        assert_eq!(fmt3_ns(6_501_598.0), "6.5 ms");
        assert_eq!(fmt3_ns(90_294.0), "90.3 µs");
        assert_eq!(fmt3_ns(186_023_978.0), "186 ms");
        assert_eq!(fmt3_ns(1_787_848_830.0), "1.79 s");
        assert_eq!(fmt3_ns(850.0), "850 ns");
    }

    #[test]
    fn markers_replace_only_their_table() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"suites":[{"name":"start","cases":[{"name":"run --rm true","measurements":[
            {"tool":"crun","summary":{"median":0.0329}},{"tool":"strata","summary":{"median":0.0272}}]}]}]}"#;
        std::fs::write(dir.path().join("r.json"), json).unwrap();
        let text = "intro\n<!-- bench-table start r.json -->\n| old | 1 ms |\n<!-- /bench-table -->\nafter 9 ms\n";
        let out = render(text, dir.path()).unwrap();
        assert_eq!(
            out,
            "intro\n<!-- bench-table start r.json -->\n| strata run | crun |\n| --- | --- |\n| 27.2 ms | 32.9 ms |\n\
             <!-- /bench-table -->\nafter 9 ms\n"
        );
        assert_eq!(render(&out, dir.path()).unwrap(), out);
        assert!(render("<!-- bench-table start r.json -->\n| x |\n", dir.path()).is_err());
        assert!(render("<!-- bench-table nosuch r.json -->\n<!-- /bench-table -->\n", dir.path()).is_err());
    }

    #[test]
    fn a_hand_edited_ratio_or_bound_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let json = r#"{"suites":[{"name":"pull","cases":[{"name":"5 layers","facts":{},"measurements":[
            {"tool":"strata","command":"strata pull","unit":"seconds","samples":[1.0,1.2,0.9],"summary":{"median":1.0}},
            {"tool":"skopeo","command":"skopeo copy","unit":"seconds","samples":[4.0,4.0,4.5],"summary":{"median":4.0}}],
            "ratios":[{"numerator":"strata","denominator":"skopeo"}]}]}]}"#;
        std::fs::write(dir.path().join("p.json"), json).unwrap();
        let text = "<!-- bench-table pull p.json -->\n<!-- /bench-table -->\n";
        let out = render(text, dir.path()).unwrap();
        assert!(out.contains("| 5 layers | 1 s | 4 s | strata / skopeo: 0.25× [0.20–0.30] |"), "{out}");
        assert_eq!(render(&out, dir.path()).unwrap(), out);
        for (from, to) in [("0.25×", "0.20×"), ("[0.20–0.30]", "[0.22–0.30]"), ("| 4 s |", "| 3.9 s |")] {
            let edited = out.replace(from, to);
            assert_ne!(render(&edited, dir.path()).unwrap(), edited, "editing {from} went unnoticed");
        }
        assert!(render("<!-- bench-table nosuite p.json -->\n<!-- /bench-table -->\n", dir.path()).is_err());
        assert!(render("<!-- bench-table pull p.json p.json -->\n<!-- /bench-table -->\n", dir.path()).is_err());
    }

    /// Every figure in README.md's marked tables is what its committed
    /// results file says: fails on a hand-edited figure. Regenerate with
    /// `strata bench readme`.
    #[test]
    fn readme_tables_match_their_results_files() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
        assert!(readme.contains(OPEN), "README.md has no generated tables");
        let fresh = render(&readme, repo).unwrap();
        assert!(fresh == readme, "README.md's tables differ from benches/results: run `strata bench readme`");
    }
}
