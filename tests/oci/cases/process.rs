//! The process: capabilities, rlimits, user, umask, cwd, env, seccomp,
//! `noNewPrivileges`, `oomScoreAdj`, personality, exit codes.

use crate::{compare, Case, Compared};
use strata::runtime::spec::{
    Arch, Capabilities, NamespaceType, Personality, PersonalityDomain, Rlimit, RlimitType, Seccomp, SeccompAction,
    SeccompArg, SeccompOp, Syscall,
};

#[test]
fn default_spec() {
    let Some(Compared { want: run, .. }) = compare(Case::new("default")) else { return };
    let status = run.observed.status();
    // runc spec's three capabilities: AUDIT_WRITE (29), KILL (5),
    // NET_BIND_SERVICE (10).
    assert_eq!(status["CapEff"], "0000000020000420");
    assert_eq!(status["CapBnd"], "0000000020000420");
    assert_eq!(status["NoNewPrivs"], "1");
    assert_eq!(run.observed.section("pid"), ["pid is 1"]);
    assert_eq!(run.observed.section("rootfs"), ["read-only"]);
    assert_eq!(run.observed.section("uts"), ["hostname runc", "domainname (none)"]);
}

fn caps(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn capabilities_all_five_sets_reduced() {
    let case = Case::new("caps")
        .edit(|spec, _| {
            let set = caps(&["CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_SETGID"]);
            let process = spec.process.as_mut().unwrap();
            process.capabilities = Some(Capabilities {
                bounding: caps(&["CAP_KILL", "CAP_DAC_OVERRIDE", "CAP_SETGID", "CAP_FOWNER"]),
                effective: set.clone(),
                inheritable: set.clone(),
                permitted: set.clone(),
                ambient: caps(&["CAP_KILL"]),
            });
        })
        .extra("touch /dev/shm/f && chown 1:1 /dev/shm/f; echo chown=$?; ls -ln /dev/shm/f | cut -c1-30");
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    let status = run.observed.status();
    // KILL 5, DAC_OVERRIDE 1, SETGID 6, FOWNER 3.
    assert_eq!(status["CapBnd"], "000000000000006a");
    assert_eq!(status["CapEff"], "0000000000000062");
    assert_eq!(status["CapInh"], "0000000000000062");
    assert_eq!(status["CapAmb"], "0000000000000020");
    let extra = run.observed.section("extra");
    assert!(extra.iter().any(|l| l.contains("Operation not permitted")), "chown without CAP_CHOWN: {extra:?}");
    assert!(extra.contains(&"chown=1"), "{extra:?}");
}

#[test]
fn capabilities_chown_granted() {
    let case = Case::new("caps-chown")
        .edit(|spec, _| {
            let c = spec.process.as_mut().unwrap().capabilities.as_mut().unwrap();
            for set in [&mut c.bounding, &mut c.effective, &mut c.permitted] {
                set.push("CAP_CHOWN".into());
            }
        })
        .extra("touch /dev/shm/f && chown 1:1 /dev/shm/f; echo chown=$?; stat -c '%u:%g' /dev/shm/f");
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.observed.section("extra"), ["chown=0", "1:1"]);
}

#[test]
fn rlimits() {
    let case = Case::new("rlimits")
        .edit(|spec, _| {
            spec.process.as_mut().unwrap().rlimits = vec![
                Rlimit { kind: RlimitType::Nofile, soft: 512, hard: 2048 },
                Rlimit { kind: RlimitType::Core, soft: 0, hard: 0 },
                Rlimit { kind: RlimitType::Nproc, soft: 300, hard: 400 },
            ];
        })
        .extra("echo soft=$(ulimit -n) hard=$(ulimit -Hn)");
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.observed.section("extra"), ["soft=512 hard=2048"]);
    assert!(run.observed.section("limits").contains(&"Max processes 300 400 processes"));
}

#[test]
fn user_uid_gid_additional_gids_umask_cwd() {
    let case = Case::new("user")
        .edit(|spec, _| {
            let process = spec.process.as_mut().unwrap();
            process.user.uid = 1000;
            process.user.gid = 1000;
            process.user.additional_gids = vec![5, 1001];
            process.user.umask = Some(0o027);
            process.cwd = "/tmp".into();
        })
        .extra("touch /dev/shm/u && stat -c '%a %u %g' /dev/shm/u; chown 0 /dev/shm/u; echo chown=$?");
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.observed.section("id"), ["uid=1000(probe) gid=1000(probe) groups=5(tty),1001(extra)"]);
    assert_eq!(run.observed.section("umask"), ["0027"]);
    assert_eq!(run.observed.section("cwd"), ["/tmp"]);
    // A non-root user keeps no capability.
    assert_eq!(run.observed.status()["CapEff"], "0000000000000000");
    assert_eq!(&run.observed.section("extra")[..2], ["640 1000 1000", "chown: /dev/shm/u: Operation not permitted"]);
}

#[test]
fn env_and_args() {
    let case = Case::new("env").edit(|spec, _| {
        let process = spec.process.as_mut().unwrap();
        process.env.push("PROBE_IGNORED=1".into());
        process.env.push("GREETING=hello world".into());
        process.env.push("EMPTY=".into());
    });
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    let env = run.observed.section("env");
    assert!(env.contains(&"GREETING=hello world") && env.contains(&"EMPTY="), "{env:?}");
}

