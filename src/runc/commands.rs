//! One function per runc command: parse what the command line gave,
//! call the executor, print what runc prints.

use super::log::Logger;
use super::{Cli, Command};
use crate::runtime::spec::{self, Spec, Status};
use crate::runtime::{self, Container, CreateOptions, ExecError, Executed};
use std::path::{Path, PathBuf};

pub(super) fn dispatch(cli: &Cli, log: &Logger) -> Result<i32, ExecError> {
    let root = &cli.root;
    log.debug(&format!("{:?}", cli.command));
    match &cli.command {
        Command::Create(a) => {
            seal_self()?;
            runtime::create(create_options(root, a)?)?;
            Ok(0)
        }
        Command::Start(a) => {
            runtime::start(&Container::load(root, &a.id)?)?;
            Ok(0)
        }
        Command::Run(a) => run(root, a, log),
        Command::State(a) => {
            let c = Container::load(root, &a.id)?;
            println!("{}", serde_json::to_string_pretty(&c.state()).expect("state serializes"));
            Ok(0)
        }
        Command::Kill(a) => {
            let sig = super::signal::parse(&a.signal).map_err(ExecError::Usage)?;
            runtime::kill(&Container::load(root, &a.id)?, sig, a.all)?;
            Ok(0)
        }
        Command::Delete(a) => match Container::load(root, &a.id) {
            Ok(c) => {
                if let Err(e) = runtime::delete(&c, a.force) {
                    // A poststop hook failing after the container is gone
                    // is a warning, as the spec asks.
                    if c.dir.exists() {
                        return Err(e);
                    }
                    log.warn(&e.to_string());
                }
                Ok(0)
            }
            Err(ExecError::NotFound(_)) if a.force => Ok(0),
            Err(e) => Err(e),
        },
        Command::Exec(a) => exec(root, a),
        Command::Ps(a) => ps(root, a),
        Command::List(a) => list(root, a),
        Command::Pause(a) => {
            runtime::pause(&Container::load(root, &a.id)?)?;
            Ok(0)
        }
        Command::Resume(a) => {
            runtime::resume(&Container::load(root, &a.id)?)?;
            Ok(0)
        }
        Command::Update(a) => update(root, a),
        Command::Events(a) => events(root, a),
        Command::Features => {
            println!("{}", runtime::features().to_json());
            Ok(0)
        }
        Command::Spec(a) => {
            let path = a.bundle.join("config.json");
            if path.exists() {
                return Err(ExecError::Usage(format!("File {} exists. Remove it first", path.display())));
            }
            if a.rootless {
                return Err(ExecError::Unsupported("spec --rootless".into()));
            }
            std::fs::write(&path, Spec::default_for_run().to_json()).map_err(|e| ExecError::io("write", &path, e))?;
            Ok(0)
        }
    }
}

/// Runs the rest of this command from a read-only mount of our binary
/// (or a sealed in-memory copy), so that no process in a container can reach (and overwrite)
/// the file on the host through `/proc/<pid>/exe` (runc's CVE-2019-5736).
fn seal_self() -> Result<(), ExecError> {
    crate::sys::selfexe::reexec_protected()
        .map_err(|e| ExecError::io("re-execute from a read-only mount of", Path::new("/proc/self/exe"), e))
}

fn absolute(p: &Path) -> Result<PathBuf, ExecError> {
    std::path::absolute(p).map_err(|e| ExecError::io("resolve", p, e))
}

fn create_options(root: &Path, a: &super::CreateArgs) -> Result<CreateOptions, ExecError> {
    Ok(CreateOptions {
        id: a.id.clone(),
        bundle: absolute(&a.bundle)?,
        state_root: root.to_owned(),
        console: match &a.console_socket {
            Some(p) => runtime::Console::Path(p.clone()),
            None => runtime::Console::None,
        },
        pid_file: a.pid_file.as_deref().map(absolute).transpose()?,
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
        ..CreateOptions::default()
    })
}

