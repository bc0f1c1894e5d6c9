//! Runs the matrix: for each setup a test bed, its images, then every
//! case with a fresh container per sample.

use super::fixture::{deep_dir, write_file, Bed, Unavailable};
use super::ops::{self, fold_check};
use super::stats::Quantiles;
use super::table::Progress;
use super::{Availability, Cache, CacheCheck, Op, Params, Part, Record, Results, Setup};
use crate::bench::dataset::io_err;
use crate::bench::{BenchError, Options};
use std::path::Path;
use std::time::Instant;

/// What the method section of the report says.
fn method(p: &Params) -> Vec<String> {
    vec![
        "Each sample is a fresh container: an active snapshot prepared on the image through the driver's \
         snapshot contract and mounted with mount_all; it is unmounted and removed after the sample."
            .into(),
        "Only the system call(s) are timed: Instant (clock_gettime(CLOCK_MONOTONIC)) right before and after \
         open(O_WRONLY)+pwrite(1 byte) / open(O_APPEND)+write / truncate(0) / chmod / chown / rename / link; \
         close(2) and everything else is outside the window."
            .into(),
        format!("{} warm-up sample(s) per case are discarded; quantiles are nearest-rank over the rest.", p.warmup),
        "warm: the file is read through the container first (all pages verified resident with mincore); \
         cold: syncfs, then posix_fadvise(DONTNEED) on that file alone (the host's other caches are left \
         alone), then mincore verifies none of the file's pages is resident (the check's own lookup leaves \
         the file's dentry and inode cached). The scratch filesystem's loop device does direct I/O on its \
         backing file where the host allows it (else the backing file's pages are dropped too), and \
         mincore verifies none of the backing file's pages is in the host's cache before each cold call."
            .into(),
        p.target.cold_method().into(),
        "second_write: the same call again on the same file right after the first write (already copied up).".into(),
        "Layer depth: the file is in the bottom layer under N-1 empty layers; lookup = stat + open(O_RDONLY), \
         then the first write, on the same fresh container. Directory depth: the file under N nested \
         directories of one layer. Both warm."
            .into(),
        "Container start: prepare + mount of 1 or of 100 containers per sample, against a read/write copy of \
         the image's whole tree (copy_tree ReadWrite, what a driver without copy-on-write pays per container). \
         No syncfs in either."
            .into(),
        "Peers run `strata bench copy-up-probe` (the same timing code, a copied-in binary with its libraries) \
         inside their containers, one container per sample, warm cache, with the same warm-up and sample \
         counts as strata's cases, interleaved sample by sample with each other and with strata's overlay \
         on ext4 (the 'strata overlay on ext4' peer row); see the peers section."
            .into(),
    ]
}

/// Records of one case, built up sample by sample.
struct Acc {
    record: Record,
    check: Option<CacheCheck>,
}

impl Acc {
    #[allow(clippy::too_many_arguments)]
    fn new(
        part: Part,
        (setup, fs): (&Setup, &str),
        op: Op,
        size: u64,
        layers: usize,
        dirs: usize,
        cache: Cache,
        warmup: usize,
    ) -> Acc {
        Acc {
            record: Record {
                part,
                setup: setup.label_on(fs),
                driver: setup.driver.to_owned(),
                backing_fs: fs.to_owned(),
                driver_options: setup.options.iter().map(|s| (*s).to_owned()).collect(),
                operation: op,
                file_size: size,
                layer_depth: layers,
                dir_depth: dirs,
                cache,
                containers: 1,
                warmup,
                sample_count: 0,
                samples_ns: Vec::new(),
                quantiles: Quantiles::default(),
                cache_check: None,
            },
            check: None,
        }
    }

    fn finish(mut self) -> Record {
        self.record.sample_count = self.record.samples_ns.len();
        self.record.quantiles = Quantiles::of(&self.record.samples_ns).unwrap_or_default();
        self.record.cache_check = self.check;
        self.record
    }
}

fn size_image(size: u64) -> String {
    format!("size-{size}")
}

