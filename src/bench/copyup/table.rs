//! The terminal side: a progress bar while the suite runs (a redrawn line
//! on a TTY, occasional plain lines otherwise) and the results table.

use super::stats::{fmt_ns, fmt_size};
use super::{Part, Results};
use crate::bench::harness::print_table;
use std::io::{self, IsTerminal, Write};
use std::time::Instant;

/// Progress over a known number of samples, on stderr.
pub struct Progress {
    total: usize,
    done: usize,
    /// `done` when the current case started.
    case_start: usize,
    label: String,
    tty: bool,
    quiet: bool,
    start: Instant,
    last_line: Instant,
}

impl Progress {
    pub fn new(total: usize, quiet: bool) -> Progress {
        let now = Instant::now();
        Progress {
            total: total.max(1),
            done: 0,
            case_start: 0,
            label: String::new(),
            tty: io::stderr().is_terminal(),
            quiet,
            start: now,
            last_line: now,
        }
    }

    /// Names the case being measured.
    pub fn label(&mut self, label: &str) {
        self.label = label.to_owned();
        self.case_start = self.done;
        if !self.tty && !self.quiet {
            eprintln!("[bench] copy-up {}/{} {}", self.done, self.total, self.label);
            self.last_line = Instant::now();
        }
        self.draw();
    }

    /// One sample done.
    pub fn tick(&mut self) {
        self.done = (self.done + 1).min(self.total);
        self.draw();
    }

    /// Marks a case done: its `planned` samples count whether they all ran
    /// or it stopped early.
    pub fn settle(&mut self, planned: usize) {
        self.done = self.done.max(self.case_start + planned).min(self.total);
        self.draw();
    }

    /// `n` planned samples that will not run.
    pub fn skip(&mut self, n: usize) {
        self.done = (self.done + n).min(self.total);
        self.draw();
    }

    /// A line above the bar.
    pub fn note(&mut self, msg: &str) {
        if self.quiet {
            return;
        }
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("[bench] {msg}");
        self.draw();
    }

    fn draw(&self) {
        if self.quiet || !self.tty {
            return;
        }
        let width = 30;
        let filled = self.done * width / self.total;
        let label: String = self.label.chars().take(50).collect();
        eprint!(
            "\r\x1b[2K[{}{}] {:>3}% {:>4}s {}",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.done * 100 / self.total,
            self.start.elapsed().as_secs(),
            label
        );
        let _ = io::stderr().flush();
    }

    pub fn finish(&mut self) {
        if self.tty && !self.quiet {
            eprintln!();
        }
    }
}

fn part_name(p: Part) -> &'static str {
    match p {
        Part::FirstWrite => "first write",
        Part::SecondWrite => "second write",
        Part::LayerDepth => "layer depth",
        Part::DirDepth => "dir depth",
        Part::ContainerStart => "start",
        Part::Peer => "peer",
    }
}

/// The results table: one row per record, with its sample count and
/// spread.
pub fn print(out: &mut impl Write, r: &Results) -> io::Result<()> {
    let env = &r.environment;
    writeln!(
        out,
        "copy_up on {} ({} x {}), strata {} ({} build), {} scale, {:.0} s",
        env["kernel"].as_str().unwrap_or("?"),
        env["cpus"],
        env["cpu_model"].as_str().unwrap_or("?"),
        env["strata_version"].as_str().unwrap_or("?"),
        env["strata_profile"].as_str().unwrap_or("?"),
        r.scale,
        r.elapsed_s
    )?;
    writeln!(out, "load average at start: {}\n", env["loadavg"].as_str().unwrap_or("?"))?;
    let rows: Vec<Vec<String>> = r
        .records
        .iter()
        .map(|rec| {
            let q = &rec.quantiles;
            vec![
                part_name(rec.part).to_owned(),
                rec.setup.clone(),
                if rec.containers > 1 {
                    format!("{} x{}", rec.operation.name(), rec.containers)
                } else {
                    rec.operation.name().to_owned()
                },
                fmt_size(rec.file_size),
                rec.layer_depth.to_string(),
                rec.dir_depth.to_string(),
                rec.cache.name().to_owned(),
                rec.sample_count.to_string(),
                fmt_ns(q.p50_ns),
                fmt_ns(q.p90_ns),
                fmt_ns(q.p99_ns),
                fmt_ns(q.max_ns),
            ]
        })
        .collect();
    print_table(
        out,
        &["part", "setup", "op", "size", "layers", "dirs", "cache", "n", "p50", "p90", "p99", "max"],
        &rows,
        3,
    )?;
    writeln!(out)?;
    if let Some(s) = &r.storage {
        writeln!(out, "storage: {s}")?;
    }
    for a in r.setups.iter().chain(&r.peers) {
        if let Some(f) = &a.storage {
            writeln!(out, "  {}: {}", a.name, f.describe())?;
        }
    }
    for a in r.setups.iter().chain(&r.peers) {
        if a.status != "measured" {
            writeln!(out, "{}: {}", a.name, a.status)?;
        }
    }
    for f in &r.refused {
        writeln!(out, "refused by the driver: {f}")?;
    }
    for f in &r.failures {
        writeln!(out, "FAILED {f}")?;
    }
    writeln!(out, "\nphysics check (report.html has the notes):")?;
    for c in super::physics::checks(r) {
        let verdict = match c.verdict {
            super::physics::Verdict::Agrees => "agrees      ",
            super::physics::Verdict::Disagrees => "DISAGREES   ",
            super::physics::Verdict::NotMeasured => "not measured",
        };
        writeln!(out, "  {verdict}  {}: {}", c.claim, c.measured)?;
    }
    Ok(())
}
