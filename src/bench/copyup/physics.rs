//! The physics check: what the measurements say about the expected
//! behaviour of each driver, stated from the data (never assumed), with
//! the reading flagged when the data disagree. Pure.
//!
//! Expectations, and why:
//! * overlay on ext4: copy_up copies the whole file (ext4 has no reflink,
//!   so overlayfs falls back from `vfs_clone_file_range` to
//!   `vfs_copy_file_range`/splice) and fsyncs it (`ovl_copy_up_file`,
//!   unless mounted `volatile`): cost proportional to size.
//! * overlay on XFS (reflink=1) and btrfs: upper and lower share the
//!   filesystem, so the copy is a clone — metadata only: flat.
//! * metacopy=on: chmod/chown copy up the inode only: flat.
//! * copy driver, btrfs, dm-thin: no copy_up at all on first write
//!   (the copy happened at create, or the filesystem/device does
//!   block-level CoW of the one block written): flat.
//!
//! A log-log slope of p50 against size (least squares, sizes ≥ 1 MiB when
//! two or more were measured) reads ≥ 0.6 as "grows ~linearly" and ≤ 0.25
//! as "flat" (1024x the bytes for at most 5.7x the time); in between is
//! reported as neither, and a disagreement's note adds what else the data
//! say (the comparison with a full copy, the metadata-only copy_up).
//!
//! A copy costs a fixed part (lookup, create, fsync of metadata: about a
//! millisecond) plus a part per byte, so when the matrix has no size
//! between 4 KiB and 64 MiB (`--quick`) the fixed part bends the log-log
//! slope below 0.6 though the cost is linear in the bytes. The linear
//! expectation therefore also accepts the affine reading: between the
//! smallest and the largest size (≥ 256x apart) the added time is at
//! least 80 % of the largest size's time and implies a copy rate no
//! faster than 20 GB/s (faster than that, no data were copied).

use super::stats::{fmt_ns, fmt_size, log_log_slope};
use super::{Cache, Op, Part, Record, Results};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Agrees,
    Disagrees,
    NotMeasured,
}

/// One expectation and what the data say about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub claim: String,
    pub verdict: Verdict,
    /// The numbers behind the verdict.
    pub measured: String,
    /// Why the data may disagree (only when they do).
    pub note: String,
}

/// Slopes at or above this read as linear growth.
const LINEAR: f64 = 0.6;
/// Slopes at or below this read as flat: 1024x the bytes cost at most
/// 5.7x the time.
const FLAT: f64 = 0.25;
/// The affine reading: a per-byte part at least this share of the largest
/// size's time…
const PER_BYTE_SHARE: f64 = 0.8;
/// …at an implied rate no faster than this (bytes/s): a data copy.
const COPY_RATE_MAX: f64 = 20e9;

/// The affine reading of a curve, from its end points.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Affine {
    /// Time of the smallest size: the fixed part, about.
    fixed_ns: u64,
    /// Bytes per second the added time implies.
    rate: f64,
    /// The added time's share of the largest size's time.
    share: f64,
}

#[allow(clippy::cast_precision_loss)]
fn affine(pts: &[(u64, u64)]) -> Option<Affine> {
    let (&(s0, t0), &(s1, t1)) = (pts.first()?, pts.last()?);
    if s1 < s0.saturating_mul(256) || t1 <= t0 {
        return None;
    }
    let added = (t1 - t0) as f64;
    Some(Affine { fixed_ns: t0, rate: (s1 - s0) as f64 / (added / 1e9), share: added / t1 as f64 })
}