/// create + start; in the foreground, wait and exit with the process's
/// status, then delete (runc's `run`).
fn run(root: &Path, a: &super::RunArgs, log: &Logger) -> Result<i32, ExecError> {
    seal_self()?;
    let mut opts = create_options(root, &a.create)?;
    let spec = Spec::load(&opts.bundle)?;
    // A terminal with nobody to hand it to: relay it ourselves (runc's
    // behaviour for a foreground `run`).
    let own_tty = !a.detach && a.create.console_socket.is_none() && spec.process.as_ref().is_some_and(|p| p.terminal);
    let mut ours = None;
    if own_tty {
        let (mine, theirs) = runtime::console::pair().map_err(|e| ExecError::io("socketpair", &opts.bundle, e))?;
        opts.console = runtime::Console::Socket(theirs);
        ours = Some(mine);
    }
    opts.spec = Some(spec);
    let c = runtime::create(opts)?;
    let relay = match &ours {
        Some(sock) => {
            let master = runtime::console::recv_master(sock).map_err(|e| ExecError::io("receive the pty", &c.dir, e));
            match master {
                Ok(m) => Some(m),
                Err(e) => {
                    let _ = runtime::delete(&c, true);
                    return Err(e);
                }
            }
        }
        None => None,
    };
    drop(ours);
    if let Err(e) = runtime::start(&c) {
        let _ = runtime::delete(&c, true);
        return Err(e);
    }
    if a.detach {
        return Ok(0);
    }
    let raw = relay.as_ref().map(|_| runtime::tty::Raw::enter());
    let output = match relay {
        Some(m) => Some(runtime::tty::relay(m, true).map_err(|e| ExecError::io("relay the pty", &c.dir, e))?),
        None => None,
    };
    let code = runtime::wait_forwarding_signals(c.record.pid).map_err(|e| ExecError::io("wait", &c.dir, e))?;
    if let Some(t) = output {
        let _ = t.join();
    }
    drop(raw);
    if !a.keep {
        if let Err(e) = runtime::delete(&c, true) {
            log.warn(&e.to_string());
        }
    }
    Ok(code)
}

fn exec(root: &Path, a: &super::ExecArgs) -> Result<i32, ExecError> {
    seal_self()?;
    let c = Container::load(root, &a.id)?;
    if a.apparmor.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ExecError::Unsupported("exec --apparmor".into()));
    }
    if a.process_label.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ExecError::Unsupported("exec --process-label".into()));
    }
    let process = match &a.process {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| ExecError::io("read", path, e))?;
            serde_json::from_slice::<spec::Process>(&bytes)
                .map_err(|e| ExecError::Usage(format!("{}: {e}", path.display())))?
        }
        None => process_from_flags(&c, a)?,
    };
    let opts = runtime::ExecOptions {
        process,
        detach: a.detach,
        pid_file: a.pid_file.as_deref().map(absolute).transpose()?,
        console: match &a.console_socket {
            Some(p) => runtime::Console::Path(p.clone()),
            None => runtime::Console::None,
        },
        preserve_fds: a.preserve_fds,
        stdio: None,
        user_name: None,
    };
    match runtime::exec(&c, opts)? {
        Executed::Running(_) => Ok(0),
        Executed::Exited(code) => Ok(code),
    }
}

/// runc's exec flags over the container's own process.
fn process_from_flags(c: &Container, a: &super::ExecArgs) -> Result<spec::Process, ExecError> {
    if a.command.is_empty() {
        return Err(ExecError::Usage("exec: no command given (and no --process)".into()));
    }
    let mut p = c.record.config.process.clone().unwrap_or_default();
    p.args = a.command.clone();
    p.terminal = a.tty;
    if let Some(cwd) = &a.cwd {
        p.cwd = cwd.clone();
    }
    for e in &a.env {
        if let Some((k, _)) = e.split_once('=') {
            p.env.retain(|x| !x.starts_with(&format!("{k}=")));
        }
        p.env.push(e.clone());
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
        p.user.uid = uid.parse().map_err(|_| ExecError::Usage(format!("--user {u}: uid must be a number")))?;
        if !gid.is_empty() {
            p.user.gid = gid.parse().map_err(|_| ExecError::Usage(format!("--user {u}: gid must be a number")))?;
        }
    }
    p.user.additional_gids.extend(&a.additional_gids);
    if !a.cap.is_empty() {
        let caps = p.capabilities.get_or_insert_with(Default::default);
        for cap in &a.cap {
            for set in [&mut caps.bounding, &mut caps.effective, &mut caps.permitted] {
                if !set.contains(cap) {
                    set.push(cap.clone());
                }
            }
        }
    }
    if a.no_new_privs {
        p.no_new_privileges = true;
    }
    Ok(p)
}

