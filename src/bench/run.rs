//! Running the peers: shell-free pipelines of external tools, and the
//! `syncfs(2)` every timed region may end with.

use super::BenchError;
use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// `a | b | c` as a person would type it.
pub fn describe(stages: &[Vec<OsString>]) -> String {
    stages
        .iter()
        .map(|s| s.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Runs `stages` connected by pipes (no shell involved), waits for all of
/// them and returns the last stage's stdout. Any stage exiting non-zero is
/// an error carrying its stderr.
pub fn pipeline(stages: &[Vec<OsString>]) -> Result<Vec<u8>, BenchError> {
    let command = describe(stages);
    let mut children: Vec<(Child, JoinHandle<Vec<u8>>)> = Vec::new();
    let mut prev = None;
    let mut spawn_error = None;
    for (i, stage) in stages.iter().enumerate() {
        let Some((prog, args)) = stage.split_first() else { continue };
        let stdin = match prev.take() {
            Some(out) => Stdio::from(out),
            None => Stdio::null(),
        };
        let spawned = Command::new(prog).args(args).stdin(stdin).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(source) => {
                spawn_error = Some(BenchError::Spawn { command: command.clone(), source });
                break;
            }
        };
        let err = child.stderr.take().map(drain).unwrap_or_else(|| drain(std::io::empty()));
        if i + 1 < stages.len() {
            prev = child.stdout.take();
        }
        children.push((child, err));
    }
    drop(prev);
    let out = match children.last_mut().and_then(|(c, _)| c.stdout.take()) {
        Some(stdout) if spawn_error.is_none() => drain(stdout).join().unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut failure = spawn_error;
    // Wait for every stage, even after a failure: no zombies, no stray
    // writers into the filesystem about to be unmounted.
    for (mut child, err) in children {
        let status = child.wait().map_err(|source| BenchError::Spawn { command: command.clone(), source });
        let stderr = err.join().unwrap_or_default();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                failure.get_or_insert(BenchError::Tool {
                    command: command.clone(),
                    status: s.to_string(),
                    stderr: String::from_utf8_lossy(&stderr).trim().to_owned(),
                });
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// `syncfs(2)` on the filesystem holding `path`: writes back its dirty
/// data and metadata and waits for it.
pub fn syncfs(path: &Path) -> Result<(), BenchError> {
    crate::sys::fs::syncfs_path(path).map_err(|source| BenchError::Io { what: "syncfs", path: path.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    #[test]
    fn pipes_stages_and_reports_failures() {
        let out = pipeline(&[stage(&["echo", "hello"]), stage(&["tr", "a-z", "A-Z"])]).unwrap();
        assert_eq!(out, b"HELLO\n");
        match pipeline(&[stage(&["echo", "x"]), stage(&["sh", "-c", "cat >/dev/null; echo bad >&2; exit 3"])]) {
            Err(BenchError::Tool { stderr, status, command }) => {
                assert_eq!(stderr, "bad");
                assert!(status.contains('3'), "{status}");
                assert_eq!(command, "echo x | sh -c cat >/dev/null; echo bad >&2; exit 3");
            }
            other => panic!("expected a tool failure, got {other:?}"),
        }
        assert!(matches!(pipeline(&[stage(&["/nonexistent/tool"])]), Err(BenchError::Spawn { .. })));
    }
}
