//! runc's logging: errors to stderr, and with `--log FILE` appended to
//! the file as text or as logrus JSON lines, which containerd's shim
//! reads back (`{"level":"error","msg":"…","time":"…"}`).

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
    debug: bool,
}

impl Logger {
    pub fn new(file: Option<&Path>, format: &str, debug: bool) -> Logger {
        Logger { file: file.map(Path::to_owned), json: format == "json", debug }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = crate::time::now();
        if self.json {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        } else {
            format!("time=\"{time}\" level={level} msg={msg:?}")
        }
    }

    fn write(&self, level: &str, msg: &str) {
        if let Some(path) = &self.file {
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{}", self.line(level, msg));
            }
        }
    }

    /// An error: to the log file and to stderr (go-runc callers read the
    /// command's output).
    pub fn error(&self, msg: &str) {
        self.write("error", msg);
        eprintln!("strata-runc: {msg}");
    }

    /// A warning: to the log file only (stderr may be the container's).
    pub fn warn(&self, msg: &str) {
        self.write("warning", msg);
    }

    pub fn debug(&self, msg: &str) {
        if self.debug {
            self.write("debug", msg);
        }
    }
}
