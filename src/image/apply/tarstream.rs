//! A tar reader over a stream of shared chunks: headers (ustar, GNU long
//! names and links, PAX per-entry records) are parsed in place and file
//! data is handed out as [`Piece`]s — ranges of the chunks it arrived in —
//! so it reaches `write(2)` without being copied again.
//!
//! It does no I/O: chunks come from any [`Chunks`] source. It follows the
//! `tar` crate's reading rules exactly (checksum, GNU long names over PAX
//! `path`, PAX `size`/`uid`/`gid` overriding the header, end at the first
//! zero block) so the parallel path parses a layer as the sequential twin
//! does. GNU sparse entries are not expanded (no OCI writer emits them);
//! the applier refuses them.

use super::entry::Entry;
use std::borrow::Cow;
use std::io;
use std::ops::Deref;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;

const BLOCK: usize = 512;
/// Longest GNU long name/link or PAX record block accepted: far above any
/// real path (`PATH_MAX` is 4096) or xattr set (64 KiB per value).
const MAX_EXTENSION: u64 = 16 << 20;

/// A buffer of the uncompressed stream. When the last reference goes, the
/// buffer goes back to the pool it came from.
pub(super) struct Chunk {
    buf: Vec<u8>,
    len: usize,
    pool: Option<SyncSender<Vec<u8>>>,
}

impl Chunk {
    /// The first `len` bytes of `buf`, returned to `pool` when dropped.
    pub fn new(buf: Vec<u8>, len: usize, pool: Option<SyncSender<Vec<u8>>>) -> Chunk {
        assert!(len <= buf.len());
        Chunk { buf, len, pool }
    }
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            // The pool holds every buffer it ever handed out, so it has
            // room; if the reader is gone the buffer is simply freed.
            let _ = pool.try_send(std::mem::take(&mut self.buf));
        }
    }
}

/// A range of a chunk: part of a file's data.
pub(super) struct Piece {
    chunk: Arc<Chunk>,
    start: usize,
    end: usize,
}

impl Deref for Piece {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.chunk[self.start..self.end]
    }
}

/// A source of chunks: `Ok(None)` at end of stream.
pub(super) trait Chunks {
    fn next_chunk(&mut self) -> io::Result<Option<Arc<Chunk>>>;
}

/// An entry's headers, its data still in the stream.
pub(super) struct Parsed {
    header: tar::Header,
    long_path: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    pax: Option<Vec<u8>>,
    /// Bytes of data that follow the header.
    pub size: u64,
}

fn strip_nul(b: &[u8]) -> &[u8] {
    b.strip_suffix(&[0]).unwrap_or(b)
}

fn pax_value<'a>(pax: &'a [u8], key: &str) -> Option<&'a [u8]> {
    tar::PaxExtensions::new(pax)
        .filter_map(|e| e.ok())
        .find(|e| e.key_bytes() == key.as_bytes())
        .map(|e| e.value_bytes())
}

fn pax_number(pax: &[u8], key: &str) -> Option<u64> {
    // The first record with the key decides, as in the `tar` crate.
    for ext in tar::PaxExtensions::new(pax) {
        let ext = ext.ok()?;
        if ext.key() == Ok(key) {
            return ext.value().ok()?.parse().ok();
        }
    }
    None
}

impl Entry for Parsed {
    fn header(&self) -> &tar::Header {
        &self.header
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn path_bytes(&self) -> Cow<'_, [u8]> {
        if let Some(p) = &self.long_path {
            return Cow::Borrowed(strip_nul(p));
        }
        if let Some(p) = self.pax.as_deref().and_then(|pax| pax_value(pax, "path")) {
            return Cow::Borrowed(p);
        }
        self.header.path_bytes()
    }
    fn link_name_bytes(&self) -> Option<Cow<'_, [u8]>> {
        if let Some(p) = &self.long_link {
            return Some(Cow::Borrowed(strip_nul(p)));
        }
        if let Some(p) = self.pax.as_deref().and_then(|pax| pax_value(pax, "linkpath")) {
            return Some(Cow::Borrowed(p));
        }
        self.header.link_name_bytes()
    }
    fn pax_extensions(&mut self) -> io::Result<Option<tar::PaxExtensions<'_>>> {
        Ok(self.pax.as_deref().map(tar::PaxExtensions::new))
    }
}

