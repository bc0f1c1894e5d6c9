//! Container commands: create, run, start, stop, kill, rm, ps, logs, exec,
//! wait, and container inspect.

use super::format::{ago, ellipsis, human_duration, human_size, Table};
use crate::container::records::ContainerStore;
use crate::container::{ContainerId, LogConfig, Resources, State, Status};
use crate::engine::Engine;
use crate::ops::container::lifecycle::{self, CreateOptions};
use crate::ops::container::query;
use crate::ops::container::security::SecurityRequest;
use crate::ops::container::supervise::{self, Mode};
use crate::units::parse_bytes;
use anyhow::{bail, Context, Result};
use clap::Args;

use std::time::Duration;

/// A failure that must end the process with a specific exit code
/// (Docker's 125/126/127 or the container's own).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitCode {
    pub code: i32,
    pub message: String,
}

#[derive(Debug, Args, Clone)]
pub struct CreateArgs {
    /// Print help (`-h` is the hostname, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container.
    #[arg(long)]
    name: Option<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    tty: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount a volume.
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long)]
    read_only: bool,
    /// Connect a container to a network: none (default) or host.
    #[arg(long, alias = "net")]
    network: Option<String>,
    /// Memory limit (e.g. 64m, 1g).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap.
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Number of CPUs.
    #[arg(long, allow_hyphen_values = true)]
    cpus: Option<f64>,
    /// Give extended privileges to this container.
    #[arg(long)]
    privileged: bool,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER[:rwm]]).
    #[arg(long = "device")]
    device: Vec<String>,
    /// Security options: seccomp=unconfined|PROFILE.json, no-new-privileges[=BOOL].
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Ulimit options (name=soft[:hard], e.g. nofile=1024:2048).
    #[arg(long = "ulimit")]
    ulimit: Vec<String>,
    /// Log driver options: max-size=10m, max-file=3.
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Automatically remove the container when it exits.
    #[arg(long)]
    rm: bool,
    /// Storage driver options: overlay.volatile=true|false (default: true
    /// with --rm; a volatile layer skips fsync and is reset after a host crash).
    #[arg(long = "storage-opt")]
    storage_opt: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    init: bool,
    /// The image to run.
    image: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    detach: bool,
    #[command(flatten)]
    create: CreateArgs,
}

fn options(a: &CreateArgs) -> Result<CreateOptions> {
    let mut log = LogConfig::default();
    for o in &a.log_opt {
        match o.split_once('=') {
            Some(("max-size", v)) => log.max_size = Some(parse_bytes(v)?),
            Some(("max-file", v)) => log.max_file = v.parse().with_context(|| format!("invalid max-file: {v}"))?,
            _ => bail!("unknown log opt {o:?} (json-file supports max-size, max-file)"),
        }
    }
    let nano_cpus = a.cpus.map(cpus_to_nano).transpose()?;
    let memory = a.memory.as_deref().map(parse_bytes).transpose()?;
    if let Some(m) = memory.filter(|&m| m != 0 && m < MIN_MEMORY) {
        bail!("invalid --memory {m}: minimum memory limit allowed is 6MB");
    }
    let memory_swap = match a.memory_swap.as_deref() {
        None => None,
        Some("-1") => Some(-1),
        Some(v) => {
            let swap = parse_bytes(v)?;
            match memory {
                None | Some(0) => {
                    bail!("you should always set the memory limit when using the memoryswap limit, see usage")
                }
                Some(m) if swap < m => bail!("minimum memoryswap limit should be larger than memory limit, see usage"),
                Some(_) => Some(i64::try_from(swap).context("invalid --memory-swap: too large")?),
            }
        }
    };
    Ok(CreateOptions {
        image: a.image.clone(),
        name: a.name.clone(),
        cmd: a.command.clone(),
        entrypoint: a.entrypoint.clone(),
        env: a.env.clone(),
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        tty: a.tty,
        interactive: a.interactive,
        read_only: a.read_only,
        network: a.network.clone(),
        volumes: a.volume.clone(),
        resources: Resources { memory, memory_swap, pids_limit: a.pids_limit, nano_cpus },
        security: SecurityRequest {
            privileged: a.privileged,
            cap_add: a.cap_add.clone(),
            cap_drop: a.cap_drop.clone(),
            devices: a.device.clone(),
            security_opt: a.security_opt.clone(),
            ulimits: a.ulimit.clone(),
        },
        log,
        auto_remove: a.rm,
        volatile: crate::ops::container::volatile::parse_storage_opts(&a.storage_opt)?,
        init: a.init,
        skip_image_volumes: false,
    })
}