/// Builds the images a setup needs: one single-layer image per file size,
/// the deep stack, the deep directory tree and the start-up image.
fn build_images(bed: &Bed, setup: &Setup, p: &Params) -> Result<(), BenchError> {
    let mut sizes = p.sizes.clone();
    sizes.extend(p.big.iter().map(|b| b.0));
    for size in sizes {
        bed.layer(&size_image(size), None, Some(&|d: &Path| write_file(&d.join("f"), size)))?;
    }
    if setup.general() {
        let top = p.layer_depths.iter().copied().max().unwrap_or(1);
        bed.layer("depth-1", None, Some(&|d: &Path| write_file(&d.join("f"), 4096)))?;
        for n in 2..=top {
            bed.layer(&format!("depth-{n}"), Some(&format!("depth-{}", n - 1)), None)?;
        }
        let dirs = p.dir_depths.clone();
        bed.layer(
            "dirs",
            None,
            Some(&|d: &Path| {
                for depth in &dirs {
                    let dir = d.join(deep_dir(*depth));
                    std::fs::create_dir_all(&dir)?;
                    write_file(&dir.join("f"), 4096)?;
                }
                Ok(())
            }),
        )?;
        let (files, bytes) = p.start_image;
        let spec = crate::bench::dataset::TreeSpec { files, total_bytes: bytes, seed: 8 };
        bed.layer(
            "start",
            None,
            Some(&|d: &Path| {
                crate::bench::dataset::write_tree(&spec, &d.join("tree"))
                    .map(|_| ())
                    .map_err(|e| std::io::Error::other(e.to_string()))
            }),
        )?;
    }
    bed.sync()
}

/// One first-write case: `samples` fresh containers (after `warmup`).
fn first_write(
    bed: &Bed,
    a: &mut Acc,
    second: &mut Option<Acc>,
    samples: usize,
    pr: &mut Progress,
) -> Result<(), BenchError> {
    let (op, cache, size) = (a.record.operation, a.record.cache, a.record.file_size);
    for i in 0..a.record.warmup + samples {
        let c = bed.container(&size_image(size))?;
        let f = c.path().join("f");
        let r = ops::prepare(cache, bed.fs_path(), &f).map_err(io_err("prepare cache", &f))?;
        let backing = match cache {
            Cache::Cold => bed.evict_backing()?,
            Cache::Warm => None,
        };
        let ns = ops::time(op, &f).map_err(io_err(op.name(), &f))?;
        let again = match second {
            Some(_) => Some(ops::time(Op::SecondWrite, &f).map_err(io_err("second write", &f))?),
            None => None,
        };
        drop(c);
        if i >= a.record.warmup {
            a.record.samples_ns.push(ns);
            a.check = fold_check(a.check, r, backing, bed.direct_io());
            if let (Some(s), Some(ns)) = (second.as_mut(), again) {
                s.record.samples_ns.push(ns);
            }
        }
        pr.tick();
    }
    Ok(())
}

/// Layer or directory depth: lookup then first write on one container.
fn depth_case(
    bed: &Bed,
    image: &str,
    file: &Path,
    lookup: &mut Acc,
    write: &mut Acc,
    samples: usize,
    pr: &mut Progress,
) -> Result<(), BenchError> {
    for i in 0..lookup.record.warmup + samples {
        let c = bed.container(image)?;
        let f = c.path().join(file);
        let l = ops::time(Op::Lookup, &f).map_err(io_err("lookup", &f))?;
        let w = ops::time(Op::Write, &f).map_err(io_err("write", &f))?;
        drop(c);
        if i >= lookup.record.warmup {
            lookup.record.samples_ns.push(l);
            write.record.samples_ns.push(w);
        }
        pr.tick();
    }
    Ok(())
}

/// Container start: `n` containers prepared and mounted per sample.
fn start_case(bed: &Bed, a: &mut Acc, n: usize, samples: usize, pr: &mut Progress) -> Result<(), BenchError> {
    a.record.containers = n;
    for i in 0..a.record.warmup + samples {
        let t = Instant::now();
        let mut held = Vec::with_capacity(n);
        for _ in 0..n {
            held.push(bed.container("start")?);
        }
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        drop(held);
        if i >= a.record.warmup {
            a.record.samples_ns.push(ns);
        }
        pr.tick();
    }
    Ok(())
}

/// The baseline: a read/write copy of the image's whole tree.
fn full_copy_case(bed: &Bed, a: &mut Acc, samples: usize, pr: &mut Progress) -> Result<(), BenchError> {
    let view = bed.view("start")?;
    let copies = bed.fs_path().join("copies");
    for i in 0..a.record.warmup + samples {
        let dst = copies.join(i.to_string());
        std::fs::create_dir_all(&copies).map_err(io_err("mkdir", &copies))?;
        let t = Instant::now();
        crate::drivers::copy::tree::copy_tree(view.path(), &dst, crate::drivers::copy::tree::Strategy::ReadWrite)?;
        let ns = u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX);
        std::fs::remove_dir_all(&dst).map_err(io_err("remove copy", &dst))?;
        if i >= a.record.warmup {
            a.record.samples_ns.push(ns);
        }
        pr.tick();
    }
    Ok(())
}