/// Where an error is: the header at byte `at`, and the name its name
/// field spells (a long name comes from an extension header before it).
#[derive(Clone, Copy)]
struct At {
    offset: u64,
    name: [u8; 100],
}

impl At {
    const START: At = At { offset: 0, name: [0; 100] };

    fn new(offset: u64, block: &[u8; BLOCK]) -> At {
        let mut name = [0; 100];
        name.copy_from_slice(&block[..100]);
        At { offset, name }
    }

    fn error(&self, kind: io::ErrorKind, what: impl std::fmt::Display) -> io::Error {
        let end = self.name.iter().position(|b| *b == 0).unwrap_or(self.name.len());
        let name = String::from_utf8_lossy(&self.name[..end]);
        io::Error::new(kind, format!("tar header at byte {} ({name:?}): {what}", self.offset))
    }

    fn other(&self, what: impl std::fmt::Display) -> io::Error {
        self.error(io::ErrorKind::InvalidData, what)
    }

    fn eof(&self, what: &str) -> io::Error {
        self.error(io::ErrorKind::UnexpectedEof, format!("unexpected end of layer in {what}"))
    }
}

/// The tar reader. After [`TarStream::next_entry`] the entry's data is
/// next in the stream: take it with [`TarStream::data`], or leave it and
/// the next call skips it.
pub(super) struct TarStream<C> {
    src: C,
    cur: Option<Arc<Chunk>>,
    pos: usize,
    /// Data of the current entry not yet taken, then its padding.
    remaining: u64,
    pad: u64,
    /// Bytes consumed so far.
    offset: u64,
    /// The header of the current entry, for errors in its data.
    at: At,
}

impl<C: Chunks> TarStream<C> {
    pub fn new(src: C) -> TarStream<C> {
        TarStream { src, cur: None, pos: 0, remaining: 0, pad: 0, offset: 0, at: At::START }
    }

    /// Makes sure the current chunk has unread bytes; `false` at end of
    /// stream.
    fn fill(&mut self) -> io::Result<bool> {
        loop {
            if let Some(c) = &self.cur {
                if self.pos < c.len() {
                    return Ok(true);
                }
            }
            match self.src.next_chunk()? {
                Some(c) => {
                    self.cur = Some(c);
                    self.pos = 0;
                }
                None => {
                    self.cur = None;
                    return Ok(false);
                }
            }
        }
    }

    /// Hands out the next `n` bytes (fewer only at end of stream) as
    /// pieces.
    fn pieces(&mut self, mut n: u64, mut f: impl FnMut(Piece)) -> io::Result<u64> {
        let mut got = 0;
        while n > 0 && self.fill()? {
            let chunk = self.cur.as_ref().expect("filled");
            let avail = chunk.len() - self.pos;
            let take = usize::try_from(n).map_or(avail, |n| n.min(avail));
            f(Piece { chunk: chunk.clone(), start: self.pos, end: self.pos + take });
            self.pos += take;
            n -= take as u64;
            got += take as u64;
        }
        self.offset += got;
        Ok(got)
    }

    fn skip(&mut self, n: u64, what: &str) -> io::Result<()> {
        if self.pieces(n, drop)? < n {
            return Err(self.at.eof(what));
        }
        Ok(())
    }

    /// Copies the next `out.len()` bytes; how many were there.
    fn copy(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        let want = out.len() as u64;
        self.pieces(want, |p| {
            out[filled..filled + p.len()].copy_from_slice(&p);
            filled += p.len();
        })?;
        Ok(filled)
    }

    /// The current entry's data (what is left of it) as pieces.
    pub fn data(&mut self, f: impl FnMut(Piece)) -> io::Result<()> {
        let n = self.remaining;
        self.remaining = 0;
        let got = self.pieces(n, f)?;
        if got < n {
            return Err(self.at.eof(&format!("its data ({got} of {n} bytes)")));
        }
        Ok(())
    }

    /// Data of an extension header (long name, PAX records), grown as it
    /// arrives: memory follows the bytes present, never the size the
    /// header claims.
    fn read_extension(&mut self) -> io::Result<Vec<u8>> {
        let n = self.remaining;
        if n > MAX_EXTENSION {
            return Err(self.at.other(format!("extension header of {n} bytes, over the {MAX_EXTENSION}-byte limit")));
        }
        self.remaining = 0;
        let mut out = Vec::new();
        if self.pieces(n, |p| out.extend_from_slice(&p))? < n {
            return Err(self.at.eof(&format!("extension header data ({} of {n} bytes)", out.len())));
        }
        Ok(out)
    }