/// Docker's floor for `--memory` (6 MiB).
const MIN_MEMORY: u64 = 6 << 20;

/// `--cpus`: a positive finite number of CPUs, at most the host's
/// (Docker: "range of CPUs is from 0.01 to N.00").
fn cpus_to_nano(cpus: f64) -> Result<u64> {
    let host = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    #[allow(clippy::cast_precision_loss)]
    let max = host as f64;
    if !cpus.is_finite() || cpus < 0.01 || cpus > max {
        bail!("invalid --cpus {cpus}: range of CPUs is from 0.01 to {max:.2}, as there are only {host} CPUs available");
    }
    // In range (checked above), so the conversion is exact enough and cannot wrap.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok((cpus * 1e9).round() as u64)
}

fn created(engine: &Engine, a: &CreateArgs) -> Result<ContainerId> {
    let o = options(a).map_err(|e| ExitCode { code: 125, message: format!("{e:#}") })?;
    lifecycle::create(engine, &o).map_err(|e| ExitCode { code: 125, message: e.to_string() }.into())
}

pub fn create(engine: &Engine, a: CreateArgs) -> Result<()> {
    println!("{}", created(engine, &a)?);
    Ok(())
}

pub fn run(engine: &Engine, a: RunArgs) -> Result<()> {
    let id = created(engine, &a.create)?;
    if a.detach {
        supervise::start_detached(engine, &id).map_err(|e| ExitCode { code: e.code, message: e.message })?;
        println!("{id}");
        return Ok(());
    }
    let code = supervise::supervise(engine, &id, Mode::Attached, None);
    if code != 0 {
        return Err(ExitCode { code, message: String::new() }.into());
    }
    Ok(())
}

fn resolve(engine: &Engine, name: &str) -> Result<ContainerId> {
    Ok(ContainerStore::new(&engine.root).resolve(name)?)
}

/// Whether any of `names` is a container run with `--init`, whose PID 1
/// is a strata process (so strata runs from a sealed copy of itself).
pub fn any_init(engine: &Engine, names: &[String]) -> bool {
    let store = ContainerStore::new(&engine.root);
    names.iter().any(|n| store.resolve(n).and_then(|id| store.get(&id)).is_ok_and(|(c, _)| c.init))
}

impl RunArgs {
    pub fn init(&self) -> bool {
        self.create.init
    }
}

impl NamesArgs {
    pub fn names(&self) -> &[String] {
        &self.containers
    }
}

impl StopArgs {
    pub fn names(&self) -> &[String] {
        &self.containers
    }
}

#[derive(Debug, Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `f` for each named container, printing the name as Docker does and
/// reporting all failures.
fn each(engine: &Engine, names: &[String], mut f: impl FnMut(&ContainerId) -> Result<()>) -> Result<()> {
    let mut failed = false;
    for n in names {
        match resolve(engine, n).and_then(|id| f(&id)) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(ExitCode { code: 1, message: String::new() }.into());
    }
    Ok(())
}