/// How many samples (containers) a setup will take, for the progress bar.
fn planned(setup: &Setup, p: &Params) -> usize {
    let per = p.warmup + p.samples;
    let mut n = 0;
    for op in &p.ops {
        if setup.runs(*op) {
            n += p.sizes.len() * p.caches.len() * per;
        }
    }
    if let Some((_, ops, s)) = &p.big {
        n += ops.iter().filter(|o| setup.runs(**o)).count() * p.caches.len() * (p.warmup.min(1) + s);
    }
    if setup.general() {
        n += (p.layer_depths.len() + p.dir_depths.len()) * (p.warmup + p.depth_samples);
        n += p.start_counts.iter().map(|c| usize::from(*c == 1) + p.start_samples).sum::<usize>();
        n += 1 + p.start_samples;
    }
    n
}

/// Files a case's outcome: its records, or why it has none. A case that
/// fails leaves the setup's other cases running.
fn file_case(
    res: &mut Results,
    pr: &mut Progress,
    case: &str,
    outcome: Result<Vec<Record>, BenchError>,
    planned: usize,
) {
    match outcome {
        Ok(records) => res.records.extend(records),
        Err(BenchError::Unavailable { what, reason }) if what == super::fixture::REFUSED => {
            pr.note(&format!("{case}: refused by the driver: {reason}"));
            res.refused.push(format!("{case}: {reason}"));
        }
        Err(e) => {
            pr.note(&format!("{case}: failed: {e}"));
            res.failures.push(format!("{case}: {e}"));
        }
    }
    pr.settle(planned);
}

/// Everything one setup measures.
fn measure_setup(bed: &Bed, on: (&Setup, &str), p: &Params, pr: &mut Progress, res: &mut Results) {
    let (setup, fs) = on;
    let name = setup.label_on(fs);
    let mut cells: Vec<(u64, Op, usize, usize)> = Vec::new();
    for size in &p.sizes {
        for op in p.ops.iter().filter(|o| setup.runs(**o)) {
            cells.push((*size, *op, p.warmup, p.samples));
        }
    }
    if let Some((size, ops, samples)) = &p.big {
        for op in ops.iter().filter(|o| setup.runs(**o)) {
            cells.push((*size, *op, p.warmup.min(1), *samples));
        }
    }
    for (size, op, warmup, samples) in cells {
        for cache in &p.caches {
            let case = format!("{} {} {} {}", name, op.name(), super::stats::fmt_size(size), cache.name());
            pr.label(&case);
            let mut a = Acc::new(Part::FirstWrite, on, op, size, 1, 1, *cache, warmup);
            let mut second =
                (op == Op::Write).then(|| Acc::new(Part::SecondWrite, on, Op::SecondWrite, size, 1, 1, *cache, warmup));
            let outcome = first_write(bed, &mut a, &mut second, samples, pr)
                .map(|()| std::iter::once(a.finish()).chain(second.map(Acc::finish)).collect());
            file_case(res, pr, &case, outcome, warmup + samples);
        }
    }
    if !setup.general() {
        return;
    }
    let per = p.warmup + p.depth_samples;
    for depth in &p.layer_depths {
        let case = format!("{name} layer depth {depth}");
        pr.label(&case);
        let mut l = Acc::new(Part::LayerDepth, on, Op::Lookup, 4096, *depth, 1, Cache::Warm, p.warmup);
        let mut w = Acc::new(Part::LayerDepth, on, Op::Write, 4096, *depth, 1, Cache::Warm, p.warmup);
        let outcome = depth_case(bed, &format!("depth-{depth}"), Path::new("f"), &mut l, &mut w, p.depth_samples, pr)
            .map(|()| vec![l.finish(), w.finish()]);
        file_case(res, pr, &case, outcome, per);
    }
    for depth in &p.dir_depths {
        let case = format!("{name} directory depth {depth}");
        pr.label(&case);
        let mut l = Acc::new(Part::DirDepth, on, Op::Lookup, 4096, 1, *depth, Cache::Warm, p.warmup);
        let mut w = Acc::new(Part::DirDepth, on, Op::Write, 4096, 1, *depth, Cache::Warm, p.warmup);
        let outcome = depth_case(bed, "dirs", &deep_dir(*depth).join("f"), &mut l, &mut w, p.depth_samples, pr)
            .map(|()| vec![l.finish(), w.finish()]);
        file_case(res, pr, &case, outcome, per);
    }
    let size = p.start_image.1;
    for n in &p.start_counts {
        let case = format!("{name} start {n}");
        pr.label(&case);
        let warmup = usize::from(*n == 1);
        let mut a = Acc::new(Part::ContainerStart, on, Op::Start, size, 1, 1, Cache::Warm, warmup);
        let outcome = start_case(bed, &mut a, *n, p.start_samples, pr).map(|()| vec![a.finish()]);
        file_case(res, pr, &case, outcome, warmup + p.start_samples);
    }
    let case = format!("{name} full copy");
    pr.label(&case);
    let mut a = Acc::new(Part::ContainerStart, on, Op::FullCopy, size, 1, 1, Cache::Warm, 1);
    let outcome = full_copy_case(bed, &mut a, p.start_samples, pr).map(|()| vec![a.finish()]);
    file_case(res, pr, &case, outcome, 1 + p.start_samples);
}

