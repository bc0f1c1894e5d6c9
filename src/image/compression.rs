//! Layer blob compression: the one [`Compression`] enum, its mapping to
//! and from layer media types, detection by magic bytes, and a streaming
//! decompressor that hands its input reader back when done.
//!
//! OCI layers are `application/vnd.oci.image.layer.v1.tar`, `+gzip` or
//! `+zstd`; Docker's loader ignores the media type and sniffs the stream,
//! and so does strata's applier. The media type still decides which layers
//! a pull accepts and what a stored layer's descriptor says. A gzip stream may hold several members and a zstd
//! stream several frames (both are decoded in sequence), as Go's readers
//! and `zstd -d` do.

use crate::image::oci::{
    DOCKER_FOREIGN_LAYER_TAR_GZIP, DOCKER_LAYER_TAR, DOCKER_LAYER_TAR_GZIP, OCI_LAYER_TAR, OCI_LAYER_TAR_GZIP,
    OCI_LAYER_TAR_ZSTD,
};
use std::fmt;
use std::io::{self, BufRead, Read};

/// gzip member header (RFC 1952, section 2.3.1: ID1 ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// zstd frame magic number (RFC 8878, section 3.1.1), little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Bytes [`sniff`] reads before deciding.
pub const MAGIC_LEN: usize = 4;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The compression a layer media type implies, or `None` if the media
    /// type is not a layer type strata knows. Docker's layer types are gzip
    /// on the wire, except moby's rarely used uncompressed one.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => Some(Compression::None),
            OCI_LAYER_TAR_GZIP | DOCKER_LAYER_TAR_GZIP | DOCKER_FOREIGN_LAYER_TAR_GZIP => Some(Compression::Gzip),
            OCI_LAYER_TAR_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The OCI layer media type for this compression (what strata writes
    /// in the descriptors of layers it stores).
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => OCI_LAYER_TAR,
            Compression::Gzip => OCI_LAYER_TAR_GZIP,
            Compression::Zstd => OCI_LAYER_TAR_ZSTD,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// Identifies the compression of a stream from its first bytes. Anything
/// that is neither gzip nor zstd is taken to be a plain tar (whose first
/// bytes are a file name).
pub fn detect(prefix: &[u8]) -> Compression {
    if prefix.starts_with(&ZSTD_MAGIC) {
        Compression::Zstd
    } else if prefix.starts_with(&GZIP_MAGIC) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// A reader that yields the bytes it already consumed to sniff the
/// compression, then the rest of the stream.
pub type Sniffed<R> = io::Chain<io::Cursor<Vec<u8>>, R>;

/// Reads up to [`MAGIC_LEN`] bytes of `reader` (fewer only at end of
/// stream), detects the compression and returns a reader of the *whole*
/// stream, those bytes included.
pub fn sniff<R: Read>(mut reader: R) -> io::Result<(Compression, Sniffed<R>)> {
    let mut prefix = vec![0u8; MAGIC_LEN];
    let mut filled = 0;
    while filled < MAGIC_LEN {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    prefix.truncate(filled);
    Ok((detect(&prefix), io::Cursor::new(prefix).chain(reader)))
}

/// A decompressing reader over a buffered input.
pub struct Decompressor<R: BufRead> {
    inner: Inner<R>,
}

enum Inner<R: BufRead> {
    None(R),
    // Boxed: the inflate state is ~10x the other variants.
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decompressor<R> {
    /// Decodes `input` as `compression`.
    pub fn new(input: R, compression: Compression) -> io::Result<Decompressor<R>> {
        let inner = match compression {
            Compression::None => Inner::None(input),
            Compression::Gzip => Inner::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(input))),
            Compression::Zstd => Inner::Zstd(zstd::stream::read::Decoder::with_buffer(input)?),
        };
        Ok(Decompressor { inner })
    }

    pub fn compression(&self) -> Compression {
        match self.inner {
            Inner::None(_) => Compression::None,
            Inner::Gzip(_) => Compression::Gzip,
            Inner::Zstd(_) => Compression::Zstd,
        }
    }

    /// The input reader, positioned wherever decoding stopped (at end of
    /// stream once this reader has returned `Ok(0)`).
    pub fn into_inner(self) -> R {
        match self.inner {
            Inner::None(r) => r,
            Inner::Gzip(d) => d.into_inner(),
            Inner::Zstd(d) => d.finish(),
        }
    }
}

impl<R: BufRead> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::None(r) => r.read(buf),
            Inner::Gzip(d) => d.read(buf),
            Inner::Zstd(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn media_types_map_both_ways() {
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            assert_eq!(Compression::from_media_type(c.media_type()), Some(c));
        }
        assert_eq!(Compression::from_media_type(DOCKER_LAYER_TAR_GZIP), Some(Compression::Gzip));
        assert_eq!(Compression::from_media_type(DOCKER_LAYER_TAR), Some(Compression::None));
        assert_eq!(Compression::from_media_type(crate::image::oci::OCI_CONFIG), None);
    }

    #[test]
    fn detects_by_magic() {
        assert_eq!(detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(detect(&[0x28, 0xb5, 0x2f, 0xfd]), Compression::Zstd);
        assert_eq!(detect(b"etc/"), Compression::None);
        assert_eq!(detect(b""), Compression::None);
        assert_eq!(detect(&[0x28, 0xb5]), Compression::None);
    }

    /// A reader that returns one byte per call, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn round_trips_every_compression_through_a_trickling_reader() {
        let plain: Vec<u8> = (0..100_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&plain[..], 1).unwrap();
        for (blob, want) in [(&plain, Compression::None), (&gz, Compression::Gzip), (&zst, Compression::Zstd)] {
            let (c, r) = sniff(Trickle(blob)).unwrap();
            assert_eq!(c, want);
            let mut d = Decompressor::new(io::BufReader::new(r), c).unwrap();
            let mut out = Vec::new();
            d.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain, "{want}");
        }
    }

    #[test]
    fn reads_concatenated_gzip_members() {
        let mut blob = Vec::new();
        for part in [&b"hello "[..], b"world"] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(part).unwrap();
            blob.extend(gz.finish().unwrap());
        }
        let mut d = Decompressor::new(&blob[..], Compression::Gzip).unwrap();
        let mut out = String::new();
        d.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
    }
}
