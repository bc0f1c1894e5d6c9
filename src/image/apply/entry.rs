//! What every entry of a layer carries, whichever parser read it: the
//! header fields and PAX records layer apply looks at, path cleaning, and
//! the per-file operations shared by the sequential and parallel paths.
//! Nothing here knows about threads.

use super::ApplyError;
use crate::image::OVERLAY_XATTR_PREFIX;
use crate::sys::fs as sysfs;
use crate::sys::Errno;
use std::borrow::Cow;
use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};
use tar::EntryType;

/// PAX record prefix for extended attributes (as written by GNU tar,
/// libarchive and Go's `archive/tar`).
const PAX_XATTR: &[u8] = b"SCHILY.xattr.";

/// One tar entry as layer apply sees it. Implemented by the `tar` crate's
/// entries (the sequential path) and by [`super::tarstream::Parsed`] (the
/// parallel path); both follow the `tar` crate's precedence rules (GNU long
/// names over PAX `path` over the header).
pub(super) trait Entry {
    fn header(&self) -> &tar::Header;
    /// Bytes of data that follow the header (PAX `size` over the header's).
    fn size(&self) -> u64;
    fn path_bytes(&self) -> Cow<'_, [u8]>;
    fn link_name_bytes(&self) -> Option<Cow<'_, [u8]>>;
    fn pax_extensions(&mut self) -> io::Result<Option<tar::PaxExtensions<'_>>>;
}

impl<R: Read> Entry for tar::Entry<'_, R> {
    fn header(&self) -> &tar::Header {
        tar::Entry::header(self)
    }
    fn size(&self) -> u64 {
        tar::Entry::size(self)
    }
    fn path_bytes(&self) -> Cow<'_, [u8]> {
        tar::Entry::path_bytes(self)
    }
    fn link_name_bytes(&self) -> Option<Cow<'_, [u8]>> {
        tar::Entry::link_name_bytes(self)
    }
    fn pax_extensions(&mut self) -> io::Result<Option<tar::PaxExtensions<'_>>> {
        tar::Entry::pax_extensions(self)
    }
}

pub(super) fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

/// Splits a tar path into normal components, dropping empty and `.` ones
/// and folding `..` lexically; `None` if `..` climbs above the root.
/// A leading `/` is ignored: absolute entry names are relative to the
/// layer root, as in Docker.
pub(super) fn clean(path: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out: Vec<&[u8]> = Vec::new();
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out)
}

pub(super) fn join(comps: &[&[u8]]) -> Vec<u8> {
    comps.join(&b'/')
}

pub(super) fn is_errno(e: &io::Error, errno: Errno) -> bool {
    Errno::from_io_error(e) == Some(errno)
}

/// Maps an I/O error to the entry `raw` and the operation that failed.
pub(super) fn at<'a>(raw: &'a [u8], op: &'static str) -> impl FnOnce(io::Error) -> ApplyError + 'a {
    move |source| ApplyError::Entry { path: lossy(raw), op, source }
}

/// Runs `create`; if the name is taken, removes whatever is there
/// (recursively, without following symlinks) and runs it again.
pub(super) fn replacing<T>(
    parent: BorrowedFd<'_>,
    name: &[u8],
    mut create: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    match create() {
        Err(e) if is_errno(&e, Errno::EXIST) => {
            sysfs::remove_all_at(parent, name)?;
            create()
        }
        r => r,
    }
}