pub fn start(engine: &Engine, a: NamesArgs) -> Result<()> {
    each(engine, &a.containers, |id| {
        let (_, st) = ContainerStore::new(&engine.root).get(id)?;
        if st.status == Status::Running {
            return Ok(());
        }
        supervise::start_detached(engine, id).map_err(|e| anyhow::anyhow!(e.message))
    })
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn stop(engine: &Engine, a: StopArgs) -> Result<()> {
    each(engine, &a.containers, |id| {
        lifecycle::stop(engine, id, Duration::from_secs(a.time))?;
        Ok(())
    })
}

pub fn restart(engine: &Engine, a: StopArgs) -> Result<()> {
    each(engine, &a.containers, |id| {
        lifecycle::stop(engine, id, Duration::from_secs(a.time))?;
        supervise::start_detached(engine, id).map_err(|e| anyhow::anyhow!(e.message))
    })
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// Signal to send to the container.
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn kill(engine: &Engine, a: KillArgs) -> Result<()> {
    let sig = lifecycle::parse_signal(&a.signal)?;
    each(engine, &a.containers, |id| Ok(lifecycle::kill(engine, id, sig)?))
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL).
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container.
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn rm(engine: &Engine, a: RmArgs) -> Result<()> {
    each(engine, &a.containers, |id| Ok(lifecycle::remove(engine, id, a.force, a.volumes)?))
}

pub fn wait(engine: &Engine, a: NamesArgs) -> Result<()> {
    let mut last = 0;
    for n in &a.containers {
        let id = resolve(engine, n)?;
        let st = lifecycle::wait(engine, &id, None)?;
        last = st.exit_code.unwrap_or(0);
        println!("{last}");
    }
    let _ = last;
    Ok(())
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    all: bool,
    /// Display total file sizes.
    #[arg(short = 's', long)]
    size: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
}

/// Docker's STATUS column.
pub fn status_text(st: &State) -> String {
    let since = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds().max(0))
            .unwrap_or(0)
    };
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", human_duration(since(&st.started_at))),
        Status::Exited => {
            format!("Exited ({}) {} ago", st.exit_code.unwrap_or(0), human_duration(since(&st.finished_at)))
        }
    }
}

pub fn ps(engine: &Engine, a: PsArgs) -> Result<()> {
    let listed = query::list(engine, a.all, a.size && !a.quiet)?;
    if a.quiet {
        for l in &listed {
            println!("{}", if a.no_trunc { l.config.id.as_str() } else { l.config.id.short() });
        }
        return Ok(());
    }
    let mut header = vec!["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"];
    if a.size {
        header.push("SIZE");
    }
    let mut t = Table::new(&header);
    for l in &listed {
        let c = &l.config;
        let cmd = format!("\"{}\"", c.args.join(" "));
        let cmd = if a.no_trunc { cmd } else { format!("\"{}\"", ellipsis(&c.args.join(" "), 20)) };
        let mut row = vec![
            if a.no_trunc { c.id.to_string() } else { c.id.short().to_owned() },
            c.image_name.clone(),
            cmd,
            ago(&c.created),
            status_text(&l.state),
            String::new(),
            c.name.clone(),
        ];
        if let Some((size, virt)) = l.sizes {
            row.push(format!("{} (virtual {})", human_size(size), human_size(virt)));
        }
        t.row(row);
    }
    print!("{}", t.render());
    Ok(())
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    container: String,
}

