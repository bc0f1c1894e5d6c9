//! `strata-runc`: runc's command line over strata's executor
//! ([`crate::runtime`]), so containerd (through go-runc and its shims),
//! Docker and podman (through conmon) start containers through strata.
//!
//! Arguments are taken exactly as those callers pass them (global flags
//! before the command, `--flag value` and `--flag=value`); errors go to
//! stderr and, with `--log`, to the log file as logrus would write them
//! (`--log-format json`: `{"level":"error","msg":…,"time":…}`, the last
//! of which containerd's shim reports when create or start fails).

mod commands;
mod log;
mod signal;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// An OCI runtime with runc's command line, over strata's executor.
#[derive(Debug, Parser)]
#[command(name = "strata-runc", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Root directory for the containers' state.
    #[arg(long, global = true, default_value = crate::runtime::DEFAULT_STATE_ROOT)]
    root: PathBuf,
    /// Log file (default: stderr only).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, default_value = "text")]
    log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Manage cgroups through systemd (refused: strata-runc manages
    /// cgroupfs directly).
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Accepted for runc compatibility (checkpointing is not supported).
    #[arg(long, global = true)]
    criu: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(CreateArgs),
    /// Run the process of a created container.
    Start(IdArg),
    /// Create and start a container, and wait for it (unless --detach).
    Run(RunArgs),
    /// Output the state of a container (OCI state JSON).
    State(IdArg),
    /// Send a signal to the container's init (or all its processes).
    Kill(KillArgs),
    /// Delete a stopped container (or, with --force, any).
    Delete(DeleteArgs),
    /// Run a new process inside a container.
    Exec(ExecArgs),
    /// List the processes of a container.
    Ps(PsArgs),
    /// List containers.
    List(ListArgs),
    /// Freeze every process of a container.
    Pause(IdArg),
    /// Thaw a paused container.
    Resume(IdArg),
    /// Update a container's resource limits.
    Update(UpdateArgs),
    /// Display a container's events (with --stats, one set of statistics).
    Events(EventsArgs),
    /// Output what this runtime supports (OCI features JSON).
    Features,
    /// Write a default config.json into a bundle.
    Spec(SpecArgs),
}

#[derive(Debug, Args)]
struct IdArg {
    id: String,
}

#[derive(Debug, Args)]
struct CreateArgs {
    /// The bundle directory (default: the current directory).
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Move the root instead of pivot_root (for ramdisk roots).
    #[arg(long)]
    no_pivot: bool,
    /// Keep the caller's session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Pass descriptors 3 .. 3+N to the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Return once started instead of waiting.
    #[arg(long, short = 'd')]
    detach: bool,
    /// Keep the state when the container exits.
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
struct KillArgs {
    /// Signal every process of the container.
    #[arg(long, short = 'a')]
    all: bool,
    id: String,
    /// Name (TERM, SIGTERM) or number; SIGTERM by default.
    #[arg(default_value = "SIGTERM")]
    signal: String,
}

#[derive(Debug, Args)]
struct DeleteArgs {
    /// Kill the container first if it is still running.
    #[arg(long, short = 'f')]
    force: bool,
    id: String,
}

#[derive(Debug, Args)]
struct ExecArgs {
    /// A JSON file holding the OCI `process` to run.
    #[arg(long, short = 'p')]
    process: Option<PathBuf>,
    #[arg(long, short = 't')]
    tty: bool,
    #[arg(long)]
    cwd: Option<String>,
    #[arg(long, short = 'e')]
    env: Vec<String>,
    /// uid[:gid]
    #[arg(long, short = 'u')]
    user: Option<String>,
    #[arg(long, short = 'g')]
    additional_gids: Vec<u32>,
    #[arg(long, short = 'c')]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    #[arg(long, short = 'd')]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    /// Refused unless empty: no AppArmor or SELinux here.
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long)]
    process_label: Option<String>,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct PsArgs {
    #[arg(long, short = 'f', default_value = "table")]
    format: String,
    id: String,
    /// Options for ps(1) (table format only).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[arg(long, short = 'f', default_value = "table")]
    format: String,
    /// IDs only.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Debug, Args)]
struct UpdateArgs {
    /// A JSON file of OCI `linux.resources`, or `-` for stdin.
    #[arg(long, short = 'r')]
    resources: Option<String>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long)]
    memory_swap: Option<String>,
    #[arg(long)]
    pids_limit: Option<i64>,
    #[arg(long)]
    cpu_quota: Option<i64>,
    #[arg(long)]
    cpu_period: Option<u64>,
    #[arg(long)]
    cpu_shares: Option<u64>,
    id: String,
}

#[derive(Debug, Args)]
struct EventsArgs {
    /// Print one set of statistics and exit.
    #[arg(long)]
    stats: bool,
    /// Seconds between statistics (streaming is not supported).
    #[arg(long, default_value = "5s")]
    interval: String,
    id: String,
}

#[derive(Debug, Args)]
struct SpecArgs {
    #[arg(long, short = 'b', default_value = ".")]
    bundle: PathBuf,
    #[arg(long)]
    rootless: bool,
}

/// Entry point of the `strata-runc` binary; returns the exit status.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
        }
    };
    let logger = log::Logger::new(cli.log.as_deref(), &cli.log_format, cli.debug);
    if cli.systemd_cgroup {
        let pid1 = std::fs::read_to_string("/proc/1/comm").unwrap_or_default();
        let why = if pid1.trim() == "systemd" {
            "strata-runc manages cgroupfs directly"
        } else {
            "systemd is not PID 1 on this host"
        };
        logger.error(&format!("--systemd-cgroup is not supported: {why}; configure the caller for cgroupfs"));
        return 1;
    }
    match commands::dispatch(&cli, &logger) {
        Ok(code) => code,
        Err(e) => {
            logger.error(&e.to_string());
            e.exit_code()
        }
    }
}