impl Affine {
    fn linear(&self) -> bool {
        self.share >= PER_BYTE_SHARE && self.rate <= COPY_RATE_MAX
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Shape {
    Linear,
    Flat,
}

/// p50 against file size of one setup's first `op` at `cache`.
fn curve(r: &Results, setup: &str, op: Op, cache: Cache) -> Vec<(u64, u64)> {
    let mut pts: Vec<(u64, u64)> = r
        .records
        .iter()
        .filter(|x| x.part == Part::FirstWrite && x.setup == setup && x.operation == op && x.cache == cache)
        .filter(|x| x.sample_count > 0)
        .map(|x| (x.file_size, x.quantiles.p50_ns))
        .collect();
    pts.sort_unstable();
    pts
}

#[allow(clippy::cast_precision_loss)]
fn slope(pts: &[(u64, u64)]) -> Option<f64> {
    let big: Vec<(f64, f64)> = pts.iter().filter(|p| p.0 >= 1 << 20).map(|p| (p.0 as f64, p.1 as f64)).collect();
    if big.len() >= 2 {
        return log_log_slope(&big);
    }
    log_log_slope(&pts.iter().map(|p| (p.0 as f64, p.1 as f64)).collect::<Vec<_>>())
}

fn describe(pts: &[(u64, u64)]) -> String {
    pts.iter().map(|(s, ns)| format!("{}: {}", fmt_size(*s), fmt_ns(*ns))).collect::<Vec<_>>().join(", ")
}

fn size_check(r: &Results, setup: &str, op: Op, cache: Cache, shape: Shape, why_not: &str) -> Check {
    let expect = match shape {
        Shape::Linear => "grows ~linearly with file size",
        Shape::Flat => "stays ~flat across file sizes",
    };
    let claim = format!("{setup}: first {} ({} cache) {expect}", op.name(), cache.name());
    let pts = curve(r, setup, op, cache);
    let Some(s) = slope(&pts) else {
        let why = r.setups.iter().find(|a| a.name == setup).map_or("not in this run's matrix", |a| a.status.as_str());
        return Check { claim, verdict: Verdict::NotMeasured, measured: why.to_owned(), note: String::new() };
    };
    let aff = affine(&pts).filter(|a| a.linear() && s < LINEAR);
    let ok = match shape {
        Shape::Linear => s >= LINEAR || aff.is_some(),
        Shape::Flat => s <= FLAT,
    };
    let reading = if s >= LINEAR {
        "grows ~linearly".to_owned()
    } else if let Some(a) = aff {
        format!(
            "grows sub-linearly, but as fixed + per byte it is linear: {} fixed, then {:.2} GB/s, the per-byte part {:.0} % of the largest size's time",
            fmt_ns(a.fixed_ns),
            a.rate / 1e9,
            a.share * 100.0
        )
    } else if s <= FLAT {
        "~flat".to_owned()
    } else {
        "grows sub-linearly".to_owned()
    };
    Check {
        claim,
        verdict: if ok { Verdict::Agrees } else { Verdict::Disagrees },
        measured: format!("log-log slope {s:.2} ({reading}); p50 {}", describe(&pts)),
        note: if ok { String::new() } else { format!("{why_not}{}", evidence(r, setup, cache, &pts)) },
    }
}

/// What else the data say when a curve that should be flat grows: how it
/// compares with a full data copy (overlay on ext4) at the largest size,
/// and whether the setup's metadata-only copy_up (chmod, which copies the
/// data the same way without writing) is flat — which places the growth
/// in the clone or in the write after it.
fn evidence(r: &Results, setup: &str, cache: Cache, pts: &[(u64, u64)]) -> String {
    let mut out = String::new();
    let Some(&(size, ns)) = pts.last() else { return out };
    if setup != "overlay on ext4" {
        if let Some(&(_, ext4)) = curve(r, "overlay on ext4", Op::Write, cache).iter().find(|p| p.0 == size) {
            #[allow(clippy::cast_precision_loss)]
            let x = ext4 as f64 / ns.max(1) as f64;
            out.push_str(&format!(
                ". Measured here: at {} this is {x:.0}x cheaper than overlay on ext4 ({} vs {}), so the data are not copied",
                fmt_size(size),
                fmt_ns(ns),
                fmt_ns(ext4)
            ));
        }
    }
    let chmod = curve(r, setup, Op::Chmod, cache);
    if let Some(s) = slope(&chmod) {
        let flat = if s <= FLAT { "flat" } else { "not flat" };
        out.push_str(&format!(
            "; the same setup's chmod copy_up (same copy, no write) is {flat} (slope {s:.2}; {})",
            describe(&chmod)
        ));
        if s <= FLAT {
            out.push_str(", so the clone is cheap and the growth comes with the first write into the fresh clone");
        }
    }
    out
}

/// Labels of setups of `driver` (without driver options) that produced
/// first-write records.
fn setups_of(r: &Results, driver: &str) -> Vec<String> {
    let mut v: Vec<String> = r
        .records
        .iter()
        .filter(|x| x.part == Part::FirstWrite && x.driver == driver && x.driver_options.is_empty())
        .map(|x| x.setup.clone())
        .collect();
    v.sort();
    v.dedup();
    v
}

fn find(r: &Results, f: impl Fn(&Record) -> bool) -> Option<&Record> {
    r.records.iter().find(|x| f(x))
}

/// Every check the data allow.
pub fn checks(r: &Results) -> Vec<Check> {
    let mut out = Vec::new();
    let linear_note = "a full-data copy_up should scale with the bytes copied; a flatter curve means fixed costs \
                       (mount, lookup, fsync of metadata) dominate at these sizes or the device absorbed the \
                       writes in its cache";
    let flat_note = "copy_up should be a clone (vfs_clone_file_range) here; a growing curve means the kernel \
                     copied data instead — upper and lower on different filesystems, or reflink disabled";
    for cache in [Cache::Warm, Cache::Cold] {
        out.push(size_check(r, "overlay on ext4", Op::Write, cache, Shape::Linear, linear_note));
    }
    for fs in ["xfs", "btrfs"] {
        out.push(size_check(r, &format!("overlay on {fs}"), Op::Write, Cache::Warm, Shape::Flat, flat_note));
    }
    let meta = "overlay (metacopy=on) on ext4";
    out.push(size_check(
        r,
        meta,
        Op::Chmod,
        Cache::Warm,
        Shape::Flat,
        "metacopy=on should copy up only the inode; check that the mount shows metacopy=on",
    ));
    out.push(size_check(r, "overlay on ext4", Op::Chmod, Cache::Warm, Shape::Linear, linear_note));
    let block_note = "no copy_up happens on the first write here (the copy was made at create, or CoW is per \
                      block); a growing curve means the first write touched more than one block";
    for s in setups_of(r, "copy") {
        out.push(size_check(r, &s, Op::Write, Cache::Warm, Shape::Flat, block_note));
    }
    for driver in ["btrfs", "dmthin"] {
        let found = setups_of(r, driver);
        if found.is_empty() {
            let status = r
                .setups
                .iter()
                .find(|a| a.name.starts_with(&format!("{driver} on")))
                .map_or("not in this run's matrix".to_owned(), |a| a.status.clone());
            let what = if driver == "dmthin" { "costs one block (flat)" } else { "stays ~flat" };
            out.push(Check {
                claim: format!("{driver}: first write {what}"),
                verdict: Verdict::NotMeasured,
                measured: status,
                note: String::new(),
            });
        }
        for s in found {
            out.push(size_check(r, &s, Op::Write, Cache::Warm, Shape::Flat, block_note));
        }
    }
    // The second write is the plain write cost: far below a data copy_up.
    if let (Some(first), Some(second)) = (
        r.records
            .iter()
            .filter(|x| x.part == Part::FirstWrite && x.setup == "overlay on ext4" && x.operation == Op::Write)
            .filter(|x| x.cache == Cache::Warm)
            .max_by_key(|x| x.file_size),
        r.records
            .iter()
            .filter(|x| x.part == Part::SecondWrite && x.setup == "overlay on ext4" && x.cache == Cache::Warm)
            .max_by_key(|x| x.file_size),
    ) {
        let (f, s) = (first.quantiles.p50_ns, second.quantiles.p50_ns);
        out.push(Check {
            claim: format!(
                "overlay on ext4: the second write to a {} file costs a plain write",
                fmt_size(first.file_size)
            ),
            verdict: if s.saturating_mul(10) <= f { Verdict::Agrees } else { Verdict::Disagrees },
            measured: format!("first write p50 {}, second write p50 {}", fmt_ns(f), fmt_ns(s)),
            note: if s.saturating_mul(10) <= f {
                String::new()
            } else {
                "the second write should be ≥10x cheaper than a data copy_up; at small sizes the two are close".into()
            },
        });
    }
    // Container start with copy-on-write against a full copy.
    for s in setups_of(r, "overlay") {
        let start = find(r, |x| x.setup == s && x.operation == Op::Start && x.containers == 1);
        let copy = find(r, |x| x.setup == s && x.operation == Op::FullCopy);
        if let (Some(a), Some(b)) = (start, copy) {
            let ok = a.quantiles.p50_ns < b.quantiles.p50_ns;
            out.push(Check {
                claim: format!("{s}: starting a container is cheaper than copying its image"),
                verdict: if ok { Verdict::Agrees } else { Verdict::Disagrees },
                measured: format!(
                    "prepare+mount p50 {}, full copy of the {} image p50 {}",
                    fmt_ns(a.quantiles.p50_ns),
                    fmt_size(a.file_size),
                    fmt_ns(b.quantiles.p50_ns)
                ),
                note: if ok { String::new() } else { "the image may be too small for the copy to dominate".into() },
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::stats::Quantiles;
    use super::super::{Availability, Record};
    use super::*;

    fn rec(setup: &str, driver: &str, op: Op, size: u64, p50: u64) -> Record {
        Record {
            part: Part::FirstWrite,
            setup: setup.into(),
            driver: driver.into(),
            backing_fs: "ext4".into(),
            driver_options: Vec::new(),
            operation: op,
            file_size: size,
            layer_depth: 1,
            dir_depth: 1,
            cache: Cache::Warm,
            containers: 1,
            warmup: 0,
            sample_count: 1,
            samples_ns: vec![p50],
            quantiles: Quantiles::of(&[p50]).unwrap(),
            cache_check: None,
        }
    }

    fn results(records: Vec<Record>) -> Results {
        Results {
            suite: "copy-up".into(),
            started: String::new(),
            scale: "tiny".into(),
            elapsed_s: 0.0,
            environment: serde_json::Value::Null,
            method: Vec::new(),
            storage: None,
            setups: vec![Availability {
                name: "dmthin on ext4".into(),
                status: "not available in this build".into(),
                filesystem: None,
                storage: None,
            }],
            peers: Vec::new(),
            records,
            failures: Vec::new(),
            refused: Vec::new(),
        }
    }

    #[test]
    fn reads_linear_and_flat_and_flags_disagreement() {
        let (m, g) = (1u64 << 20, 64u64 << 20);
        let r = results(vec![
            rec("overlay on ext4", "overlay", Op::Write, m, 1_000_000),
            rec("overlay on ext4", "overlay", Op::Write, g, 60_000_000),
            // XFS growing: the data disagree with the expectation.
            rec("overlay on xfs", "overlay", Op::Write, m, 1_000_000),
            rec("overlay on xfs", "overlay", Op::Write, g, 50_000_000),
            rec("overlay on btrfs", "overlay", Op::Write, m, 100_000),
            rec("overlay on btrfs", "overlay", Op::Write, g, 110_000),
        ]);
        let c = checks(&r);
        let get = |claim: &str| c.iter().find(|x| x.claim.starts_with(claim)).unwrap();
        assert_eq!(get("overlay on ext4: first write (warm").verdict, Verdict::Agrees);
        let xfs = get("overlay on xfs");
        assert_eq!(xfs.verdict, Verdict::Disagrees);
        assert!(xfs.note.contains("cheaper than overlay on ext4 (50.00 ms vs 60.00 ms)"), "{}", xfs.note);
        assert_eq!(get("overlay on btrfs").verdict, Verdict::Agrees);
        assert!(get("overlay on btrfs").measured.contains("~flat"));
        assert_eq!(get("overlay on ext4: first write (cold").verdict, Verdict::NotMeasured);
        let dm = get("dmthin");
        assert_eq!((dm.verdict, dm.measured.as_str()), (Verdict::NotMeasured, "not available in this build"));
    }

    /// The quick matrix: 4 KiB and 64 MiB only. A fixed millisecond plus
    /// ~1.2 GB/s is a linear copy though its log-log slope is 0.41; the
    /// same end points with a cost that barely grows are not.
    #[test]
    fn a_fixed_cost_plus_a_copy_rate_reads_as_linear() {
        let (k, g) = (4u64 << 10, 64u64 << 20);
        let r = results(vec![
            rec("overlay on ext4", "overlay", Op::Write, k, 1_050_000),
            rec("overlay on ext4", "overlay", Op::Write, g, 54_060_000),
            rec("overlay on ext4", "overlay", Op::Chmod, k, 1_170_000),
            rec("overlay on ext4", "overlay", Op::Chmod, g, 2_000_000),
        ]);
        let c = checks(&r);
        let get = |claim: &str| c.iter().find(|x| x.claim.starts_with(claim)).unwrap();
        let w = get("overlay on ext4: first write (warm");
        assert_eq!(w.verdict, Verdict::Agrees, "{}", w.measured);
        assert!(w.measured.contains("log-log slope 0.41") && w.measured.contains("1.27 GB/s"), "{}", w.measured);
        // 64 MiB in 0.83 ms more: 81 GB/s and 41 % of the time, no copy.
        let m = get("overlay on ext4: first chmod");
        assert_eq!(m.verdict, Verdict::Disagrees, "{}", m.measured);
        // Points too close in size say nothing about the shape.
        assert_eq!(affine(&[(1 << 20, 1_000), (2 << 20, 1_000_000)]), None);
    }
}