/// Metadata of one entry, from its header and PAX records.
#[derive(Debug, Clone)]
pub(super) struct Attrs {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A numeric header field, where a blank field (all NUL or space, as some
/// writers leave unused ones) means 0, as in Go's `archive/tar`.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> io::Result<u64> {
    match parsed {
        Err(_) if raw.iter().all(|b| *b == 0 || *b == b' ') => Ok(0),
        r => r,
    }
}

/// Largest owner ID: `u32::MAX` is `(uid_t)-1`, which `chown(2)` reads as
/// "leave unchanged".
const MAX_ID: u64 = u32::MAX as u64 - 1;
/// Largest size: `off_t` (and Go's `archive/tar`) is signed.
const MAX_SIZE: u64 = i64::MAX as u64;
/// The kernel's `dev_t` holds a 12-bit major and a 20-bit minor
/// (`include/linux/kdev_t.h`, `new_encode_dev`); larger numbers would be
/// truncated into another device.
const MAX_MAJOR: u32 = (1 << 12) - 1;
const MAX_MINOR: u32 = (1 << 20) - 1;
/// The file type bits some writers put in the mode field (Go's
/// `archive/tar` `c_IS*`), and the ones each entry type may carry.
const S_IFMT: u64 = 0o170000;

fn type_bits_fit(kind: EntryType, bits: u64) -> bool {
    const FIFO: u64 = 0o010000;
    const CHR: u64 = 0o020000;
    const DIR: u64 = 0o040000;
    const BLK: u64 = 0o060000;
    const REG: u64 = 0o100000;
    const CTG: u64 = 0o110000;
    const LNK: u64 = 0o120000;
    match kind {
        _ if bits == 0 => true,
        EntryType::Regular | EntryType::GNUSparse => bits == REG,
        EntryType::Continuous => bits == REG || bits == CTG,
        EntryType::Directory => bits == DIR,
        EntryType::Symlink => bits == LNK,
        EntryType::Char => bits == CHR,
        EntryType::Block => bits == BLK,
        EntryType::Fifo => bits == FIFO,
        // A hard link may point at any kind of file.
        EntryType::Link => [FIFO, CHR, DIR, BLK, REG, CTG, LNK].contains(&bits),
        _ => true,
    }
}

/// Types whose entries carry no data (Go's `isHeaderOnlyType`): Go reads
/// their size as 0 where the `tar` crate skips that many bytes, so a
/// non-zero size would make the two see different archives.
fn header_only(kind: EntryType) -> bool {
    matches!(
        kind,
        EntryType::Link
            | EntryType::Symlink
            | EntryType::Char
            | EntryType::Block
            | EntryType::Directory
            | EntryType::Fifo
    )
}

/// Refuses a header no honest writer produces, naming the entry and the
/// field: a NUL inside the path or link name, a size beyond `off_t` or
/// data on a type that has none, mode bits beyond `0o7777` other than a
/// file type matching the entry's, owner IDs beyond `u32` (or `-1`),
/// unreadable PAX `uid`/`gid`/`size` records (which the `tar` crate would
/// silently ignore, and Go refuses), device numbers the kernel cannot
/// hold. `kind` is the entry's type as apply treats it.
pub(super) fn check_header(entry: &mut impl Entry, kind: EntryType, raw: &[u8]) -> Result<(), ApplyError> {
    let invalid = |field: &'static str, detail: String| ApplyError::InvalidHeader { path: lossy(raw), field, detail };
    if raw.contains(&0) {
        return Err(invalid("path", "contains a NUL byte".into()));
    }
    if let Some(link) = entry.link_name_bytes().filter(|l| l.contains(&0)) {
        return Err(invalid("link name", format!("{:?} contains a NUL byte", lossy(&link))));
    }
    let size = entry.size();
    if size > MAX_SIZE {
        return Err(invalid("size", format!("{size} is beyond the largest file size, {MAX_SIZE}")));
    }
    if size != 0 && header_only(kind) {
        return Err(invalid("size", format!("{size} bytes of data on a {kind:?} entry, which has none")));
    }
    let h = entry.header();
    let old = h.as_old();
    let mode = numeric(h.mode().map(u64::from), &old.mode).map_err(|e| invalid("mode", e.to_string()))?;
    if mode & !(S_IFMT | 0o7777) != 0 {
        return Err(invalid("mode", format!("{mode:#o} has bits beyond the file type and 0o7777")));
    }
    if !type_bits_fit(kind, mode & S_IFMT) {
        return Err(invalid("mode", format!("{mode:#o} gives a file type that is not a {kind:?} entry's")));
    }
    for (field, parsed, raw_field) in [("uid", h.uid(), &old.uid), ("gid", h.gid(), &old.gid)] {
        let id = numeric(parsed, raw_field).map_err(|e| invalid(field, e.to_string()))?;
        if id > MAX_ID {
            return Err(invalid(field, format!("{id} is beyond the largest ID, {MAX_ID}")));
        }
    }
    if matches!(kind, EntryType::Char | EntryType::Block) {
        let major = h.device_major().map_err(|e| invalid("device major", e.to_string()))?.unwrap_or(0);
        let minor = h.device_minor().map_err(|e| invalid("device minor", e.to_string()))?.unwrap_or(0);
        if major > MAX_MAJOR || minor > MAX_MINOR {
            return Err(invalid("device", format!("{major}:{minor} is beyond the kernel's {MAX_MAJOR}:{MAX_MINOR}")));
        }
    }
    if let Some(exts) = entry.pax_extensions().map_err(|e| invalid("pax header", e.to_string()))? {
        for ext in exts {
            let ext = ext.map_err(|e| invalid("pax header", e.to_string()))?;
            let (field, max) = match ext.key_bytes() {
                b"uid" => ("pax uid", MAX_ID),
                b"gid" => ("pax gid", MAX_ID),
                b"size" => ("pax size", MAX_SIZE),
                _ => continue,
            };
            let value = ext.value_bytes();
            let n = std::str::from_utf8(value).ok().filter(|v| v.bytes().all(|b| b.is_ascii_digit()));
            match n.and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n <= max => {}
                _ => return Err(invalid(field, format!("{:?} is not a decimal number up to {max}", lossy(value)))),
            }
        }
    }
    Ok(())
}

