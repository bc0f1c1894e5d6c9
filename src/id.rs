//! Random identifiers: container IDs and the names of anonymous volumes.
//!
//! Both are 64 lower-case hex characters drawn from the kernel's CSPRNG,
//! as Docker makes them; they live here, below both `container` and
//! `volume`, so neither has to import the other.

use serde::{Deserialize, Serialize};
use std::fmt;

/// 32 random bytes from the kernel's CSPRNG, as 64 lower-case hex
/// characters.
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    crate::sys::random::getrandom(&mut bytes).expect("getrandom");
    hex::encode(bytes)
}

/// A container ID: 64 lower-case hex characters, shown as 12.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    /// A new random ID (from the kernel's CSPRNG, as Docker's).
    pub fn generate() -> ContainerId {
        ContainerId(random_hex())
    }

    /// Parses a full 64-hex ID.
    pub fn parse(s: &str) -> Option<ContainerId> {
        (s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
            .then(|| ContainerId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 12-character short form.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContainerId({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_with_short_form() {
        let id = ContainerId::generate();
        assert_eq!(id.as_str().len(), 64);
        assert!(ContainerId::parse(id.as_str()).is_some());
        assert_eq!(id.short().len(), 12);
        assert_ne!(id, ContainerId::generate());
        assert!(ContainerId::parse("xyz").is_none());
    }
}
