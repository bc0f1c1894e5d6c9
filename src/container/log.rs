//! The json-file log driver, in Docker's format: one JSON object per line,
//! `{"log":"hello\n","stream":"stdout","time":"2026-…Z"}`, rotated to
//! `<file>.1 … <file>.N-1` when `max-size` is reached.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A log file's mode: Docker's json-file logs are 0640 (root and group
/// root read them; nobody else reads what a container printed).
pub const LOG_MODE: u32 = 0o640;

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(LOG_MODE).open(path)
}

/// One log line as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Appends entries to a json-file log, rotating by size.
#[derive(Debug)]
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    /// Bytes of an unfinished line per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

fn stream_index(stream: &str) -> usize {
    usize::from(stream == "stderr")
}

impl JsonLog {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path, max_size: Option<u64>, max_file: u32) -> io::Result<JsonLog> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_owned(),
            file,
            size,
            max_size,
            max_file: max_file.max(1),
            partial: [vec![], vec![]],
        })
    }

    /// Records bytes a container wrote to `stream` (`stdout`/`stderr`):
    /// one entry per complete line; an unfinished line waits for more.
    pub fn write(&mut self, stream: &str, bytes: &[u8]) -> io::Result<()> {
        let i = stream_index(stream);
        let mut buf = std::mem::take(&mut self.partial[i]);
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            let end = start + nl + 1;
            self.entry(stream, &buf[start..end])?;
            start = end;
        }
        self.partial[i] = buf[start..].to_vec();
        // Very long lines are split like Docker's 16 KiB buffer does.
        if self.partial[i].len() >= 16 * 1024 {
            let line = std::mem::take(&mut self.partial[i]);
            self.entry(stream, &line)?;
        }
        Ok(())
    }

    /// Writes out unfinished lines (at the stream's end).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        for (i, stream) in ["stdout", "stderr"].into_iter().enumerate() {
            let line = std::mem::take(&mut self.partial[i]);
            if !line.is_empty() {
                self.entry(stream, &line)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, stream: &str, line: &[u8]) -> io::Result<()> {
        let e = Entry {
            log: String::from_utf8_lossy(line).into_owned(),
            stream: stream.to_owned(),
            time: crate::time::now(),
        };
        let mut bytes = serde_json::to_vec(&e).map_err(io::Error::other)?;
        bytes.push(b'\n');
        if let Some(max) = self.max_size {
            if self.size > 0 && self.size + bytes.len() as u64 > max {
                self.rotate()?;
            }
        }
        self.file.write_all(&bytes)?;
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.max_file <= 1 {
            self.file.set_len(0)?;
        } else {
            for n in (1..self.max_file - 1).rev() {
                let from = rotated(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, rotated(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1))?;
            self.file = open_append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Every log file of `path`, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..100).map(|n| rotated(path, n)).take_while(|p| p.exists()).collect();
    out.reverse();
    out.push(path.to_owned());
    out
}

/// Reads every entry of a log, oldest first; malformed lines are skipped.
pub fn read_all(path: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for f in files(path) {
        let Ok(file) = File::open(&f) else { continue };
        for line in BufReader::new(file).lines() {
            if let Ok(e) = serde_json::from_str(&line?) {
                out.push(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_become_entries_and_rotate() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, Some(200), 3).unwrap();
        log.write("stdout", b"hel").unwrap();
        log.write("stdout", b"lo\nwor").unwrap();
        log.write("stderr", b"oops\n").unwrap();
        log.flush_partial().unwrap();
        let e = read_all(&p).unwrap();
        assert_eq!(
            e.iter().map(|e| (e.stream.as_str(), e.log.as_str())).collect::<Vec<_>>(),
            vec![("stdout", "hello\n"), ("stderr", "oops\n"), ("stdout", "wor")]
        );
        for i in 0..20 {
            log.write("stdout", format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(
            rotated(&p, 1).exists() && rotated(&p, 2).exists() && !rotated(&p, 3).exists(),
            "max-file=3 keeps 3 files"
        );
        for f in files(&p) {
            assert!(std::fs::metadata(&f).unwrap().len() <= 200, "{f:?} within max-size");
        }
        let last = read_all(&p).unwrap();
        assert_eq!(last.last().unwrap().log, "line 19\n");
        use std::os::unix::fs::PermissionsExt;
        for f in files(&p) {
            assert_eq!(std::fs::metadata(&f).unwrap().permissions().mode() & 0o777, LOG_MODE, "{f:?}");
        }
    }
}
