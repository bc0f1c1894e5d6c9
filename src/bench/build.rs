//! `bench build`: `strata build` against `buildah bud --layers` (overlay
//! storage, chroot isolation) on the same 10-step Dockerfile and context:
//! a cached rebuild (every step from the cache: the context is hashed and
//! each step looked up) and a `--no-cache` build (every step executed:
//! the context copied, a `RUN` in a container, the image committed).
//!
//! Both tools keep their stores on one scratch filesystem; the context
//! holds a busybox-static root filesystem and 500 small source files.

use super::harness::{time, Case, Measurement, Skip, Suite, Unit};
use super::run::pipeline;
use super::start::os;
use super::start::{rootfs, strata_binary, MountsUnder};
use super::{rotation, scratch, BenchError, Options, Scale};
use crate::scratch::FsKind;
use std::ffi::OsString;
use std::path::Path;

/// The Dockerfile: ten instructions, four of them filesystem steps.
const DOCKERFILE: &str = "FROM scratch
COPY rootfs/ /
ENV APP=/app
WORKDIR /app
COPY src/ ./src/
COPY config.ini /etc/app/
RUN echo built > /app/stamp
LABEL bench=strata
EXPOSE 8080
CMD [\"sh\"]
";

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BenchError {
    let path = path.to_owned();
    move |source| BenchError::Io { what, path, source }
}

/// The build context: rootfs, 500 source files of 4 KiB, a config file.
fn context(dir: &Path) -> Result<(), BenchError> {
    rootfs(dir)?;
    std::fs::write(dir.join(".dockerignore"), "rootfs.tar\n").map_err(io("write", dir))?;
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).map_err(io("write", dir))?;
    std::fs::write(dir.join("config.ini"), "[app]\nname=bench\n").map_err(io("write", dir))?;
    let mut rng = crate::rng::Rng::new(0x05ee_db1d);
    for i in 0..500 {
        let d = dir.join(format!("src/m{:02}", i % 20));
        std::fs::create_dir_all(&d).map_err(io("create", &d))?;
        let f = d.join(format!("f{i:03}.txt"));
        std::fs::write(&f, rng.bytes(4096)).map_err(io("write", &f))?;
    }
    Ok(())
}

/// Runs the build suite.
pub fn run(opts: &Options) -> Result<Suite, BenchError> {
    let mut suite = Suite::new(
        "build",
        "wall time of one whole `build` of a 10-step Dockerfile (stores on one scratch filesystem); lower is better",
    );
    let fs = scratch(opts, FsKind::Ext4, 4 << 30)?;
    let work = fs.path().to_owned();
    let ctx = work.join("ctx");
    context(&ctx)?;
    let strata = strata_binary().ok_or_else(|| BenchError::Unavailable {
        what: "strata".into(),
        reason: "no strata binary beside the benchmark (cargo build --release first)".into(),
    })?;
    let root = work.join("strata-root");
    let runroot = std::path::PathBuf::from(format!("/run/sbb-{}", std::process::id()));
    let _cleanup = (
        MountsUnder { dir: work.clone(), also: work.join("nothing") },
        MountsUnder { dir: runroot.clone(), also: runroot.clone() },
    );
    let strata_build = |extra: &[&str]| -> Vec<OsString> {
        let mut v = vec![strata.clone().into_os_string(), "--root".into(), root.clone().into_os_string()];
        v.extend(os(&["build", "-q", "-t", "bench:strata"]));
        v.extend(os(extra));
        v.push(ctx.clone().into_os_string());
        v
    };
    let buildah_root = work.join("buildah");
    let buildah_build = |extra: &[&str]| -> Vec<OsString> {
        let mut v = os(&["buildah", "--root"]);
        v.push(buildah_root.clone().into());
        v.push("--runroot".into());
        v.push(runroot.clone().into());
        v.extend(os(&["--storage-driver", "overlay", "bud", "--isolation", "chroot", "--layers", "-q"]));
        v.extend(os(&["-t", "bench:buildah"]));
        v.extend(os(extra));
        v.push(ctx.clone().into_os_string());
        v
    };
    let have_buildah = super::env::have_tool("buildah");
    let runs = match opts.scale {
        Scale::Full => opts.runs.max(10),
        Scale::Quick => opts.runs.max(5),
        Scale::Tiny => opts.runs,
    };
    for (name, extra) in [("cached rebuild", &[][..]), ("no-cache build", &["--no-cache"][..])] {
        let mut case = Case::new(name);
        case.fact("dockerfile", "10 steps: COPY rootfs, ENV, WORKDIR, COPY 500 files, COPY, RUN, LABEL, EXPOSE, CMD");
        let mut tools: Vec<(&str, Vec<OsString>)> = vec![("strata", strata_build(extra))];
        if have_buildah {
            tools.push(("buildah", buildah_build(extra)));
        } else {
            case.skipped.push(Skip { what: "buildah".into(), reason: "buildah is not installed (tools/deps)".into() });
        }
        let how = |t: &str| match t {
            "strata" => format!("strata build -q {}", extra.join(" ")),
            _ => format!("buildah bud --layers --isolation chroot (overlay) {}", extra.join(" ")),
        };
        case.measurements = tools.iter().map(|(n, _)| Measurement::new(n, &how(n), Unit::Seconds)).collect();
        // Round 0 is the warm-up (for the cached case: the first build,
        // which fills the cache).
        for round in 0..=runs {
            for i in rotation(tools.len(), round) {
                let (res, secs) = time(|| pipeline(&[tools[i].1.clone()]));
                res?;
                if round > 0 {
                    case.measurements[i].push(secs);
                }
            }
            opts.progress(&format!("build {name}: round {round}/{runs}"));
        }
        case.add_ratio("strata", "buildah");
        suite.cases.push(case);
    }
    if have_buildah {
        let mut v = os(&["buildah", "--root"]);
        v.push(buildah_root.into());
        v.push("--runroot".into());
        v.push(runroot.into());
        v.extend(os(&["--storage-driver", "overlay", "rmi", "-a", "-f"]));
        let _ = pipeline(&[v]);
    }
    Ok(suite)
}
