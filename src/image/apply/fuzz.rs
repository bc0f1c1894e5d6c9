//! The layer tar reader's contract, for fuzzing: [`check`] runs any bytes
//! through the parallel path's stream reader ([`TarStream`]) and the header
//! checks layer apply makes on every entry, and asserts:
//! * no panic, and every loop ends: at most one entry per 512-byte block,
//!   never more data than the input holds;
//! * the chunking of the stream changes nothing (the same entries, data and
//!   errors whether bytes arrive whole, in 7-byte or in 512-byte chunks);
//! * it reads what the sequential twin's parser (the `tar` crate) reads:
//!   the same entries (path, link name, size, owner, data) up to the same
//!   point, the same verdict of the header checks, and an error where the
//!   `tar` crate finds one (GNU sparse entries, which only the twin
//!   expands, end the comparison);
//! * an error names where it is: a stream error the header's byte offset
//!   (inside the input), a header check the entry's path and the field;
//! * a header the checks accept has a mode within `0o7777` and owners
//!   below `u32::MAX` once read by [`attrs`];
//! * at most one entry per header block and no more data than the input
//!   holds (extension buffers grow with the bytes present, not the size a
//!   header claims: `tarstream`'s tests pin that).

use super::entry::{attrs, check_header, Entry};
use super::tarstream::{Chunk, Chunks, TarStream};
use super::ApplyError;
use std::io::{self, Read};
use std::sync::Arc;

/// One entry as the contract compares it: path, link name, size, uid, the
/// header checks' verdict, data.
type Seen = (Vec<u8>, Option<Vec<u8>>, u64, Option<u64>, Result<(), String>, Vec<u8>);

/// Chunks of `size` bytes of `data`.
struct Slices(Vec<Arc<Chunk>>);

impl Slices {
    fn new(data: &[u8], size: usize) -> Slices {
        Slices(data.chunks(size.max(1)).rev().map(|c| Arc::new(Chunk::new(c.to_vec(), c.len(), None))).collect())
    }
}

impl Chunks for Slices {
    fn next_chunk(&mut self) -> io::Result<Option<Arc<Chunk>>> {
        Ok(self.0.pop())
    }
}

/// The header checks and [`attrs`] on one entry: `Err` is the message,
/// after checking it names the entry; a contract breach is a panic-free
/// `Err` of the outer result.
fn verdict(entry: &mut impl Entry) -> Result<Result<(), String>, String> {
    let raw = entry.path_bytes().into_owned();
    let mut kind = entry.header().entry_type();
    // A PAX header that reaches apply as an entry (no ustar or GNU magic)
    // is skipped (global) or refused by its type (local); its data are
    // not records for it, though the `tar` crate would read them so.
    if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
        return Ok(Ok(()));
    }
    if kind == tar::EntryType::Regular && raw.ends_with(b"/") {
        kind = tar::EntryType::Directory;
    }
    let named = |e: ApplyError| match &e {
        ApplyError::InvalidHeader { path, detail, .. }
            if *path == String::from_utf8_lossy(&raw) && !detail.is_empty() =>
        {
            Ok(Err(e.to_string()))
        }
        _ => Err(format!("header error does not name the entry {:?}: {e:?}", String::from_utf8_lossy(&raw))),
    };
    if let Err(e) = check_header(entry, kind, &raw) {
        return named(e);
    }
    match attrs(entry, &raw) {
        Err(e) => named(e),
        Ok(a) if a.mode > 0o7777 || a.uid == u32::MAX || a.gid == u32::MAX => {
            Err(format!("accepted header gives mode {:#o}, owner {}:{}", a.mode, a.uid, a.gid))
        }
        Ok(_) => Ok(Ok(())),
    }
}

/// How a read ended.
#[derive(Debug, PartialEq)]
enum End {
    Clean,
    Failed(String),
    /// At a GNU sparse entry: the parallel path refuses it, the twin
    /// expands it (or refuses one without a GNU header).
    Sparse,
}

