//! The systemd unit, `tools/systemd/strata-snapshotter.service`: it passes
//! `systemd-analyze verify` without a warning (systemd is not PID 1 here,
//! so the unit is checked, not started by systemd), and its `ExecStart=`
//! line, run as systemd would run it (with `Environment=`, and only its
//! data root and socket moved into the test's own directories), serves on
//! the socket and stops cleanly on SIGTERM, which is how `KillMode=mixed`
//! stops it.

use super::{require, Scratch};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use strata::scratch::{FsKind, ScratchFs};

const UNIT: &str = "strata-snapshotter.service";
/// Where the unit expects the binary (`install` in README.md).
const INSTALLED: &str = "/usr/local/bin/strata";

fn unit_text() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/systemd").join(UNIT);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The values of `key=` in section `[section]`, in order (no line
/// continuations: the unit uses none, and a `\` at a line end is refused).
fn values(unit: &str, section: &str, key: &str) -> Vec<String> {
    let mut current = "";
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        assert!(!line.ends_with('\\'), "line continuations are not parsed here: {line}");
        if line.starts_with('[') && line.ends_with(']') {
            current = &line[1..line.len() - 1];
        } else if current == section && !line.starts_with('#') && !line.starts_with(';') {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    out.push(v.trim().to_owned());
                }
            }
        }
    }
    out
}

/// `ExecStart=` split into words. The unit keeps to plain words so that
/// splitting on whitespace is what systemd does: no quotes, no `$`
/// variables, no `%` specifiers, no `-@:+!` prefixes.
fn exec_start(unit: &str) -> Vec<String> {
    let lines = values(unit, "Service", "ExecStart");
    assert_eq!(lines.len(), 1, "one ExecStart= line: {lines:?}");
    let line = &lines[0];
    assert!(!line.contains(['"', '\'', '$', '%', '\\']), "ExecStart= is not plain words: {line}");
    let argv: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    assert!(argv[0].starts_with('/'), "ExecStart= starts with an absolute path: {line}");
    argv
}

/// Runs `systemd-analyze verify` on `unit`, with the binary path replaced
/// by the one cargo built (verify checks that ExecStart's binary exists).
/// `Err` has verify's complaints about the unit.
fn verify(unit: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit.replace(INSTALLED, env!("CARGO_BIN_EXE_strata"));
    std::fs::write(dir.path().join(UNIT), unit).expect("unit copy");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join(UNIT))
        .output()
        .expect("running systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about our unit (verify also loads the units it names, such as
    // containerd.service, which need not exist here).
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains(UNIT)).collect();
    if !out.status.success() || !ours.is_empty() {
        return Err(format!("systemd-analyze verify ({}):\n{stderr}", out.status));
    }
    Ok(())
}

fn have_systemd_analyze(what: &str) -> bool {
    let ok = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    require(ok, what, "needs systemd-analyze (Debian's systemd)")
}

#[test]
fn systemd_unit_verifies_without_warnings() {
    if !have_systemd_analyze("systemd-analyze verify of the unit") {
        return;
    }
    let unit = unit_text();
    assert_eq!(exec_start(&unit)[0], INSTALLED, "the unit runs the installed binary");
    if let Err(e) = verify(&unit) {
        panic!("{UNIT}: {e}");
    }
}

/// The check above is not vacuous: a misspelled key (only a warning to
/// systemd, which ignores the line), a missing binary and a bad value all
/// fail it.
#[test]
fn systemd_unit_check_catches_broken_units() {
    if !have_systemd_analyze("systemd-analyze verify of broken units") {
        return;
    }
    let unit = unit_text();
    let broken = [
        ("misspelled key", unit.replace("KillMode=", "KilMode=")),
        ("missing binary", unit.replace(&format!("ExecStart={INSTALLED}"), "ExecStart=/nonexistent/strata")),
        ("bad value", unit.replace("Restart=on-failure", "Restart=sometimes")),
    ];
    for (what, text) in broken {
        assert_ne!(text, unit, "{what}: the unit changed");
        let err = verify(&text).expect_err(what);
        eprintln!("{what}: {err}");
    }
}

/// The unit's process; SIGKILLed and reaped on drop if the test did not
/// stop it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Replaces the value after `flag` (which the command must have).
fn set_flag(argv: &mut [String], flag: &str, value: &Path) -> PathBuf {
    let i = argv.iter().position(|a| a == flag).unwrap_or_else(|| panic!("ExecStart= has no {flag}: {argv:?}"));
    let old = PathBuf::from(&argv[i + 1]);
    argv[i + 1] = value.to_str().expect("utf-8 path").to_owned();
    old
}

