//! The probe binary (compiled once per test process from
//! `probe/probe.rs`) and its report.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

/// Docker's default capabilities (moby `oci/caps/defaults.go`): CHOWN,
/// DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP,
/// NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE, SETFCAP.
pub const DOCKER_CAPS: u64 = 0xa804_25fb;
pub const CAP_CHOWN: u32 = 0;
pub const CAP_SYS_ADMIN: u32 = 21;

/// The static probe, built with the rustc that builds the tests: std
/// only, `+crt-static`, so it runs in an image without a libc.
pub fn binary() -> &'static [u8] {
    static BIN: OnceLock<Vec<u8>> = OnceLock::new();
    BIN.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/security/probe/probe.rs");
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("probe");
        let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let out = Command::new(rustc)
            .args(["-O", "-C", "target-feature=+crt-static", "--edition", "2021", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run rustc");
        assert!(out.status.success(), "compiling {}:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
        std::fs::read(&bin).unwrap()
    })
}

/// What the probe printed: check name → outcome (`allowed`,
/// `denied(EPERM)`, or a value).
#[derive(Clone)]
pub struct Report {
    pub raw: String,
    pub checks: BTreeMap<String, String>,
}

impl Report {
    pub fn parse(raw: &str) -> Report {
        let checks = raw
            .lines()
            .filter_map(|l| l.split_once(": ").or_else(|| l.strip_suffix(':').map(|k| (k, ""))))
            .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Report { raw: raw.to_owned(), checks }
    }

    /// The outcome of `check`; fails (showing the report) if absent.
    #[track_caller]
    pub fn get(&self, check: &str) -> &str {
        self.checks.get(check).unwrap_or_else(|| panic!("no {check} in the probe's report:\n{}", self.raw))
    }

    pub fn denied(&self, check: &str) -> bool {
        self.get(check).starts_with("denied")
    }

    /// A capability set from `/proc/self/status` (`CapEff` …).
    #[track_caller]
    pub fn caps(&self, set: &str) -> u64 {
        let v = self.get(set);
        u64::from_str_radix(v, 16).unwrap_or_else(|_| panic!("{set}: not hex: {v:?}\n{}", self.raw))
    }

    /// Asserts `check` has outcome `want`, showing the whole report if not.
    #[track_caller]
    pub fn expect(&self, check: &str, want: &str) {
        assert_eq!(self.get(check), want, "{check}; the probe's report:\n{}", self.raw);
    }

    #[track_caller]
    pub fn expect_denied(&self, check: &str) {
        assert!(self.denied(check), "{check} is {}, not denied; the probe's report:\n{}", self.get(check), self.raw);
    }

    #[track_caller]
    pub fn expect_allowed(&self, check: &str) {
        self.expect(check, "allowed");
    }
}

/// Expectations on one report, checked all before failing, so a failure
/// lists every check that missed, not just the first.
pub struct Verdict<'a> {
    report: &'a Report,
    missed: Vec<String>,
}

impl<'a> Verdict<'a> {
    pub fn new(report: &'a Report) -> Verdict<'a> {
        Verdict { report, missed: Vec::new() }
    }

    /// `check` must have outcome `want`.
    pub fn is(&mut self, check: &str, want: &str) {
        let got = self.report.checks.get(check).map_or("(absent)", String::as_str);
        if got != want {
            self.missed.push(format!("{check}: {got}, want {want}"));
        }
    }

    pub fn denied(&mut self, check: &str) {
        let got = self.report.checks.get(check).map_or("(absent)", String::as_str);
        if !got.starts_with("denied") {
            self.missed.push(format!("{check}: {got}, want denied"));
        }
    }

    pub fn caps(&mut self, set: &str, want: u64) {
        let got = self.report.checks.get(set).and_then(|v| u64::from_str_radix(v, 16).ok());
        if got != Some(want) {
            self.missed.push(format!("{set}: {:?}, want {want:016x}", self.report.checks.get(set)));
        }
    }

    /// Any other expectation, with what to say when it fails.
    pub fn that(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.missed.push(what.into());
        }
    }

    /// Fails listing every miss, with the whole report.
    #[track_caller]
    pub fn done(self, what: &str) {
        assert!(
            self.missed.is_empty(),
            "{what}:\n  {}\nthe probe's report:\n{}",
            self.missed.join("\n  "),
            self.report.raw
        );
    }
}

/// Two reports side by side, one check a line, `!` where they differ.
pub fn side_by_side(left: (&str, &Report), right: (&str, &Report)) -> String {
    let mut keys: Vec<&String> = left.1.checks.keys().chain(right.1.checks.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = format!("  {:<20} {:<28} {}\n", "check", left.0, right.0);
    for k in keys {
        let (a, b) =
            (left.1.checks.get(k).map_or("-", String::as_str), right.1.checks.get(k).map_or("-", String::as_str));
        let mark = if a == b { ' ' } else { '!' };
        out.push_str(&format!("{mark} {k:<20} {a:<28} {b}\n"));
    }
    out
}

/// The bounding set of this (the test's) process: what `--privileged`
/// can give at most.
pub fn own_bounding_set() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let v = status.lines().find_map(|l| l.strip_prefix("CapBnd:")).expect("CapBnd in /proc/self/status");
    u64::from_str_radix(v.trim(), 16).unwrap()
}

/// FNV-1a 64 of `data`, as the probe computes it for `/proc/1/exe`.
pub fn fnv(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
