//! The OCI document parsers' contract: [`Manifest::from_json`],
//! [`Index::from_json`] and [`ImageConfig::from_json`] on any bytes return
//! (no panic, no stack overflow on deep nesting) and:
//! * parsing is deterministic;
//! * a JSON error points inside the input (a line no later than the last,
//!   a column no wider than that line, plus one);
//! * a document that parses re-serializes (`to_bytes`) to bytes that parse
//!   back to the same value, and serializing that value again gives the
//!   same bytes;
//! * what is accepted holds the spec's invariants: schema version 2, a
//!   known media type or none, `rootfs.type` "layers", and times a
//!   re-serialized config can still carry (years 0000–9999).

use crate::image::oci::{ImageConfig, Index, Manifest, OciError};
use chrono::Datelike;
use std::fmt::Debug;

/// Checks the contract for all three document kinds on `bytes`.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    one(bytes, "manifest", Manifest::from_json, Manifest::to_bytes, |m| {
        (m.schema_version == 2).then_some(()).ok_or("schemaVersion")?;
        media(m.media_type.as_deref(), Manifest::MEDIA_TYPES)
    })?;
    one(bytes, "index", Index::from_json, Index::to_bytes, |i| {
        (i.schema_version == 2).then_some(()).ok_or("schemaVersion")?;
        media(i.media_type.as_deref(), Index::MEDIA_TYPES)
    })?;
    one(bytes, "image config", ImageConfig::from_json, ImageConfig::to_bytes, |c| {
        (c.rootfs.kind == "layers").then_some(()).ok_or("rootfs.type")?;
        let history = c.history.iter().flatten().filter_map(|h| h.created);
        if c.created.into_iter().chain(history).any(|t| !(0..=9999).contains(&t.year())) {
            return Err("a time outside years 0000-9999");
        }
        Ok(())
    })
}

fn media(found: Option<&str>, known: &[&str]) -> Result<(), &'static str> {
    match found {
        Some(m) if !known.contains(&m) => Err("mediaType"),
        _ => Ok(()),
    }
}

fn one<T: PartialEq + Debug>(
    bytes: &[u8],
    what: &str,
    parse: fn(&[u8]) -> Result<T, OciError>,
    serialize: fn(&T) -> Vec<u8>,
    invariants: impl Fn(&T) -> Result<(), &'static str>,
) -> Result<(), String> {
    let first = parse(bytes);
    let same = match (&first, &parse(bytes)) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.to_string() == b.to_string(),
        _ => false,
    };
    if !same {
        return Err(format!("{what}: two parses of the same bytes differ"));
    }
    let value = match first {
        Err(OciError::Json { source, .. }) => {
            let lines = bytes.split(|b| *b == b'\n').collect::<Vec<_>>();
            let (line, column) = (source.line(), source.column());
            let width = lines.get(line.saturating_sub(1)).map_or(0, |l| l.len());
            if line == 0 || line > lines.len() || column > width + 1 {
                return Err(format!("{what}: JSON error at {line}:{column} outside the input: {source}"));
            }
            return Ok(());
        }
        Err(e) if e.to_string().is_empty() => return Err(format!("{what}: an empty error message")),
        Err(_) => return Ok(()),
        Ok(v) => v,
    };
    invariants(&value).map_err(|field| format!("{what}: accepted an invalid {field}"))?;
    let out = serialize(&value);
    match parse(&out) {
        Ok(back) if back == value => {}
        Ok(back) => return Err(format!("{what}: re-serialized as {:?}, which parses to {back:?}", lossy(&out))),
        Err(e) => return Err(format!("{what}: re-serialized as {:?}, which fails: {e}", lossy(&out))),
    }
    if serialize(&parse(&out).map_err(|e| e.to_string())?) != out {
        return Err(format!("{what}: serialization is not stable: {:?}", lossy(&out)));
    }
    Ok(())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[cfg(test)]