#[test]
fn seccomp_errno_and_argument_conditions() {
    let case = Case::new("seccomp")
        .edit(|spec, _| {
            let rule = |names: &[&str], errno: u32, args: Vec<SeccompArg>| Syscall {
                names: caps(names),
                action: SeccompAction::Errno,
                errno_ret: Some(errno),
                args,
            };
            let mode_is = |index| SeccompArg { index, value: 0o777, value_two: 0, op: SeccompOp::EqualTo };
            spec.linux.as_mut().unwrap().seccomp = Some(Seccomp {
                default_action: SeccompAction::Allow,
                default_errno_ret: None,
                architectures: vec![Arch::X86_64, Arch::X86, Arch::X32],
                flags: Vec::new(),
                listener_path: String::new(),
                listener_metadata: String::new(),
                syscalls: vec![
                    // ENOSPC, so the message cannot come from anywhere else.
                    rule(&["mkdir", "mkdirat"], 28, Vec::new()),
                    // EACCES, only for mode 0777.
                    rule(&["chmod"], 13, vec![mode_is(1)]),
                    rule(&["fchmodat"], 13, vec![mode_is(2)]),
                ],
            });
        })
        .extra(
            "mkdir /dev/shm/d; echo mkdir=$?\n\
             touch /dev/shm/f; chmod 777 /dev/shm/f; echo chmod777=$?\n\
             chmod 755 /dev/shm/f; echo chmod755=$?; stat -c %a /dev/shm/f",
        );
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.observed.status()["Seccomp"], "2");
    assert_eq!(
        run.observed.section("extra"),
        [
            "mkdir: can't create directory '/dev/shm/d': No space left on device",
            "mkdir=1",
            "chmod: /dev/shm/f: Permission denied",
            "chmod777=1",
            "chmod755=0",
            "755"
        ]
    );
}

#[test]
fn no_new_privileges_off() {
    let case = Case::new("nnp-off").edit(|spec, _| spec.process.as_mut().unwrap().no_new_privileges = false);
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.observed.status()["NoNewPrivs"], "0");
}

#[test]
fn oom_score_adj() {
    let case = Case::new("oom").edit(|spec, _| spec.process.as_mut().unwrap().oom_score_adj = Some(500));
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.observed.section("oom"), ["500"]);
}

#[test]
fn personality_linux32() {
    // runc 1.1.5 ignores linux.personality (runc 1.2 added it).
    let case = Case::new("linux32")
        .edit(|spec, _| {
            spec.linux.as_mut().unwrap().personality =
                Some(Personality { domain: PersonalityDomain::Linux32, flags: Vec::new() });
        })
        .reference_lacks("personality:");
    let Some(Compared { got, .. }) = compare(case) else { return };
    assert_eq!(got.observed.section("personality"), ["i686"]);
}

#[test]
fn hostname_and_domainname() {
    // runc 1.1.5 ignores `domainname` (runtime-spec 1.1, runc 1.2).
    let case = Case::new("uts")
        .edit(|spec, _| {
            spec.hostname = "probe-host".into();
            spec.domainname = "probe.example".into();
        })
        .reference_lacks("uts: domainname")
        .reference_lacks("sysctl: kernel.domainname");
    let Some(Compared { want, got }) = compare(case) else { return };
    assert_eq!(want.observed.section("uts")[0], "hostname probe-host");
    assert_eq!(got.observed.section("uts"), ["hostname probe-host", "domainname probe.example"]);
}

#[test]
fn sysctl_in_own_namespaces() {
    let case = Case::new("sysctl")
        .edit(|spec, _| {
            let linux = spec.linux.as_mut().unwrap();
            linux.sysctl.insert("net.ipv4.ip_forward".into(), "0".into());
            linux.sysctl.insert("net.ipv4.ping_group_range".into(), "0 2147483647".into());
            linux.sysctl.insert("kernel.msgmax".into(), "4096".into());
        })
        .sysctls(&["net.ipv4.ping_group_range", "kernel.msgmax"]);
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    let sysctl = run.observed.section("sysctl");
    assert!(sysctl.contains(&"net.ipv4.ip_forward 0"), "{sysctl:?}");
    assert!(sysctl.contains(&"net.ipv4.ping_group_range 0 2147483647"), "{sysctl:?}");
    assert!(sysctl.contains(&"kernel.msgmax 4096"), "{sysctl:?}");
}

#[test]
fn exit_code_of_run() {
    let Some(Compared { want: run, .. }) = compare(Case::new("exit7").extra("exit 7").unfinished()) else { return };
    assert_eq!(run.code, 7, "{run:?}");
}

#[test]
fn exit_by_signal_of_run() {
    // Without a PID namespace, so that the probe is not an init the
    // kernel shields from its own signals.
    let case = Case::new("exitsig")
        .edit(|spec, _| spec.linux.as_mut().unwrap().namespaces.retain(|ns| ns.kind != NamespaceType::Pid))
        .extra("kill -KILL $$")
        .unfinished();
    let Some(Compared { want: run, .. }) = compare(case) else { return };
    assert_eq!(run.code, 137, "{run:?}");
}