#[test]
fn systemd_unit_command_serves_and_stops_on_sigterm() {
    let what = "the unit's ExecStart= command";
    if !require(rustix::process::geteuid().is_root(), what, "needs root (a loop filesystem for the data root)")
        || !require(FsKind::Xfs.mkfs_available(), what, "needs mkfs.xfs (tools/deps installs it)")
    {
        return;
    }
    let unit = unit_text();
    let mut argv = exec_start(&unit);
    let scratch = Scratch { fs: Some(ScratchFs::new(FsKind::Xfs, 1 << 30).expect("scratch filesystem")) };
    // Sockets must fit sun_path: a short directory of the test's own.
    let run = tempfile::Builder::new().prefix("strata-unit-").tempdir().expect("tempdir");
    let root = scratch.path().join("root");
    let socket = run.path().join("strata/snapshotter.sock");
    let unit_root = set_flag(&mut argv, "--root", &root);
    let unit_socket = set_flag(&mut argv, "--address", &socket);
    assert_eq!(unit_root, Path::new(strata::root::DEFAULT_ROOT), "the unit serves the default data root");
    // systemd makes /run/<RuntimeDirectory> (and removes it on stop): the
    // socket must be there.
    let runtime_dirs = values(&unit, "Service", "RuntimeDirectory");
    assert_eq!(
        unit_socket.parent().map(Path::to_owned),
        runtime_dirs.first().map(|d| Path::new("/run").join(d)),
        "the socket is in the unit's RuntimeDirectory="
    );
    let driver = argv.iter().position(|a| a == "-s").map(|i| argv[i + 1].clone()).expect("ExecStart= names a driver");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let log_path = run.path().join("service.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    // systemd starts a service with a clean environment plus Environment=.
    cmd.env_clear().env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for line in values(&unit, "Service", "Environment") {
        assert!(!line.contains(['"', '\'', '$', '%', '\\']), "Environment= is not plain words: {line}");
        for assignment in line.split_whitespace() {
            let (k, v) = assignment.split_once('=').expect("Environment=KEY=VALUE");
            cmd.env(k, v);
        }
    }
    let mut child = Running(cmd.spawn().expect("starting the unit's command"));
    let log_text = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let up = super::daemon::poll(Duration::from_secs(20), || {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("the unit's command exited ({status}):\n{}", log_text());
        }
        UnixStream::connect(&socket).ok()
    });
    assert!(up.is_some(), "nothing listened on {} within 20 s:\n{}", socket.display(), log_text());
    assert!(log_text().contains(&format!("serving on {}", socket.display())), "{}", log_text());
    assert!(strata::proxy::home(&root, &driver).is_dir(), "the {driver} driver home under the unit's --root");
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
    let status = super::daemon::poll(Duration::from_secs(20), || child.0.try_wait().ok().flatten());
    let status = status.unwrap_or_else(|| panic!("SIGTERM did not stop the service in 20 s:\n{}", log_text()));
    assert!(status.success(), "the service exits 0 on SIGTERM ({status}):\n{}", log_text());
    assert!(!socket.exists(), "the service removed its socket on the way out");
}

/// systemd (and containerd's test suite, whose `Rename` check skips at
/// once) may send SIGTERM the moment the socket accepts: the service must
/// already handle it then, and exit 0 rather than die of the signal.
#[test]
fn sigterm_right_after_listening_stops_cleanly() {
    let what = "SIGTERM as soon as the socket accepts";
    if !require(rustix::process::geteuid().is_root(), what, "needs root (a loop filesystem for the data root)")
        || !require(FsKind::Xfs.mkfs_available(), what, "needs mkfs.xfs (tools/deps installs it)")
    {
        return;
    }
    let scratch = Scratch { fs: Some(ScratchFs::new(FsKind::Xfs, 1 << 30).expect("scratch filesystem")) };
    let run = tempfile::Builder::new().prefix("strata-unit-").tempdir().expect("tempdir");
    let socket = run.path().join("snapshotter.sock");
    for round in 0..100 {
        let mut child = Running(
            Command::new(env!("CARGO_BIN_EXE_strata"))
                .arg("--root")
                .arg(scratch.path().join("root"))
                .args(["snapshotter", "serve", "--address"])
                .arg(&socket)
                .args(["-s", "overlay"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting strata snapshotter serve"),
        );
        // No sleep between tries: the signal lands right after bind(2).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&socket).is_err() {
            assert!(std::time::Instant::now() < deadline, "round {round}: nothing listened within 20 s");
            assert!(child.0.try_wait().expect("try_wait").is_none(), "round {round}: the service exited");
        }
        let pid = rustix::process::Pid::from_raw(child.0.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM");
        let status = super::daemon::poll(Duration::from_secs(20), || child.0.try_wait().ok().flatten());
        let status = status.unwrap_or_else(|| panic!("round {round}: SIGTERM did not stop the service in 20 s"));
        assert!(status.success(), "round {round}: the service died of SIGTERM instead of stopping ({status})");
    }
}
