//! Content addresses: `sha256:<hex>` digests and the OCI identifiers built on
//! them.
//!
//! * [`Digest`] — a validated `sha256:<64 lower-case hex>` string.
//! * [`DiffId`] — digest of a layer's *uncompressed* tar stream.
//! * [`ChainId`] — identity of a layer *and everything below it*, per the OCI
//!   image spec (`config.md`, "Layer ChainID"):
//!   `ChainID(L0) = DiffID(L0)`,
//!   `ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln))`.
//!
//! Hashing is done while streaming ([`HashingReader`], [`HashingWriter`]) so a
//! layer is verified, decompressed and applied in one pass.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

/// The only algorithm strata accepts; OCI allows sha512 but no registry in
/// practice serves it and Docker rejects it too.
pub const ALGORITHM: &str = "sha256";

/// Errors from parsing a digest string.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("digest {0:?}: unsupported algorithm (only sha256)")]
    Algorithm(String),
    #[error("digest {0:?}: expected 64 lower-case hex characters")]
    Hex(String),
}

/// A validated `sha256:<hex>` content address.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Digest of a byte slice.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_sha(Sha256::digest(bytes).into())
    }

    fn from_sha(raw: [u8; 32]) -> Digest {
        Digest { hex: hex::encode(raw) }
    }

    /// Builds a digest from a bare 64-char hex string.
    pub fn from_hex(hex: &str) -> Result<Digest, DigestError> {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            Ok(Digest { hex: hex.to_owned() })
        } else {
            Err(DigestError::Hex(hex.to_owned()))
        }
    }

    /// The 64 hex characters, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The 12-character short form Docker prints (`IMAGE ID`).
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Digest, DigestError> {
        match s.split_once(':') {
            Some((ALGORITHM, hex)) => Digest::from_hex(hex).map_err(|_| DigestError::Hex(s.to_owned())),
            Some((alg, _)) => Err(DigestError::Algorithm(alg.to_owned())),
            None => Err(DigestError::Hex(s.to_owned())),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ALGORITHM}:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

macro_rules! digest_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Digest);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }
        impl FromStr for $name {
            type Err = DigestError;
            fn from_str(s: &str) -> Result<Self, DigestError> {
                s.parse().map($name)
            }
        }
        impl $name {
            /// The underlying digest.
            pub fn digest(&self) -> &Digest {
                &self.0
            }
        }
    };
}

digest_newtype!(
    /// Digest of a layer's uncompressed tar stream (OCI `rootfs.diff_ids`).
    DiffId
);
digest_newtype!(
    /// Identity of a layer together with all layers below it.
    ChainId
);
digest_newtype!(
    /// An image's ID: the digest of its config JSON, as Docker defines it.
    ImageId
);

impl ChainId {
    /// `ChainID(parent..L) = sha256(parent + " " + DiffID(L))`, or the diff ID
    /// itself for a bottom layer.
    pub fn new(parent: Option<&ChainId>, diff: &DiffId) -> ChainId {
        match parent {
            None => ChainId(diff.0.clone()),
            Some(p) => ChainId(Digest::of(format!("{p} {diff}").as_bytes())),
        }
    }

    /// Chain IDs of every prefix of a layer stack, bottom first.
    pub fn chain(diff_ids: &[DiffId]) -> Vec<ChainId> {
        let mut out: Vec<ChainId> = Vec::with_capacity(diff_ids.len());
        for d in diff_ids {
            let next = ChainId::new(out.last(), d);
            out.push(next);
        }
        out
    }
}

/// An incremental sha256.
#[derive(Default, Clone, Debug)]
pub struct Hasher(Sha256);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher::default()
    }
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    pub fn finish(self) -> Digest {
        Digest::from_sha(self.0.finalize().into())
    }
}

/// A reader that hashes (and counts) everything read through it.
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader { inner, hasher: Hasher::new(), count: 0 }
    }
    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }
    /// Consumes the reader, returning the digest of everything read.
    pub fn finish(self) -> (Digest, u64) {
        (self.hasher.finish(), self.count)
    }
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes (and counts) everything written through it.
#[derive(Debug)]
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Hasher::new(), count: 0 }
    }
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_digest_matches_known_value() {
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn rejects_bad_digests() {
        assert!("sha512:00".parse::<Digest>().is_err());
        assert!("sha256:ABC".parse::<Digest>().is_err());
        assert!("sha256:".parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "A".repeat(64)).parse::<Digest>().is_err());
        assert!(format!("sha256:{}", "a".repeat(64)).parse::<Digest>().is_ok());
    }

    #[test]
    fn chain_id_follows_oci_spec() {
        let a: DiffId = format!("sha256:{}", "a".repeat(64)).parse().unwrap();
        let b: DiffId = format!("sha256:{}", "b".repeat(64)).parse().unwrap();
        let chain = ChainId::chain(&[a.clone(), b.clone()]);
        assert_eq!(chain[0].0, a.0);
        let expect = Digest::of(format!("{} {}", a, b).as_bytes());
        assert_eq!(chain[1].0, expect);
    }

    #[test]
    fn hashing_reader_hashes_stream() {
        let mut r = HashingReader::new(&b"hello"[..]);
        let mut s = Vec::new();
        r.read_to_end(&mut s).unwrap();
        let (d, n) = r.finish();
        assert_eq!(n, 5);
        assert_eq!(d, Digest::of(b"hello"));
    }
}