/// Parses a PAX time (`[-]seconds[.fraction]`, POSIX pax "mtime").
pub(super) fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let mut nanos: u32 = 0;
    for (i, d) in frac.bytes().take(9).enumerate() {
        nanos += u32::from(d - b'0') * 10u32.pow(8 - u32::try_from(i).ok()?);
    }
    Some(match (neg, nanos) {
        (false, n) => (secs, n),
        (true, 0) => (-secs, 0),
        (true, n) => (-secs - 1, 1_000_000_000 - n),
    })
}

/// The entry's metadata: header fields, then PAX times and xattrs.
pub(super) fn attrs(entry: &mut impl Entry, path: &[u8]) -> Result<Attrs, ApplyError> {
    let invalid = |field: &'static str, detail: String| ApplyError::InvalidHeader { path: lossy(path), field, detail };
    let h = entry.header();
    let old = h.as_old();
    let mode = numeric(h.mode().map(u64::from), &old.mode).map_err(|e| invalid("mode", e.to_string()))? & 0o7777;
    let mode = u32::try_from(mode).unwrap_or(0);
    let uid = numeric(h.uid(), &old.uid).map_err(|e| invalid("uid", e.to_string()))?;
    let uid = u32::try_from(uid).map_err(|_| invalid("uid", uid.to_string()))?;
    let gid = numeric(h.gid(), &old.gid).map_err(|e| invalid("gid", e.to_string()))?;
    let gid = u32::try_from(gid).map_err(|_| invalid("gid", gid.to_string()))?;
    let mtime = numeric(h.mtime(), &old.mtime).map_err(|e| invalid("mtime", e.to_string()))?;
    let mut mtime = (i64::try_from(mtime).map_err(|_| invalid("mtime", mtime.to_string()))?, 0);
    let mut atime =
        h.as_gnu().and_then(|g| g.atime().ok()).and_then(|a| i64::try_from(a).ok()).filter(|a| *a != 0).map(|a| (a, 0));
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| invalid("pax header", e.to_string()))? {
        for ext in exts {
            let ext = ext.map_err(|e| invalid("pax header", e.to_string()))?;
            match ext.key_bytes() {
                b"mtime" => {
                    mtime = parse_pax_time(ext.value_bytes())
                        .ok_or_else(|| invalid("pax mtime", lossy(ext.value_bytes())))?
                }
                b"atime" => {
                    atime = Some(
                        parse_pax_time(ext.value_bytes())
                            .ok_or_else(|| invalid("pax atime", lossy(ext.value_bytes())))?,
                    )
                }
                k => {
                    if let Some(name) = k.strip_prefix(PAX_XATTR) {
                        if !name.starts_with(OVERLAY_XATTR_PREFIX) {
                            xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                        }
                    }
                }
            }
        }
    }
    // Docker's rule: an access time older than the modification time (or
    // none at all) becomes the modification time.
    let atime = atime.filter(|a| *a >= mtime).unwrap_or(mtime);
    Ok(Attrs { mode, uid, gid, atime, mtime, xattrs })
}

