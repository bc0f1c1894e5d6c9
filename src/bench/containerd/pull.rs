//! The pull and start cases: `ctr images pull` of the bench's 5-layer
//! image into strata's proxy snapshotter, overlayfs and native, beside
//! `strata pull`; `ctr run --rm … /bin/true` on strata and overlayfs.

use super::super::harness::{time, Case, Measurement, Unit};
use super::super::run::{pipeline, syncfs};
use super::super::start::os;
use super::super::{pull, rotation, BenchError, Scale};
use super::{fs_fact, Setup};
use std::ffi::OsString;

/// containerd's snapshotters in the pull case, by `--snapshotter` name.
const CTR_SNAPSHOTTERS: [&str; 3] = ["strata", "overlayfs", "native"];

/// The rows of a `ctr … ls`-style table after its header.
fn rows(text: &str) -> Vec<&str> {
    text.lines().skip(1).filter(|l| !l.trim().is_empty()).collect()
}

/// Removes `image` and lets containerd's garbage collector take its
/// content and its snapshots in `snapshotter`; fails if any is left, so
/// that every round starts from nothing.
fn remove_image(s: &Setup, snapshotter: &str, image: &str) -> Result<(), BenchError> {
    s.cd.run(&["images", "rm", "--sync", image])?;
    let snapshots = s.cd.run(&["snapshots", "--snapshotter", snapshotter, "ls"])?;
    let content = s.cd.run(&["content", "ls", "-q"])?;
    if !rows(&snapshots).is_empty() || !content.trim().is_empty() {
        return Err(BenchError::Unavailable {
            what: format!("a clean start for ctr images pull --snapshotter {snapshotter}"),
            reason: format!("left after images rm --sync: snapshots {snapshots:?}, content {content:?}"),
        });
    }
    Ok(())
}

/// Pull + unpack from an empty store, timed with a `syncfs(2)` of the
/// filesystem everything lands on; the store is emptied again after each
/// sample (not timed).
pub(super) fn pull_case(s: &Setup) -> Result<Case, BenchError> {
    let mb = (pull::layer_bytes(s.opts.scale) * pull::LAYERS as u64) >> 20;
    let mut case = Case::new(format!("pull {} layers, {mb} MiB", pull::LAYERS));
    case.fact("fs", fs_fact(s.work));
    case.fact("image", s.image.clone());
    case.fact("strata", "the proxy's overlay driver, root on the same XFS as containerd's");
    case.fact("registry", "docker-registry on loopback, storage on the same XFS");
    let mut argvs: Vec<Vec<OsString>> = Vec::new();
    for sn in CTR_SNAPSHOTTERS {
        let command = format!("ctr images pull --plain-http --snapshotter {sn}");
        case.measurements.push(Measurement::new(sn, &command, Unit::Seconds));
        argvs.push(s.cd.ctr(&["images", "pull", "--plain-http", "--snapshotter", sn, &s.image]));
    }
    let root = s.work.join("strata-pull-root");
    let mut strata_pull = vec![s.strata.as_os_str().to_owned(), "--root".into(), root.clone().into_os_string()];
    strata_pull.extend(os(&["pull", "-q", &s.image]));
    case.measurements.push(Measurement::new("strata-pull", "strata pull (its own parallel apply)", Unit::Seconds));
    argvs.push(strata_pull);
    for round in 0..=s.opts.runs {
        for i in rotation(argvs.len(), round) {
            let (res, secs) = time(|| -> Result<(), BenchError> {
                pipeline(std::slice::from_ref(&argvs[i]))?;
                if s.opts.sync {
                    syncfs(s.work)?;
                }
                Ok(())
            });
            res?;
            if round > 0 {
                case.measurements[i].push(secs);
            }
            match CTR_SNAPSHOTTERS.get(i) {
                Some(sn) => remove_image(s, sn, &s.image)?,
                None => {
                    let _ = std::fs::remove_dir_all(&root);
                }
            }
        }
        s.opts.progress(&format!("containerd pull: round {round}/{}", s.opts.runs));
    }
    case.add_ratio("strata", "overlayfs");
    case.add_ratio("strata", "native");
    case.add_ratio("strata-pull", "overlayfs");
    Ok(case)
}

/// `ctr run --rm` of busybox's `/bin/true`: create the container and its
/// snapshot, start the task through the runc shim, wait, delete both.
pub(super) fn start_case(s: &Setup) -> Result<Case, BenchError> {
    let mut case = Case::new("ctr run --rm /bin/true");
    case.fact("fs", fs_fact(s.work));
    case.fact("image", format!("{} (busybox-static, one layer)", s.busybox));
    let snapshotters = ["strata", "overlayfs"];
    for sn in snapshotters {
        s.cd.run(&["images", "pull", "--plain-http", "--snapshotter", sn, &s.busybox])?;
        let command = format!("ctr run --rm --snapshotter {sn} busybox /bin/true (--fifo-dir outside /run)");
        case.measurements.push(Measurement::new(sn, &command, Unit::Seconds));
    }
    let runs = match s.opts.scale {
        Scale::Full => s.opts.runs.max(20),
        Scale::Quick => s.opts.runs.max(10),
        Scale::Tiny => s.opts.runs,
    };
    let mut n = 0;
    for round in 0..=runs {
        for i in rotation(snapshotters.len(), round) {
            n += 1;
            let id = format!("bench-start-{n}");
            let fifo = s.fifo_dir.display().to_string();
            let argv = s.cd.ctr(&[
                "run",
                "--rm",
                "--fifo-dir",
                &fifo,
                "--snapshotter",
                snapshotters[i],
                &s.busybox,
                &id,
                "/bin/true",
            ]);
            let (res, secs) = time(|| pipeline(&[argv]));
            res?;
            if round > 0 {
                case.measurements[i].push(secs);
            }
        }
        s.opts.progress(&format!("containerd start: round {round}/{runs}"));
    }
    case.add_ratio("strata", "overlayfs");
    Ok(case)
}
