//! `logs`: a container's json-file log, all of it, then (when following)
//! what the container writes until its supervisor exits.

use crate::container::log::{read_all, Entry};
use crate::container::records::ContainerStore;
use crate::container::ContainerId;
use crate::engine::Engine;
use std::io::{self, BufRead, Seek};
use std::time::Duration;

/// Hands every log entry of `id` to `each`, oldest first; with `follow`,
/// keeps reading the current file from its end until the container's
/// supervisor is gone.
pub fn logs(engine: &Engine, id: &ContainerId, follow: bool, mut each: impl FnMut(&Entry)) -> io::Result<()> {
    let store = ContainerStore::new(&engine.root);
    let path = store.log_path(id);
    read_all(&path)?.iter().for_each(&mut each);
    if !follow {
        return Ok(());
    }
    let mut f = io::BufReader::new(std::fs::File::open(&path).or_else(|_| {
        std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        std::fs::File::open(&path)
    })?);
    f.seek(io::SeekFrom::End(0))?;
    let mut line = String::new();
    loop {
        line.clear();
        if f.read_line(&mut line)? > 0 {
            if let Ok(e) = serde_json::from_str(&line) {
                each(&e);
            }
            continue;
        }
        if !store.supervised(id) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