fn ps(root: &Path, a: &super::PsArgs) -> Result<i32, ExecError> {
    let c = Container::load(root, &a.id)?;
    let pids = c.cgroups().pids().map_err(runtime::StartError::from_error)?;
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids).expect("pids serialize"));
        return Ok(0);
    }
    let ps_args = if a.ps_args.is_empty() { vec!["-ef".to_owned()] } else { a.ps_args.clone() };
    let out = std::process::Command::new("ps")
        .args(&ps_args)
        .output()
        .map_err(|e| ExecError::io("run", Path::new("ps"), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header.split_whitespace().position(|h| h == "PID").unwrap_or(1);
    println!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(pid_col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{line}");
        }
    }
    Ok(0)
}

fn list(root: &Path, a: &super::ListArgs) -> Result<i32, ExecError> {
    let all = Container::list(root)?;
    if a.quiet {
        for c in &all {
            println!("{}", c.id());
        }
        return Ok(0);
    }
    if a.format == "json" {
        let states: Vec<serde_json::Value> = all
            .iter()
            .map(|c| {
                let s = c.state();
                serde_json::json!({
                    "ociVersion": s.oci_version, "id": s.id, "pid": s.pid.unwrap_or(0),
                    "status": s.status.as_str(), "bundle": s.bundle, "rootfs": c.record.rootfs,
                    "created": c.record.created, "annotations": s.annotations, "owner": "root",
                })
            })
            .collect();
        println!("{}", serde_json::to_string(&states).expect("list serializes"));
        return Ok(0);
    }
    println!("{:<12} {:<10} {:<10} {:<40} {:<31} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
    for c in &all {
        let status = c.status();
        let pid = if status == Status::Stopped { 0 } else { c.record.pid };
        println!(
            "{:<12} {:<10} {:<10} {:<40} {:<31} root",
            c.id(),
            pid,
            status,
            c.record.bundle.display(),
            c.record.created
        );
    }
    Ok(0)
}

fn update(root: &Path, a: &super::UpdateArgs) -> Result<i32, ExecError> {
    let mut c = Container::load(root, &a.id)?;
    let mut r: spec::Resources = match a.resources.as_deref() {
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .map_err(|e| ExecError::io("read", Path::new("-"), e))?;
            serde_json::from_str(&s).map_err(|e| ExecError::Usage(format!("--resources: {e}")))?
        }
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| ExecError::io("read", Path::new(path), e))?;
            serde_json::from_slice(&bytes).map_err(|e| ExecError::Usage(format!("{path}: {e}")))?
        }
        None => spec::Resources::default(),
    };
    let bytes = |s: &str| crate::units::parse_bytes(s).map(|b| b as i64).map_err(|e| ExecError::Usage(e.to_string()));
    if let Some(m) = &a.memory {
        r.memory.get_or_insert_with(Default::default).limit = Some(bytes(m)?);
    }
    if let Some(m) = &a.memory_swap {
        r.memory.get_or_insert_with(Default::default).swap = Some(if m == "-1" { -1 } else { bytes(m)? });
    }
    if let Some(p) = a.pids_limit {
        r.pids = Some(spec::Pids { limit: p });
    }
    if a.cpu_quota.is_some() || a.cpu_period.is_some() || a.cpu_shares.is_some() {
        let cpu = r.cpu.get_or_insert_with(Default::default);
        cpu.quota = a.cpu_quota.or(cpu.quota);
        cpu.period = a.cpu_period.or(cpu.period);
        cpu.shares = a.cpu_shares.or(cpu.shares);
    }
    if c.status() == Status::Stopped {
        return Err(ExecError::NotRunning(c.id().to_owned()));
    }
    c.cgroups().apply(&r).map_err(runtime::StartError::from_error)?;
    let linux = c.record.config.linux.get_or_insert_with(Default::default);
    linux.resources = Some(r);
    c.save()?;
    Ok(0)
}

fn events(root: &Path, a: &super::EventsArgs) -> Result<i32, ExecError> {
    let c = Container::load(root, &a.id)?;
    if c.status() == Status::Stopped {
        return Err(ExecError::NotRunning(c.id().to_owned()));
    }
    if !a.stats {
        return Err(ExecError::Unsupported("events without --stats (streaming)".into()));
    }
    let stats = c.cgroups().stats().map_err(runtime::StartError::from_error)?;
    let event = serde_json::json!({ "type": "stats", "id": c.id(), "data": stats });
    println!("{event}");
    Ok(0)
}
