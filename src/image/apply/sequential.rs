//! The simple twin: the whole apply on the calling thread, the `tar`
//! crate parsing, each file written as its entry is read. The parallel
//! path must build the very same tree (see the differential test).

use super::applier::{Applier, Files, NewFile, Op};
use super::entry::{at, create_file, fd_attrs};
use super::{ApplyError, ApplyOutcome, BUF_SIZE};
use crate::digest::{DiffId, HashingReader};
use crate::image::compression::{self, Compression, Decompressor};
use crate::snapshot::Whiteouts;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};

pub(super) fn apply<R: Read>(blob: R, root: OwnedFd, whiteouts: Whiteouts) -> Result<ApplyOutcome, ApplyError> {
    let mut compressed = HashingReader::new(blob);
    let (compression, sniffed) = compression::sniff(&mut compressed).map_err(ApplyError::Read)?;
    let decoder =
        Decompressor::new(BufReader::with_capacity(BUF_SIZE, sniffed), compression).map_err(ApplyError::Read)?;
    let mut applier = Applier::new(root, whiteouts, false, 1);
    // An uncompressed blob *is* the tar: hashing it twice would double the
    // CPU cost of apply for nothing.
    let (plain, content_size) = if compression == Compression::None {
        (None, extract(decoder, &mut applier)?)
    } else {
        let mut plain = HashingReader::new(decoder);
        let content_size = extract(&mut plain, &mut applier)?;
        (Some(plain.finish()), content_size)
    };
    io::copy(&mut compressed, &mut io::sink()).map_err(ApplyError::Read)?;
    let (compressed, compressed_size) = compressed.finish();
    let (diff_id, size) = plain.unwrap_or_else(|| (compressed.clone(), compressed_size));
    Ok(ApplyOutcome { diff_id: DiffId(diff_id), compressed, compressed_size, size, content_size, compression })
}

/// Extracts every entry of the tar `stream`, then reads the stream to its
/// end: the tar reader stops at the first zero block, but the rest
/// (end-of-archive blocks, record padding, the gzip trailer whose CRC is
/// checked here) is still covered by the digests. Returns the bytes of
/// regular-file content.
fn extract(mut stream: impl Read, applier: &mut Applier) -> Result<u64, ApplyError> {
    let mut content = 0u64;
    {
        let mut archive = tar::Archive::new(BufReader::with_capacity(BUF_SIZE, &mut stream));
        let mut inline = Inline { buf: vec![0; BUF_SIZE] };
        for entry in archive.entries().map_err(ApplyError::Read)? {
            let mut entry = entry.map_err(ApplyError::Read)?;
            if entry.header().entry_type().is_file() {
                content += entry.size();
            }
            applier.entry(&mut entry, &mut inline)?;
        }
    }
    applier.finish()?;
    io::copy(&mut stream, &mut io::sink()).map_err(ApplyError::Read)?;
    Ok(content)
}

/// Files written on the spot; nothing is ever pending.
struct Inline {
    buf: Vec<u8>,
}

impl<R: Read> Files<tar::Entry<'_, R>> for Inline {
    fn order(&mut self, _: Op<'_>) -> Result<(), ApplyError> {
        Ok(())
    }

    fn file(&mut self, entry: &mut tar::Entry<'_, R>, f: NewFile) -> Result<(), ApplyError> {
        let mut file = std::fs::File::from(create_file(f.parent.as_fd(), &f.name, &f.raw)?);
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(at(&f.raw, "read data")(e)),
            };
            file.write_all(&self.buf[..n]).map_err(at(&f.raw, "write data"))?;
        }
        fd_attrs(file.as_fd(), &f.attrs, &f.raw)
    }
}
