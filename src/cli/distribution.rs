//! Registry commands: pull, push, login, logout.

use crate::distribution::auth::Credentials;
use crate::distribution::credentials::CredentialStore;
use crate::distribution::progress::Progress;
use crate::distribution::{self as dist, PullOptions, PushOptions, RegistryOptions};
use crate::engine::Engine;
use crate::image::reference::Reference;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::BufRead;

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Allow plain HTTP to this registry (loopback registries need no flag).
    #[arg(long)]
    insecure_registry: bool,
}

fn registry_options(engine: &Engine, registry: &str, a: &RegistryArgs) -> Result<RegistryOptions> {
    let credentials = CredentialStore::new(engine.root.path()).get(registry)?;
    Ok(RegistryOptions { insecure: a.insecure_registry, credentials, ..RegistryOptions::default() })
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Layers downloaded at once.
    #[arg(long, default_value_t = 3)]
    max_concurrent_downloads: usize,
    #[command(flatten)]
    registry: RegistryArgs,
    /// [REGISTRY/]NAME[:TAG|@DIGEST]
    name: String,
}

pub fn pull(engine: &Engine, a: PullArgs) -> Result<()> {
    let r = Reference::parse(&a.name)?;
    let progress = Progress::stdout(a.quiet);
    let what = r.digest.as_ref().map(|d| d.to_string()).or(r.tag.clone()).unwrap_or_default();
    progress.message(&format!("{what}: Pulling from {}", r.remote_path()));
    let opts = PullOptions {
        registry: registry_options(engine, r.domain(), &a.registry)?,
        concurrency: a.max_concurrent_downloads,
        ..PullOptions::default()
    };
    let pulled = dist::pull(engine, &r, &opts, &progress)?;
    progress.message(&format!("Digest: {}", pulled.digest));
    if pulled.updated {
        progress.message(&format!("Status: Downloaded newer image for {r}"));
    } else {
        progress.message(&format!("Status: Image is up to date for {r}"));
    }
    println!("{}", r.full_name());
    Ok(())
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Suppress verbose output.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Blobs up to this many bytes go in one PUT, larger ones in PATCH
    /// chunks of this size.
    #[arg(long, default_value_t = 32 << 20)]
    chunk_size: u64,
    #[command(flatten)]
    registry: RegistryArgs,
    /// [REGISTRY/]NAME[:TAG]
    name: String,
}

pub fn push(engine: &Engine, a: PushArgs) -> Result<()> {
    let r = Reference::parse(&a.name)?;
    let progress = Progress::stdout(a.quiet);
    progress.message(&format!("The push refers to repository [{}]", r.name()));
    let opts = PushOptions {
        registry: registry_options(engine, r.domain(), &a.registry)?,
        chunk_size: a.chunk_size,
        ..PushOptions::default()
    };
    let pushed = dist::push(engine, &r, &opts, &progress)?;
    progress.message(&format!("{}: digest: {} size: {}", pushed.tag, pushed.digest, pushed.size));
    if a.quiet {
        println!("{r}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (prefer --password-stdin: arguments are visible in ps).
    #[arg(short = 'p', long)]
    password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Registry (host[:port]); Docker Hub when omitted.
    server: Option<String>,
}

fn read_line(prompt: &str) -> Result<String> {
    if !prompt.is_empty() {
        eprint!("{prompt}");
    }
    let mut s = String::new();
    std::io::stdin().lock().read_line(&mut s)?;
    Ok(s.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn login(engine: &Engine, a: LoginArgs) -> Result<()> {
    let server = a.server.clone().unwrap_or_else(|| crate::image::reference::DOCKER_HUB.to_owned());
    let username = match a.username {
        Some(u) => u,
        None if a.password_stdin => bail!("--password-stdin needs --username"),
        None => read_line("Username: ")?,
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, true) => read_line("")?,
        (None, false) => read_line("Password: ")?,
    };
    if username.is_empty() || password.is_empty() {
        bail!("username and password are required");
    }
    let creds = Credentials { username, password };
    let opts = RegistryOptions {
        insecure: a.registry.insecure_registry,
        credentials: Some(creds.clone()),
        ..RegistryOptions::default()
    };
    dist::Client::connect(&server, "", Vec::new(), &opts).with_context(|| format!("login to {server}"))?;
    let store = CredentialStore::new(engine.root.path());
    store.store(&server, &creds)?;
    println!("Login Succeeded");
    Ok(())
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// Registry (host[:port]); Docker Hub when omitted.
    server: Option<String>,
}

pub fn logout(engine: &Engine, a: LogoutArgs) -> Result<()> {
    let server = a.server.unwrap_or_else(|| crate::image::reference::DOCKER_HUB.to_owned());
    if CredentialStore::new(engine.root.path()).erase(&server)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(())
}