    /// The next entry, or `None` at the end-of-archive marker (or a clean
    /// end of stream).
    pub fn next_entry(&mut self) -> io::Result<Option<Parsed>> {
        let (mut long_path, mut long_link, mut pax) = (None, None, None);
        let mut processed = 0;
        loop {
            processed += 1;
            let skip = self.remaining + self.pad;
            (self.remaining, self.pad) = (0, 0);
            self.skip(skip, "its data")?;
            let start = self.offset;
            let mut block = [0u8; BLOCK];
            let n = self.copy(&mut block)?;
            let at = At::new(start, &block);
            if n == 0 || block.iter().all(|b| *b == 0) {
                if n != 0 && n < BLOCK {
                    return Err(at.eof(&format!("a header ({n} of {BLOCK} bytes)")));
                }
                if processed > 1 {
                    let what = "members found describing a future member but no future member found";
                    return Err(self.at.other(what));
                }
                return Ok(None);
            }
            if n < BLOCK {
                return Err(at.eof(&format!("a header ({n} of {BLOCK} bytes)")));
            }
            self.at = at;
            let mut header = tar::Header::from_byte_slice(&block).clone();
            let sum = block[..148].iter().chain(&block[156..]).fold(0u32, |a, b| a + u32::from(*b)) + 8 * 32;
            if sum != header.cksum().map_err(|e| at.other(e))? {
                return Err(at.other("archive header checksum mismatch"));
            }
            let kind = header.entry_type();
            let extension = kind.is_gnu_longname()
                || kind.is_gnu_longlink()
                || kind.is_pax_local_extensions()
                || kind.is_pax_global_extensions();
            let mut size = header.entry_size().map_err(|e| at.other(e))?;
            if let Some(p) = pax.as_deref().filter(|_| !extension) {
                if let Some(s) = pax_number(p, "size") {
                    size = s;
                }
                if let Some(uid) = pax_number(p, "uid") {
                    header.set_uid(uid);
                }
                if let Some(gid) = pax_number(p, "gid") {
                    header.set_gid(gid);
                }
            }
            let padded =
                size.checked_add(BLOCK as u64 - 1).ok_or_else(|| at.other(format!("size {size} overflows")))?
                    & !(BLOCK as u64 - 1);
            (self.remaining, self.pad) = (size, padded - size);
            let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
            if recognized && kind.is_gnu_longname() {
                if long_path.is_some() {
                    return Err(at.other("two long name entries describing the same member"));
                }
                long_path = Some(self.read_extension()?);
                continue;
            }
            if recognized && kind.is_gnu_longlink() {
                if long_link.is_some() {
                    return Err(at.other("two long name entries describing the same member"));
                }
                long_link = Some(self.read_extension()?);
                continue;
            }
            if recognized && kind.is_pax_local_extensions() {
                if pax.is_some() {
                    return Err(at.other("two pax extensions entries describing the same member"));
                }
                pax = Some(self.read_extension()?);
                continue;
            }
            return Ok(Some(Parsed { header, long_path, long_link, pax, size }));
        }
    }