pub fn logs(engine: &Engine, a: LogsArgs) -> Result<()> {
    use std::io::Write;
    let id = resolve(engine, &a.container)?;
    crate::ops::container::logs::logs(engine, &id, a.follow, |e| {
        let line = if a.timestamps { format!("{} {}", e.time, e.log) } else { e.log.clone() };
        if e.stream == "stderr" {
            let _ = std::io::stderr().write_all(line.as_bytes());
        } else {
            let _ = std::io::stdout().write_all(line.as_bytes());
            let _ = std::io::stdout().flush();
        }
    })?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep STDIN open: copy ours to the process (else it reads /dev/null).
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY in the container and relay it.
    #[arg(short = 't', long)]
    tty: bool,
    /// Detached mode: run the command in the background.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Set environment variables.
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Username or UID.
    #[arg(short = 'u', long)]
    user: Option<String>,
    container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

pub fn exec(engine: &Engine, a: ExecArgs) -> Result<()> {
    use crate::ops::container::exec::{exec, ExecError, ExecOptions};
    let id = resolve(engine, &a.container)?;
    let o = ExecOptions {
        args: a.command,
        env: a.env,
        workdir: a.workdir,
        user: a.user,
        tty: a.tty,
        interactive: a.interactive,
        detach: a.detach,
    };
    let code = exec(engine, &id, &o).map_err(|e| match e {
        ExecError::Start(e) => ExitCode { code: e.code, message: e.message },
        e => ExitCode { code: 1, message: e.to_string() },
    })?;
    if code != 0 {
        return Err(ExitCode { code, message: String::new() }.into());
    }
    Ok(())
}

pub fn diff(engine: &Engine, a: NameArg) -> Result<()> {
    let id = resolve(engine, &a.container)?;
    for c in crate::ops::container::fs::diff(engine, &id)? {
        println!("{} {}", c.kind, c.path);
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct NameArg {
    container: String,
}

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// Commit message.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Apply Dockerfile instructions to the created image.
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    container: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

pub fn commit(engine: &Engine, a: CommitArgs) -> Result<()> {
    let changes = super::images::parse_changes(&a.change)?;
    let id = resolve(engine, &a.container)?;
    let image = crate::ops::container::fs::commit(engine, &id, a.message, changes)?;
    if let Some(r) = a.reference {
        let r: crate::image::reference::Reference =
            r.parse().with_context(|| format!("invalid reference format: {r}"))?;
        engine.images.tag(&image, &r)?;
    }
    println!("{image}");
    Ok(())
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write to a file instead of STDOUT.
    #[arg(short = 'o', long)]
    output: Option<std::path::PathBuf>,
    container: String,
}

pub fn export(engine: &Engine, a: ExportArgs) -> Result<()> {
    let id = resolve(engine, &a.container)?;
    match a.output {
        Some(path) => {
            let f = std::fs::File::create(&path).with_context(|| format!("create {}", path.display()))?;
            crate::ops::container::fs::export(engine, &id, f)?;
        }
        None => {
            use std::io::IsTerminal;
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
            }
            crate::ops::container::fs::export(engine, &id, std::io::stdout().lock())?;
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct CpArgs {
    /// Archive mode: keep the source's owners, setuid/setgid bits and
    /// extended attributes.
    #[arg(short = 'a', long)]
    archive: bool,
    /// Always follow a symbolic link in SRC_PATH (inside the container's
    /// root when copying out).
    #[arg(short = 'L', long = "follow-link")]
    follow_link: bool,
    /// CONTAINER:SRC_PATH or a host path.
    src: String,
    /// CONTAINER:DEST_PATH or a host path.
    dest: String,
}

pub fn cp(engine: &Engine, a: CpArgs) -> Result<()> {
    let split = |s: &str| -> Option<(String, String)> {
        let (c, p) = s.split_once(':')?;
        (!c.is_empty() && !c.contains('/')).then(|| (c.to_owned(), p.to_owned()))
    };
    let opts = crate::ops::container::fs::CopyOptions { archive: a.archive, follow_link: a.follow_link };
    let report = match (split(&a.src), split(&a.dest)) {
        (Some((c, p)), None) if a.dest == "-" => {
            let id = resolve(engine, &c)?;
            let stdout = std::io::stdout().lock();
            crate::ops::container::fs::copy_out_tar(engine, &id, &p, opts, stdout)?;
            return Ok(());
        }
        (None, Some(_)) if a.src == "-" => {
            bail!("copying a tar stream from standard input (cp - CONTAINER:PATH) is not supported yet; copy a path")
        }
        (Some((c, p)), None) => {
            let id = resolve(engine, &c)?;
            crate::ops::container::fs::copy_out(engine, &id, &p, std::path::Path::new(&a.dest), opts)?
        }
        (None, Some((c, p))) => {
            let id = resolve(engine, &c)?;
            crate::ops::container::fs::copy_in(engine, &id, std::path::Path::new(&a.src), &p, opts)?
        }
        _ => {
            bail!("copying between containers is not supported; one side must be a host path (CONTAINER:PATH and PATH)")
        }
    };
    for s in report.skipped {
        eprintln!("warning: skipped {}: {}", s.path, s.reason);
    }
    Ok(())
}