mod tests {
    use super::check;
    use crate::image::fuzz::driver::{self, Target};
    use crate::rng::Rng;
    use serde_json::{json, Value};

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn seeds() -> Vec<Vec<u8>> {
        let desc = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D, "size": 32});
        let docs = [
            json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 7},
                "layers": [desc.clone(), desc.clone()], "annotations": {"a": "b"}, "x-extra": [1, {"k": null}]}),
            json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
                "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": D,
                    "size": 9, "platform": {"architecture": "arm", "os": "linux", "variant": "v7",
                    "os.features": ["f"]}}]}),
            json!({"created": "2024-01-02T03:04:05.123456789Z", "architecture": "amd64", "os": "linux",
                "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "ExposedPorts": {"80/tcp": {}},
                    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000}, "Labels": {"l": "v"},
                    "StopTimeout": 3, "Hostname": "h"},
                "rootfs": {"type": "layers", "diff_ids": [D]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "x", "empty_layer": true}],
                "container_config": {"Cmd": null}}),
        ];
        docs.iter().map(|d| serde_json::to_vec_pretty(d).expect("json")).collect()
    }

    const TOKENS: &[&[u8]] = &[
        b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null", b"-1", b"0", b"2", b"1e999", b"18446744073709551616",
        b"9223372036854775807", b"\"\\u0000\"", b"\"\\ud800\"", b"\\", b"\"schemaVersion\":", b"\"size\":",
        b"\"created\":\"9999-12-31T23:59:59-01:00\"", b"\"created\":\"0000-01-01T00:00:00+01:00\"",
        b"\"2024-01-01T00:00:00.5+05:30\"", b"\"sha256:\"", b"\"layers\"", b"\"type\":", b"\"mediaType\":",
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    ];

    /// A structure-aware mutation: replace one value somewhere in the
    /// document with a value of another shape, or drop a key.
    fn mutate_value(rng: &mut Rng, v: &mut Value, depth: usize) {
        let pick = |rng: &mut Rng| match rng.below(9) {
            0 => Value::Null,
            1 => json!(-1),
            2 => json!(u64::MAX),
            3 => json!(1.5),
            4 => json!("9999-12-31T23:59:59-23:00"),
            5 => json!(D),
            6 => json!([]),
            7 => json!({}),
            _ => json!("layers"),
        };
        match v {
            Value::Object(m) if !m.is_empty() && depth < 6 => {
                let key = m.keys().nth(rng.index(m.len())).expect("non-empty").clone();
                match rng.below(4) {
                    0 => drop(m.remove(&key)),
                    1 => drop(m.insert(key, pick(rng))),
                    _ => mutate_value(rng, m.get_mut(&key).expect("present"), depth + 1),
                }
            }
            Value::Array(a) if !a.is_empty() && depth < 6 => {
                let i = rng.index(a.len());
                mutate_value(rng, &mut a[i], depth + 1)
            }
            _ => *v = pick(rng),
        }
    }

    fn mutate(rng: &mut Rng, t: &Target<'_>, input: &mut Vec<u8>) {
        match serde_json::from_slice::<Value>(input) {
            Ok(mut v) if rng.below(2) == 0 => {
                mutate_value(rng, &mut v, 0);
                *input = serde_json::to_vec(&v).expect("json");
            }
            _ => driver::mutate(rng, t, input),
        }
    }

    /// Inputs that broke the contract before their fix: a time zone that
    /// moves a year-9999 (or year-0) time out of 0000–9999 in UTC, which
    /// re-serialized as a `+10000-…` string no parser reads back.
    #[test]
    fn regressions_meet_the_contract() {
        for created in ["9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00+01:00"] {
            let doc = format!(
                r#"{{"architecture":"a","os":"linux","created":"{created}","rootfs":{{"type":"layers","diff_ids":[]}}}}"#
            );
            check(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e}"));
            let err = crate::image::oci::ImageConfig::from_json(doc.as_bytes()).unwrap_err().to_string();
            assert!(err.contains("image config: created is") && err.contains("outside the years"), "{err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        for open in ["[", "{\"a\":"] {
            let mut doc = r#"{"schemaVersion":2,"manifests":[],"x":"#.to_owned();
            doc.push_str(&open.repeat(100_000));
            check(doc.as_bytes()).unwrap();
            assert!(crate::image::oci::Index::from_json(doc.as_bytes()).is_err());
        }
    }

    /// 3,000 mutated documents per run, each tried as all three kinds.
    #[test]
    fn mutated_documents_meet_the_contract() {
        let owned = seeds();
        let seeds: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        let t = Target { name: "oci", seeds: &seeds, tokens: TOKENS, max_len: 8192 };
        let (seed, n) = driver::settings("oci", 0x0c1_5eed, 3_000);
        driver::run(&t, seed, n, |rng, input| mutate(rng, &t, input), check);
    }
}
