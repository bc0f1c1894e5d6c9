//! What users and images may name things, with Docker's rules and words.
//!
//! A container's name, hostname and environment come from the command
//! line and from untrusted image configs. They end up in places with their
//! own syntax — `ps` columns, `/etc/hosts`, `execve`'s `KEY=VALUE` array —
//! so each is checked once, at create time, before anything is written.
//!
//! | input | rule | error (Docker's where it has one) |
//! |---|---|---|
//! | container name | `/?[a-zA-Z0-9][a-zA-Z0-9_.-]*` | `Invalid container name (…), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed` |
//! | hostname | RFC 1123 labels of `[A-Za-z0-9-]`, no label starting or ending in `-`, at most 64 bytes (the kernel's `HOST_NAME_MAX`) | `invalid hostname format: …` |
//! | env entry | a non-empty key before the first `=`, no NUL in key or value | `invalid environment variable: …` |
//! | label key | non-empty after trimming, no NUL | `invalid label '…': empty name` |

/// An input that breaks one of the rules above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidInput {
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    ContainerName(String),
    #[error("invalid hostname format: {0}")]
    Hostname(String),
    #[error("invalid environment variable: {entry}{}", origin.as_deref().map(|o| format!(" (from {o})")).unwrap_or_default())]
    Env { entry: String, origin: Option<String> },
    #[error("invalid label '{0}': empty name")]
    LabelEmpty(String),
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul { what: &'static str, value: String },
}

/// Checks a container name and returns it without Docker's optional
/// leading `/`. Docker's pattern ends in `+` and so needs two characters;
/// strata also takes one (`--name c`), which is no less safe.
pub fn container_name(name: &str) -> Result<&str, InvalidInput> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let b = bare.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(bare)
    } else {
        Err(InvalidInput::ContainerName(name.to_owned()))
    }
}

/// Checks a hostname (`--hostname`): it is written into the container's
/// `/etc/hosts` and given to `sethostname(2)`.
pub fn hostname(name: &str) -> Result<(), InvalidInput> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    if name.len() <= 64 && name.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(InvalidInput::Hostname(name.to_owned()))
    }
}

/// Checks one `KEY=VALUE` environment entry; `origin` names where it came
/// from (an image) for the error.
pub fn env_entry(entry: &str, origin: Option<&str>) -> Result<(), InvalidInput> {
    if entry.contains('\0') {
        return Err(InvalidInput::Nul { what: "environment variable", value: entry.to_owned() });
    }
    let key = entry.split_once('=').map(|(k, _)| k).unwrap_or(entry);
    if key.trim().is_empty() {
        return Err(InvalidInput::Env { entry: entry.to_owned(), origin: origin.map(str::to_owned) });
    }
    Ok(())
}

/// Checks a label key (`--label`, `LABEL`, volume labels).
pub fn label_key(key: &str) -> Result<(), InvalidInput> {
    if key.contains('\0') {
        return Err(InvalidInput::Nul { what: "label", value: key.to_owned() });
    }
    if key.trim().is_empty() {
        return Err(InvalidInput::LabelEmpty(key.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_follow_dockers_pattern() {
        for ok in ["web", "/web", "a1", "my_app.v2-beta", "0x", "c", "/7"] {
            assert!(container_name(ok).is_ok(), "{ok}");
        }
        assert_eq!(container_name("/web").unwrap(), "web");
        for bad in ["", "/", "_web", "-web", ".web", "we b", "we/b", "web\n", "wé", "a\0b", "x:y"] {
            let e = container_name(bad).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Invalid container name ({bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            );
        }
    }

    #[test]
    fn hostnames_are_rfc1123_and_fit_the_kernel() {
        for ok in ["h", "web-1", "a.b.c", "x".repeat(63).as_str(), &format!("{}.{}", "a".repeat(31), "b".repeat(32))] {
            assert!(hostname(ok).is_ok(), "{ok}");
        }
        let long = format!("{}.{}", "a".repeat(40), "b".repeat(30));
        for bad in ["", "-a", "a-", "a..b", "a b", "a\nb 1.2.3.4 evil", "a_b", &"x".repeat(64), &long] {
            assert_eq!(hostname(bad).unwrap_err(), InvalidInput::Hostname(bad.to_owned()), "{bad}");
        }
    }

    #[test]
    fn env_entries_need_a_key_and_no_nul() {
        for ok in ["A=b", "A=", "A", "A==b", "PATH=/bin:/usr/bin", "A=b c"] {
            assert!(env_entry(ok, None).is_ok(), "{ok}");
        }
        assert_eq!(env_entry("=x", None).unwrap_err().to_string(), "invalid environment variable: =x");
        assert_eq!(
            env_entry(" =x", Some("image busybox")).unwrap_err().to_string(),
            "invalid environment variable:  =x (from image busybox)"
        );
        assert!(matches!(env_entry("A=b\0c", None), Err(InvalidInput::Nul { .. })));
        assert!(matches!(env_entry("A\0=b", None), Err(InvalidInput::Nul { .. })));
    }

    #[test]
    fn label_keys_are_not_blank() {
        assert!(label_key("com.example.k").is_ok());
        assert_eq!(label_key(" ").unwrap_err().to_string(), "invalid label ' ': empty name");
        assert!(label_key("").is_err());
        assert!(matches!(label_key("a\0b"), Err(InvalidInput::Nul { .. })));
    }
}