/// Reads `bytes` with [`TarStream`] in chunks of `chunk`: the entries, and
/// how the read ended.
fn stream(bytes: &[u8], chunk: usize) -> Result<(Vec<Seen>, End), String> {
    let mut s = TarStream::new(Slices::new(bytes, chunk));
    let mut seen = Vec::new();
    let mut data_total = 0usize;
    loop {
        let mut e = match s.next_entry() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(err) => return Ok((seen, End::Failed(located(bytes, err)?))),
        };
        if seen.len() >= bytes.len() / 512 {
            return Err(format!("{} entries from {} bytes", seen.len() + 1, bytes.len()));
        }
        if e.header().entry_type() == tar::EntryType::GNUSparse {
            return Ok((seen, End::Sparse));
        }
        let checked = verdict(&mut e)?;
        let mut data = Vec::new();
        if let Err(err) = s.data(|p| data.extend_from_slice(&p)) {
            return Ok((seen, End::Failed(located(bytes, err)?)));
        }
        data_total += data.len();
        if data_total > bytes.len() {
            return Err(format!("{data_total} bytes of data from {} bytes", bytes.len()));
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        seen.push((e.path_bytes().into_owned(), link, e.size, e.header().uid().ok(), checked, data));
    }
    match s.drain() {
        Ok(n) if n == bytes.len() as u64 => Ok((seen, End::Clean)),
        Ok(n) => Err(format!("drained {n} of {} bytes", bytes.len())),
        Err(err) => Ok((seen, End::Failed(located(bytes, err)?))),
    }
}

/// A stream error's message, after checking it names a header inside the
/// input.
fn located(bytes: &[u8], err: io::Error) -> Result<String, String> {
    let msg = err.to_string();
    let offset = msg.strip_prefix("tar header at byte ").and_then(|r| r.split(' ').next()?.parse::<usize>().ok());
    match offset {
        Some(at) if at < bytes.len() => Ok(msg),
        _ => Err(format!("stream error does not name a header inside the {} bytes: {msg}", bytes.len())),
    }
}

/// What the `tar` crate reads of `bytes`, compared the same way (its
/// error messages aside).
fn tar_crate(bytes: &[u8]) -> Result<(Vec<Seen>, End), String> {
    let failed = || End::Failed(String::new());
    let mut archive = tar::Archive::new(bytes);
    let mut seen = Vec::new();
    let Ok(entries) = archive.entries() else { return Ok((seen, failed())) };
    for e in entries {
        let Ok(mut e) = e else { return Ok((seen, failed())) };
        if e.header().entry_type() == tar::EntryType::GNUSparse {
            return Ok((seen, End::Sparse));
        }
        let checked = verdict(&mut e)?;
        let mut data = Vec::new();
        if e.read_to_end(&mut data).is_err() || data.len() as u64 != e.size() {
            return Ok((seen, failed()));
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        seen.push((e.path_bytes().into_owned(), link, e.size(), e.header().uid().ok(), checked, data));
    }
    Ok((seen, End::Clean))
}

/// Checks the contract on `bytes`; `Err` says which part broke.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let whole = stream(bytes, bytes.len())?;
    for chunk in [7, 512] {
        if stream(bytes, chunk)? != whole {
            return Err(format!("reading in {chunk}-byte chunks differs from reading whole"));
        }
    }
    let (ours, end) = whole;
    let (theirs, their_end) = tar_crate(bytes)?;
    if ours != theirs {
        let at = ours.iter().zip(&theirs).position(|(a, b)| a != b).unwrap_or(ours.len().min(theirs.len()));
        return Err(format!(
            "entry {at} differs from the tar crate's: ours {:?}, theirs {:?} (ours ends {end:?}, theirs {their_end:?})",
            ours.get(at).map(|e| (&e.0, &e.2, &e.4)),
            theirs.get(at).map(|e| (&e.0, &e.2, &e.4))
        ));
    }
    let agree = match (&end, &their_end) {
        (End::Clean, End::Clean) | (End::Failed(_), End::Failed(_)) | (End::Sparse, End::Sparse) => true,
        // A sparse type in a header that is not GNU: the `tar` crate
        // refuses it at once, the parallel path when it meets it.
        (End::Sparse, End::Failed(_)) => true,
        _ => false,
    };
    if !agree {
        return Err(format!("ours ends {end:?}, the tar crate's read {their_end:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