/// Runs the suite. Setups that cannot run are recorded as such; a setup
/// that fails midway is recorded in `failures` and the rest still run.
pub fn run(opts: &Options, p: &Params) -> Results {
    let t0 = Instant::now();
    let started = chrono::Utc::now().to_rfc3339();
    let environment = crate::bench::env::Environment::probe(&[("scratch backing", &opts.scratch_dir)]);
    if cfg!(debug_assertions) {
        opts.progress("warning: a debug build; its numbers are not strata's (use --release)");
    }
    let total: usize = p.target.plan(&p.setups).iter().map(|(s, _)| planned(s, p)).sum::<usize>() + peers_planned(p);
    let mut pr = Progress::new(total, opts.quiet);
    let mut res = Results {
        suite: "copy-up".into(),
        started,
        scale: format!("{:?}", opts.scale).to_lowercase(),
        elapsed_s: 0.0,
        environment: serde_json::to_value(&environment).unwrap_or_default(),
        method: method(p),
        storage: Some(p.target.describe(&opts.scratch_dir)),
        setups: Vec::new(),
        peers: Vec::new(),
        records: Vec::new(),
        failures: Vec::new(),
        refused: Vec::new(),
    };
    for (setup, skip) in p.target.plan(&p.setups) {
        let setup = &setup;
        let fs = p.target.fstype(setup);
        let name = setup.label_on(&fs);
        if let Some(why) = skip {
            pr.skip(planned(setup, p));
            pr.note(&format!("{name}: skipped: {why}"));
            res.setups.push(Availability { name, status: format!("skipped: {why}"), filesystem: None, storage: None });
            continue;
        }
        pr.label(&format!("{name}: setting up"));
        let bed = match Bed::open(opts, &p.target, setup, p.fs_bytes) {
            Ok(b) => b,
            Err(u) => {
                let status = match u {
                    Unavailable::NotInBuild => "not available in this build".to_owned(),
                    Unavailable::Here(why) => format!("unavailable here: {why}"),
                };
                pr.skip(planned(setup, p));
                pr.note(&format!("{name}: {status}"));
                res.setups.push(Availability { name, status, filesystem: None, storage: None });
                continue;
            }
        };
        let filesystem = bed.describe_fs();
        let storage = bed.storage();
        // A filesystem on no block device (tmpfs, ramfs) keeps every page
        // in memory: POSIX_FADV_DONTNEED drops nothing, so there is no cold
        // case to measure, and none is labelled cold.
        let warm_only = matches!(p.target, super::storage::Target::On(_)) && storage.device.is_none();
        let here = if warm_only {
            let mut q = p.clone();
            q.caches.retain(|c| *c == Cache::Warm);
            pr.skip(planned(setup, p) - planned(setup, &q));
            q
        } else {
            p.clone()
        };
        let failed_before = res.failures.len();
        let status = match build_images(&bed, setup, &here) {
            Ok(()) => {
                measure_setup(&bed, (setup, &fs), &here, &mut pr, &mut res);
                let warm = if warm_only { format!(" (warm only: {fs} is on no block device)") } else { String::new() };
                match res.failures.len() - failed_before {
                    0 => format!("measured{warm}"),
                    n => format!("measured{warm}; {n} case(s) failed"),
                }
            }
            Err(e) => {
                pr.skip(planned(setup, p));
                res.failures.push(format!("{name}: building images: {e}"));
                format!("failed: {e}")
            }
        };
        res.setups.push(Availability { name, status, filesystem, storage: Some(storage) });
        drop(bed);
    }
    super::peers::run(opts, p, &mut pr, &mut res);
    pr.finish();
    res.elapsed_s = t0.elapsed().as_secs_f64();
    res
}

/// Samples the peers part will take.
fn peers_planned(p: &Params) -> usize {
    // strata's overlay on ext4 beside docker overlay2, podman overlay, podman vfs.
    4 * p.peer_sizes.len() * (p.warmup + p.samples)
}