/// Whether an xattr failure is one to skip: the filesystem does not
/// support the namespace, or (for symlinks and device nodes) the kernel
/// refuses `user.*` on that file type.
pub(super) fn ignorable_xattr_error(e: &io::Error, special: bool) -> bool {
    is_errno(e, Errno::OPNOTSUPP) || (special && is_errno(e, Errno::PERM))
}

/// Creates the regular file `name` in `parent`, replacing whatever is
/// there; never follows a symlink in `name`.
pub(super) fn create_file(parent: BorrowedFd<'_>, name: &[u8], raw: &[u8]) -> Result<OwnedFd, ApplyError> {
    replacing(parent, name, || sysfs::create_file_at(parent, name)).map_err(at(raw, "create file"))
}

/// [`create_file`] with the entry's permission bits (less the umask), so
/// that [`fd_attrs_created`] can usually skip the chmod.
pub(super) fn create_file_mode(
    parent: BorrowedFd<'_>,
    name: &[u8],
    mode: u32,
    raw: &[u8],
) -> Result<OwnedFd, ApplyError> {
    replacing(parent, name, || sysfs::create_file_mode_at(parent, name, mode)).map_err(at(raw, "create file"))
}

/// [`fd_attrs`] for a file this apply just created: one `fstat` first,
/// then chown and chmod only where the new file differs from the entry
/// (root-owned files with ordinary modes need neither). The new file had
/// no setuid/setgid bits, so a chown cannot clear any the entry wants.
pub(super) fn fd_attrs_created(fd: BorrowedFd<'_>, attrs: &Attrs, raw: &[u8]) -> Result<(), ApplyError> {
    let st = sysfs::fstat(fd).map_err(at(raw, "stat"))?;
    if (st.uid, st.gid) != (attrs.uid, attrs.gid) {
        sysfs::fchown(fd, attrs.uid, attrs.gid).map_err(at(raw, "chown"))?;
    }
    if st.mode != attrs.mode {
        sysfs::fchmod(fd, attrs.mode).map_err(at(raw, "chmod"))?;
    }
    for (k, v) in &attrs.xattrs {
        match sysfs::fsetxattr(fd, k, v) {
            Err(e) if !ignorable_xattr_error(&e, false) => return Err(at(raw, "set xattr")(e)),
            _ => {}
        }
    }
    sysfs::futimens(fd, attrs.atime, attrs.mtime).map_err(at(raw, "set times"))
}