    /// Reads the stream to its end (end-of-archive blocks, record
    /// padding, anything after), so the digests cover all of it. Returns
    /// the bytes consumed in total.
    pub fn drain(&mut self) -> io::Result<u64> {
        if let Some(c) = self.cur.take() {
            self.offset += (c.len() - self.pos) as u64;
        }
        while let Some(c) = self.src.next_chunk()? {
            self.offset += c.len() as u64;
        }
        Ok(self.offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Chunks of `size` bytes of `data`.
    struct Slices(Vec<Arc<Chunk>>);
    impl Slices {
        fn new(data: &[u8], size: usize) -> Slices {
            Slices(data.chunks(size).rev().map(|c| Arc::new(Chunk::new(c.to_vec(), c.len(), None))).collect())
        }
    }
    impl Chunks for Slices {
        fn next_chunk(&mut self) -> io::Result<Option<Arc<Chunk>>> {
            Ok(self.0.pop())
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let long = format!("{}/file", "d".repeat(200));
        let mut h = tar::Header::new_gnu();
        h.set_size(3000);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, &long, &vec![7u8; 3000][..]).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, "link", "t".repeat(300)).unwrap();
        let mut h = tar::Header::new_ustar();
        h.set_size(5);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_pax_extensions([("SCHILY.xattr.user.a", &b"v"[..]), ("uid", b"3000000")]).unwrap();
        b.append_data(&mut h, "small", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    /// What the `tar` crate and this reader see must agree, for every
    /// chunk size (headers and data split at every offset class).
    #[test]
    fn agrees_with_the_tar_crate_at_any_chunk_size() {
        let data = sample();
        let mut want = Vec::new();
        let mut a = tar::Archive::new(&data[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut d = Vec::new();
            e.read_to_end(&mut d).unwrap();
            let pax: Vec<_> = match tar::Entry::pax_extensions(&mut e).unwrap() {
                Some(x) => x.map(|x| x.unwrap().key_bytes().to_vec()).collect(),
                None => Vec::new(),
            };
            let link = tar::Entry::link_name_bytes(&e).map(|c| c.into_owned());
            want.push((tar::Entry::path_bytes(&e).into_owned(), link, e.header().uid().ok(), pax, d));
        }
        for size in [1, 7, 511, 512, 513, 4096, 1 << 20] {
            let mut s = TarStream::new(Slices::new(&data, size));
            let mut got = Vec::new();
            while let Some(mut e) = s.next_entry().unwrap() {
                let mut d = Vec::new();
                s.data(|p| d.extend_from_slice(&p)).unwrap();
                let pax: Vec<_> = match Entry::pax_extensions(&mut e).unwrap() {
                    Some(x) => x.map(|x| x.unwrap().key_bytes().to_vec()).collect(),
                    None => Vec::new(),
                };
                let link = Entry::link_name_bytes(&e).map(|c| c.into_owned());
                got.push((Entry::path_bytes(&e).into_owned(), link, e.header().uid().ok(), pax, d));
            }
            assert_eq!(got, want, "chunk size {size}");
            assert_eq!(s.drain().unwrap(), data.len() as u64);
        }
    }

    fn parse_all(data: &[u8]) -> io::Result<()> {
        let mut s = TarStream::new(Slices::new(data, 300));
        while s.next_entry()?.is_some() {
            s.data(drop)?;
        }
        s.drain().map(drop)
    }

    #[test]
    fn refuses_bad_checksums_and_truncation() {
        let data = sample();
        parse_all(&data).unwrap();
        // The regular file's header follows the long name header and its
        // one block of data.
        let mut bad = data.clone();
        bad[1024 + 10] ^= 1;
        assert!(parse_all(&bad).unwrap_err().to_string().contains("checksum"));
        assert!(parse_all(&data[..1024 + 512 + 100]).is_err(), "truncated in data");
        assert!(parse_all(&data[..1024 + 100]).is_err(), "truncated in header");
        assert!(parse_all(&data[..1024]).is_err(), "long name without its entry");
    }

    #[test]
    fn errors_name_the_header_offset() {
        let data = sample();
        let mut bad = data.clone();
        bad[1024 + 10] ^= 1;
        let err = parse_all(&bad).unwrap_err().to_string();
        assert!(err.starts_with("tar header at byte 1024 ("), "{err}");
        let err = parse_all(&data[..1024 + 512 + 100]).unwrap_err().to_string();
        assert!(err.contains("at byte 1024") && err.contains("its data (100 of 3000 bytes)"), "{err}");
    }

    /// A long name header claiming 16 MiB in a 1.5 KiB stream: refused at
    /// the end of the stream, with what was there, not after allocating
    /// what the header claimed.
    #[test]
    fn extension_claiming_more_than_present_is_an_end_of_layer() {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(MAX_EXTENSION);
        h.set_cksum();
        let mut data = h.as_bytes().to_vec();
        data.extend_from_slice(&[b'a'; 1024]);
        let err = parse_all(&data).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        assert!(err.to_string().contains("extension header data (1024 of 16777216 bytes)"), "{err}");
        h.set_size(MAX_EXTENSION + 1);
        h.set_cksum();
        data[..512].copy_from_slice(h.as_bytes());
        assert!(parse_all(&data).unwrap_err().to_string().contains("over the 16777216-byte limit"));
    }
}
