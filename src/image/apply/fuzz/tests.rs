//! The seeded mutation fuzzer for the tar contract: real layers built
//! with the `tar` crate, mutated byte-wise and field-wise, checksums
//! mostly repaired so mutations reach past the checksum test.

use super::check;
use crate::image::fuzz::driver::{self, Target};
use crate::rng::Rng;
use tar::{Builder, EntryType, Header};

fn header(kind: EntryType, size: u64, gnu: bool) -> Header {
    let mut h = if gnu { Header::new_gnu() } else { Header::new_ustar() };
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o755);
    h.set_uid(1000);
    h.set_gid(1000);
    h.set_mtime(1_700_000_000);
    h
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = Builder::new(Vec::new());
    b.append_data(&mut header(EntryType::Directory, 0, true), "etc/", std::io::empty()).unwrap();
    b.append_data(&mut header(EntryType::Regular, 5, true), "etc/hostname", &b"host\n"[..]).unwrap();
    b.append_link(&mut header(EntryType::Symlink, 0, false), "etc/mtab", "/proc/mounts").unwrap();
    b.append_link(&mut header(EntryType::Link, 0, false), "etc/hn", "etc/hostname").unwrap();
    out.push(b.into_inner().unwrap());

    let mut b = Builder::new(Vec::new());
    let long = format!("{}/file", "d".repeat(150));
    b.append_data(&mut header(EntryType::Regular, 600, true), &long, &vec![7u8; 600][..]).unwrap();
    b.append_link(&mut header(EntryType::Symlink, 0, true), "l", "t".repeat(120)).unwrap();
    b.append_data(&mut header(EntryType::Regular, 0, true), ".wh.gone", std::io::empty()).unwrap();
    out.push(b.into_inner().unwrap());

    let mut b = Builder::new(Vec::new());
    let pax: [(&str, &[u8]); 4] =
        [("uid", b"3000000"), ("mtime", b"1700000000.25"), ("SCHILY.xattr.user.k", b"v"), ("path", b"p/x")];
    b.append_pax_extensions(pax).unwrap();
    b.append_data(&mut header(EntryType::Regular, 3, false), "short", &b"abc"[..]).unwrap();
    let mut dev = header(EntryType::Char, 0, false);
    dev.set_device_major(1).unwrap();
    dev.set_device_minor(3).unwrap();
    b.append_data(&mut dev, "dev/null", std::io::empty()).unwrap();
    b.append_data(&mut header(EntryType::Fifo, 0, true), "fifo", std::io::empty()).unwrap();
    out.push(b.into_inner().unwrap());
    out
}

const TOKENS: &[&[u8]] = &[
    b"\0",
    b"/",
    b"..",
    b"./",
    b".wh.",
    b".wh..wh..opq",
    b"0000777\0",
    b"7777777\0",
    b"\x80\0\0\0\xff\xff\xff\xff",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
    b"ustar\x0000",
    b"ustar  \0",
    b"././@LongLink",
    b"30 path=a\0b\n",
    b"12 uid=-1\n",
    b"13 size=99\n",
    b"9 gid=x\n",
];

/// Numeric header fields (offset, length) and the values they are set to.
const FIELDS: &[(usize, usize)] = &[(100, 8), (108, 8), (116, 8), (124, 12), (136, 12), (329, 8), (337, 8)];
const VALUES: &[&[u8]] = &[
    b"0",
    b"7777777",
    b"0177777",
    b"0107777",
    b"0040755",
    b"0200755",
    b"77777777777",
    b"37777777777",
    b"-1",
    b"+1",
    b"   ",
    b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    b"\x80\0\0\0\0\0\0\x01\0\0\0\0",
    b"9",
    b"abc",
];
const TYPES: &[u8] = b"0125346LKxgSV7\0A";

/// Visits the headers a reader would find (following each header's octal
/// size), as block offsets.
fn headers(tar: &[u8]) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 512 <= tar.len() && out.len() < 64 {
        let block = &tar[at..at + 512];
        if block.iter().all(|b| *b == 0) {
            break;
        }
        out.push(at);
        let size = std::str::from_utf8(&block[124..136])
            .ok()
            .and_then(|s| u64::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok())
            .unwrap_or(0);
        at += 512 + usize::try_from(size.div_ceil(512) * 512).unwrap_or(usize::MAX / 2).min(tar.len());
    }
    out
}

fn fix_checksum(tar: &mut [u8], at: usize) {
    let block = &mut tar[at..at + 512];
    block[148..156].fill(b' ');
    let sum: u32 = block.iter().map(|b| u32::from(*b)).sum();
    block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn mutate(rng: &mut Rng, t: &Target<'_>, tar: &mut Vec<u8>) {
    let heads = headers(tar);
    match rng.below(3) {
        0 if !heads.is_empty() => {
            let at = *rng.pick(&heads);
            if rng.below(3) == 0 {
                tar[at + 156] = *rng.pick(TYPES);
            } else {
                let (off, len) = *rng.pick(FIELDS);
                let v = rng.pick(VALUES);
                let field = &mut tar[at + off..at + off + len];
                field.fill(0);
                let n = v.len().min(len);
                field[..n].copy_from_slice(&v[..n]);
            }
        }
        _ => driver::mutate(rng, t, tar),
    }
    if rng.below(8) != 0 {
        for at in headers(tar) {
            fix_checksum(tar, at);
        }
    }
}

fn tar_with(h: &mut Header, path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    b.append_data(h, path, data).unwrap();
    b.into_inner().unwrap()
}

/// Inputs the fuzzer (or its review) found, pinned: a long name claiming
/// 16 MiB in a 1.5 KiB stream; a directory whose header claims data (Go
/// reads none, the `tar` crate skips it); sizes and owners at the limits.
#[test]
fn regressions_meet_the_contract() {
    let mut b = Builder::new(Vec::new());
    let mut h = Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    h.set_entry_type(EntryType::GNULongName);
    h.set_size(16 << 20);
    h.set_cksum();
    b.append(&h, &[b'a'; 512][..]).unwrap_or(());
    let long = b.into_inner().unwrap();
    let mut dir = header(EntryType::Directory, 0, true);
    let mut with_data = tar_with(&mut dir, "d/", &[]);
    with_data.truncate(512);
    with_data[124..136].copy_from_slice(b"00000001000\0");
    fix_checksum(&mut with_data, 0);
    with_data.extend_from_slice(&[0; 1024]);
    let mut big = header(EntryType::Regular, 0, true);
    big.set_uid(u64::from(u32::MAX));
    let owner = tar_with(&mut big, "f", &[]);
    for input in [long, with_data, owner] {
        check(&input).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// 3,000 mutated layers per run (a second or so in a debug build).
#[test]
fn mutated_layers_meet_the_contract() {
    let owned = seeds();
    let seeds: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    let t = Target { name: "tar", seeds: &seeds, tokens: TOKENS, max_len: 16 << 10 };
    let (seed, n) = driver::settings("tar", 0x7a5_eed, 3_000);
    driver::run(&t, seed, n, |rng, input| mutate(rng, &t, input), check);
}

/// The cargo-fuzz target's seeds (real GNU and PAX tars) meet the contract.
#[test]
fn fuzz_seeds_meet_the_contract() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/tar");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        check(&bytes).unwrap_or_else(|e| panic!("{e}"));
        n += 1;
    }
    assert!(n >= 2, "seeds in {}", dir.display());
}
