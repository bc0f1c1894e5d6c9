//! Stored registry credentials (`strata login` / `logout`).
//!
//! ```text
//! <root>/distribution/            0700
//! └── auth.json                   0600, Docker's config.json shape:
//!     {"auths": {"localhost:5000": {"auth": "base64(user:password)"}}}
//! ```
//!
//! The file lives under the data root (root-owned, like everything strata
//! stores), is created `0600` inside a `0700` directory, and is replaced
//! atomically, so it is never readable by anyone but root, not even
//! half-written. Like Docker without a credential helper, the password is
//! stored base64-encoded, not encrypted.

use super::auth::Credentials;
use super::DistributionError;
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct AuthFile {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Entry {
    auth: String,
}

/// The credential file of one data root.
#[derive(Debug, Clone)]
pub struct CredentialStore {
    path: PathBuf,
}

impl CredentialStore {
    /// The store under data root `root`.
    pub fn new(root: &Path) -> CredentialStore {
        CredentialStore { path: root.join("distribution/auth.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<AuthFile, DistributionError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| DistributionError::Credentials { path: self.path.clone(), detail: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthFile::default()),
            Err(e) => Err(DistributionError::io(&self.path, e)),
        }
    }

    fn write(&self, file: &AuthFile) -> Result<(), DistributionError> {
        let dir = self.path.parent().expect("auth.json has a parent");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DistributionError::io(dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| DistributionError::io(dir, e))?;
        let tmp = dir.join(format!(".auth.json.{}", crate::root::unique_suffix()));
        let bytes = serde_json::to_vec_pretty(file).expect("plain map");
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(DistributionError::io(&self.path, e));
        }
        Ok(())
    }

    /// The credentials stored for `registry` (`host[:port]`).
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>, DistributionError> {
        let file = self.read()?;
        Ok(file.auths.get(registry).and_then(|e| Credentials::decode(&e.auth)))
    }

    /// Stores credentials for `registry`, replacing earlier ones.
    pub fn store(&self, registry: &str, c: &Credentials) -> Result<(), DistributionError> {
        let mut file = self.read()?;
        file.auths.insert(registry.to_owned(), Entry { auth: c.encode() });
        self.write(&file)
    }

    /// Forgets `registry`'s credentials; whether there were any.
    pub fn erase(&self, registry: &str) -> Result<bool, DistributionError> {
        let mut file = self.read()?;
        if file.auths.remove(registry).is_none() {
            return Ok(false);
        }
        self.write(&file)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_get_erase_with_private_modes() {
        let d = tempfile::tempdir().unwrap();
        let s = CredentialStore::new(d.path());
        assert_eq!(s.get("r:5000").unwrap(), None);
        let c = Credentials { username: "alice".into(), password: "s3cret".into() };
        s.store("r:5000", &c).unwrap();
        s.store("other", &Credentials { username: "b".into(), password: "x".into() }).unwrap();
        assert_eq!(s.get("r:5000").unwrap(), Some(c));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(s.path()), 0o600);
        assert_eq!(mode(s.path().parent().unwrap()), 0o700);
        assert!(s.erase("r:5000").unwrap());
        assert!(!s.erase("r:5000").unwrap());
        assert_eq!(s.get("r:5000").unwrap(), None);
        assert!(s.get("other").unwrap().is_some());
        assert_eq!(std::fs::read_dir(s.path().parent().unwrap()).unwrap().count(), 1, "no temporary debris");
    }
}