/// Owner, then mode (chown clears setuid/setgid), then xattrs (chown
/// also drops `security.capability`), then times.
pub(super) fn fd_attrs(fd: BorrowedFd<'_>, attrs: &Attrs, raw: &[u8]) -> Result<(), ApplyError> {
    sysfs::fchown(fd, attrs.uid, attrs.gid).map_err(at(raw, "chown"))?;
    sysfs::fchmod(fd, attrs.mode).map_err(at(raw, "chmod"))?;
    for (k, v) in &attrs.xattrs {
        match sysfs::fsetxattr(fd, k, v) {
            Err(e) if !ignorable_xattr_error(&e, false) => return Err(at(raw, "set xattr")(e)),
            _ => {}
        }
    }
    sysfs::futimens(fd, attrs.atime, attrs.mtime).map_err(at(raw, "set times"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_folds_dot_dot_and_refuses_escapes() {
        let c = |p: &str| clean(p.as_bytes()).map(|v| String::from_utf8(join(&v)).unwrap());
        assert_eq!(c("./a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(c("/etc/passwd").as_deref(), Some("etc/passwd"));
        assert_eq!(c("a/../b").as_deref(), Some("b"));
        assert_eq!(c("./").as_deref(), Some(""));
        assert_eq!(c("../x"), None);
        assert_eq!(c("a/../../x"), None);
        assert_eq!(c("/../x"), None);
    }

    /// One entry of type `kind` at `path`, its header bytes edited by
    /// `edit` (checksum repaired), PAX records before it, `data` after it.
    fn one_entry(kind: EntryType, path: &str, pax: &[(&str, &[u8])], edit: impl Fn(&mut [u8; 512])) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        if !pax.is_empty() {
            b.append_pax_extensions(pax.iter().copied()).unwrap();
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_path(path).unwrap();
        h.set_mode(0o644);
        h.set_size(0);
        let block: &mut [u8; 512] = h.as_mut_bytes();
        edit(block);
        h.set_cksum();
        b.append(&h, std::io::empty()).unwrap();
        b.into_inner().unwrap()
    }

    /// `check_header` and `attrs` on the entry, through the `tar` crate (the
    /// parallel reader meets the same checks in the fuzz contract).
    fn verdict(tar: &[u8]) -> Result<(), String> {
        let mut a = tar::Archive::new(tar);
        let mut e = a.entries().unwrap().next().unwrap().map_err(|e| e.to_string())?;
        let raw = Entry::path_bytes(&e).into_owned();
        let kind = e.header().entry_type();
        check_header(&mut e, kind, &raw).map_err(|e| e.to_string())?;
        attrs(&mut e, &raw).map(drop).map_err(|e| e.to_string())
    }

    fn field(block: &mut [u8; 512], at: usize, len: usize, value: &[u8]) {
        block[at..at + len].fill(0);
        block[at..at + value.len()].copy_from_slice(value);
    }

    #[test]
    fn header_checks_refuse_what_no_writer_produces() {
        use EntryType as T;
        let none: &[(&str, &[u8])] = &[];
        // (what, the tar, a phrase of the error)
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("NUL in a PAX path", one_entry(T::Regular, "x", &[("path", b"a\0b")], |_| {}), "path: contains a NUL"),
            ("NUL in a link name", one_entry(T::Symlink, "l", &[("linkpath", b"/t\0x")], |_| {}), "link name"),
            (
                "mode beyond 0o177777",
                one_entry(T::Regular, "m", none, |b| field(b, 100, 8, b"0207777")),
                "invalid mode",
            ),
            (
                "directory type bits on a file",
                one_entry(T::Regular, "m", none, |b| field(b, 100, 8, b"0040755")),
                "file type",
            ),
            ("garbled mode", one_entry(T::Regular, "m", none, |b| field(b, 100, 8, b"7x7")), "invalid mode"),
            (
                "uid beyond u32",
                one_entry(T::Regular, "u", none, |b| field(b, 108, 8, b"\x80\0\0\x01\0\0\0\0")),
                "invalid uid",
            ),
            (
                "uid (uid_t)-1",
                one_entry(T::Regular, "u", none, |b| field(b, 108, 8, b"\x80\0\0\0\xff\xff\xff\xff")),
                "largest ID",
            ),
            ("garbled gid", one_entry(T::Regular, "g", none, |b| field(b, 116, 8, b"-1")), "invalid gid"),
            ("negative PAX uid", one_entry(T::Regular, "p", &[("uid", b"-1")], |_| {}), "pax uid"),
            ("garbled PAX gid", one_entry(T::Regular, "p", &[("gid", b"12ab")], |_| {}), "pax gid"),
            ("PAX size not a number", one_entry(T::Regular, "p", &[("size", b"0x10")], |_| {}), "pax size"),
            (
                "PAX uid beyond u32",
                one_entry(T::Regular, "p", &[("uid", b"4294967296")], |_| {}),
                "4294967296 is beyond",
            ),
            (
                "PAX size beyond off_t",
                one_entry(T::Regular, "p", &[("size", b"9223372036854775808")], |_| {}),
                "largest file size",
            ),
            (
                "size beyond off_t",
                one_entry(T::Regular, "s", none, |b| field(b, 124, 12, b"\x80\0\0\0\x80\0\0\0\0\0\0\0")),
                "largest file size",
            ),
            (
                "data on a directory",
                one_entry(T::Directory, "d/", none, |b| field(b, 124, 12, b"00000000001")),
                "which has none",
            ),
            (
                "data on a symlink",
                one_entry(T::Symlink, "l", none, |b| field(b, 124, 12, b"00000001000")),
                "which has none",
            ),
            (
                "device major beyond 12 bits",
                one_entry(T::Char, "c", none, |b| field(b, 329, 8, b"0010001")),
                "invalid device",
            ),
            (
                "device minor beyond 20 bits",
                one_entry(T::Block, "b", none, |b| field(b, 337, 8, b"4000000")),
                "invalid device",
            ),
            ("garbled device major", one_entry(T::Char, "c", none, |b| field(b, 329, 8, b"zz")), "device major"),
        ];
        for (what, tar, phrase) in cases {
            let err = verdict(&tar).expect_err(what);
            assert!(err.contains(phrase), "{what}: {err}");
            assert!(err.starts_with("tar entry \""), "{what}: the error names the entry: {err}");
        }
    }

    #[test]
    fn header_checks_accept_what_real_writers_produce() {
        use EntryType as T;
        let none: &[(&str, &[u8])] = &[];
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("plain file", one_entry(T::Regular, "f", none, |_| {})),
            ("setuid and sticky bits", one_entry(T::Regular, "f", none, |b| field(b, 100, 8, b"0007755"))),
            ("Go's c_ISREG on a file", one_entry(T::Regular, "f", none, |b| field(b, 100, 8, b"0100644"))),
            ("Go's c_ISDIR on a directory", one_entry(T::Directory, "d/", none, |b| field(b, 100, 8, b"0040755"))),
            ("c_ISLNK on a symlink", one_entry(T::Symlink, "l", none, |b| field(b, 100, 8, b"0120777"))),
            ("hard link carrying its target's type", one_entry(T::Link, "h", none, |b| field(b, 100, 8, b"0100644"))),
            ("blank owner fields", one_entry(T::Regular, "f", none, |b| field(b, 108, 16, b"       \0       \0"))),
            ("largest IDs and devices", {
                one_entry(T::Char, "c", &[("uid", b"4294967294")], |b| {
                    field(b, 329, 8, b"0007777");
                    field(b, 337, 8, b"3777777");
                })
            }),
        ];
        for (what, tar) in cases {
            verdict(&tar).unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }

    #[test]
    fn parses_pax_times() {
        assert_eq!(parse_pax_time(b"1700000000"), Some((1_700_000_000, 0)));
        assert_eq!(parse_pax_time(b"1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(parse_pax_time(b"1.1234567899"), Some((1, 123_456_789)));
        assert_eq!(parse_pax_time(b"-1000"), Some((-1000, 0)));
        assert_eq!(parse_pax_time(b"-1.25"), Some((-2, 750_000_000)));
        assert_eq!(parse_pax_time(b""), None);
        assert_eq!(parse_pax_time(b"1e9"), None);
        assert_eq!(parse_pax_time(b"-"), None);
    }
}
