//! A mount entry's `options` split the way runc 1.1 splits them
//! (`parseMountOptions` in its specconv): `mount(2)` flags set or cleared
//! in order (`ro` then `rw` ends read-write), propagation changes applied
//! after the mount, recursive attributes for `mount_setattr(2)`
//! (`rro`, `rnosuid`, …), runc's `tmpcopyup` extension, and everything
//! else passed on to the filesystem as its data string (`size=64m`,
//! `mode=755`). Pure: no I/O.

use crate::sys::mount::{ms, MountAttr, MountAttrFlags, MountFlags, MountPropagationFlags};

/// One entry's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// The `mount(2)` flag word (`MS_BIND`, `MS_REC`, `MS_RDONLY`, …).
    pub flags: MountFlags,
    /// Propagation changes, in the order given (`rprivate`, `shared`).
    pub propagation: Vec<MountPropagationFlags>,
    /// Attributes set and cleared recursively with `mount_setattr(2)`;
    /// `None` when no `r*` attribute option was given.
    pub recursive: Option<MountAttr>,
    /// runc's `tmpcopyup`: a tmpfs starts with a copy of what it covers.
    pub tmpcopyup: bool,
    /// The filesystem's own options, comma-joined as `mount(2)` takes them.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            flags: MountFlags::empty(),
            propagation: Vec::new(),
            recursive: None,
            tmpcopyup: false,
            data: String::new(),
        }
    }
}

impl MountOptions {
    /// Whether the options make this a bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MountFlags::BIND)
    }

    /// Whether the options ask for a read-only mount (`ro`).
    pub fn readonly(&self) -> bool {
        self.flags.contains(MountFlags::RDONLY)
    }
}

/// What one flag option does to the flag word: `(clears, flag)`.
fn flag(option: &str) -> Option<(bool, MountFlags)> {
    let mand = MountFlags::PERMIT_MANDATORY_FILE_LOCKING;
    Some(match option {
        "acl" => (false, ms::POSIXACL),
        "noacl" => (true, ms::POSIXACL),
        "async" => (true, MountFlags::SYNCHRONOUS),
        "sync" => (false, MountFlags::SYNCHRONOUS),
        "atime" => (true, MountFlags::NOATIME),
        "noatime" => (false, MountFlags::NOATIME),
        "bind" => (false, MountFlags::BIND),
        "rbind" => (false, MountFlags::BIND | MountFlags::REC),
        "defaults" => (false, MountFlags::empty()),
        "dev" => (true, MountFlags::NODEV),
        "nodev" => (false, MountFlags::NODEV),
        "diratime" => (true, MountFlags::NODIRATIME),
        "nodiratime" => (false, MountFlags::NODIRATIME),
        "dirsync" => (false, MountFlags::DIRSYNC),
        "exec" => (true, MountFlags::NOEXEC),
        "noexec" => (false, MountFlags::NOEXEC),
        "iversion" => (false, ms::I_VERSION),
        "noiversion" => (true, ms::I_VERSION),
        "lazytime" => (false, MountFlags::LAZYTIME),
        "nolazytime" => (true, MountFlags::LAZYTIME),
        "loud" => (true, MountFlags::SILENT),
        "silent" => (false, MountFlags::SILENT),
        "mand" => (false, mand),
        "nomand" => (true, mand),
        "relatime" => (false, MountFlags::RELATIME),
        "norelatime" => (true, MountFlags::RELATIME),
        "strictatime" => (false, MountFlags::STRICTATIME),
        "nostrictatime" => (true, MountFlags::STRICTATIME),
        "nosuid" => (false, MountFlags::NOSUID),
        "suid" => (true, MountFlags::NOSUID),
        "nosymfollow" => (false, MountFlags::NOSYMFOLLOW),
        "symfollow" => (true, MountFlags::NOSYMFOLLOW),
        "remount" => (false, ms::REMOUNT),
        "ro" => (false, MountFlags::RDONLY),
        "rw" => (true, MountFlags::RDONLY),
        _ => return None,
    })
}

/// A propagation option's flags (`rslave` = `MS_SLAVE | MS_REC`).
pub fn propagation(option: &str) -> Option<MountPropagationFlags> {
    use MountPropagationFlags as P;
    Some(match option {
        "private" => P::PRIVATE,
        "rprivate" => P::PRIVATE | P::REC,
        "shared" => P::SHARED,
        "rshared" => P::SHARED | P::REC,
        "slave" => P::DOWNSTREAM,
        "rslave" => P::DOWNSTREAM | P::REC,
        "unbindable" => P::UNBINDABLE,
        "runbindable" => P::UNBINDABLE | P::REC,
        _ => return None,
    })
}

/// A recursive attribute option: `(clears, attribute)`.
fn recursive(option: &str) -> Option<(bool, MountAttrFlags)> {
    use MountAttrFlags as A;
    Some(match option {
        "rro" => (false, A::MOUNT_ATTR_RDONLY),
        "rrw" => (true, A::MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, A::MOUNT_ATTR_NOSUID),
        "rsuid" => (true, A::MOUNT_ATTR_NOSUID),
        "rnodev" => (false, A::MOUNT_ATTR_NODEV),
        "rdev" => (true, A::MOUNT_ATTR_NODEV),
        "rnoexec" => (false, A::MOUNT_ATTR_NOEXEC),
        "rexec" => (true, A::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, A::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, A::MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (false, A::MOUNT_ATTR_RELATIME),
        "rnorelatime" => (true, A::MOUNT_ATTR_RELATIME),
        "rnoatime" => (false, A::MOUNT_ATTR_NOATIME),
        "ratime" => (true, A::MOUNT_ATTR_NOATIME),
        "rstrictatime" => (false, A::MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (true, A::MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (false, A::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, A::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// Splits `options` as runc does. Never fails: an option it does not know
/// is filesystem data, and the kernel judges it.
pub fn parse(options: &[String]) -> MountOptions {
    let mut out = MountOptions::default();
    let mut data: Vec<&str> = Vec::new();
    let (mut set, mut clr) = (MountAttrFlags::empty(), MountAttrFlags::empty());
    let mut any_recursive = false;
    for o in options {
        let o = o.as_str();
        if let Some((clears, f)) = flag(o) {
            if clears {
                out.flags.remove(f);
            } else {
                out.flags.insert(f);
            }
        } else if let Some(p) = propagation(o) {
            out.propagation.push(p);
        } else if let Some((clears, a)) = recursive(o) {
            any_recursive = true;
            if clears {
                clr |= a;
            } else {
                set |= a;
                // mount_setattr(2): an access-time mode is set by also
                // clearing the whole MOUNT_ATTR__ATIME field (RELATIME is 0).
                if (MountAttrFlags::MOUNT_ATTR__ATIME & a) == a {
                    clr |= MountAttrFlags::MOUNT_ATTR__ATIME;
                }
            }
        } else if o == "tmpcopyup" {
            out.tmpcopyup = true;
        } else {
            data.push(o);
        }
    }
    if any_recursive {
        out.recursive = Some(MountAttr { attr_set: set, attr_clr: clr, propagation: MountPropagationFlags::empty() });
    }
    out.data = data.join(",");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(options: &[&str]) -> MountOptions {
        parse(&options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags_are_set_and_cleared_in_order() {
        let m = p(&["nosuid", "noexec", "nodev", "ro"]);
        assert_eq!(m.flags, MountFlags::NOSUID | MountFlags::NOEXEC | MountFlags::NODEV | MountFlags::RDONLY);
        assert!(m.readonly());
        let m = p(&["ro", "rw", "suid", "nosuid", "exec"]);
        assert_eq!(m.flags, MountFlags::NOSUID);
        let m = p(&["noatime", "atime", "strictatime", "nodiratime", "diratime", "sync", "async", "dirsync"]);
        assert_eq!(m.flags, MountFlags::STRICTATIME | MountFlags::DIRSYNC);
        let m = p(&["mand", "relatime", "nosymfollow", "remount"]);
        assert!(m.flags.contains(MountFlags::PERMIT_MANDATORY_FILE_LOCKING | MountFlags::RELATIME));
        assert!(m.flags.contains(MountFlags::NOSYMFOLLOW | ms::REMOUNT));
        let m = p(&["mand", "nomand", "relatime", "norelatime", "nostrictatime", "defaults"]);
        assert_eq!(m.flags, MountFlags::empty());
        assert_eq!(m.data, "");
    }

    #[test]
    fn bind_and_rbind() {
        let m = p(&["rbind", "ro"]);
        assert!(m.is_bind());
        assert_eq!(m.flags, MountFlags::BIND | MountFlags::REC | MountFlags::RDONLY);
        let m = p(&["bind"]);
        assert!(m.is_bind() && !m.flags.contains(MountFlags::REC));
        assert!(!p(&["ro"]).is_bind());
    }

    #[test]
    fn propagation_keeps_order() {
        use MountPropagationFlags as P;
        let m = p(&["rprivate", "shared", "rslave", "unbindable", "runbindable", "slave", "private", "rshared"]);
        assert_eq!(
            m.propagation,
            vec![
                P::PRIVATE | P::REC,
                P::SHARED,
                P::DOWNSTREAM | P::REC,
                P::UNBINDABLE,
                P::UNBINDABLE | P::REC,
                P::DOWNSTREAM,
                P::PRIVATE,
                P::SHARED | P::REC
            ]
        );
        assert!(m.flags.is_empty());
    }

    #[test]
    fn data_options_pass_through_in_order() {
        let m = p(&["nosuid", "size=65536k", "mode=755", "newinstance", "gid=5", "ptmxmode=0666"]);
        assert_eq!(m.data, "size=65536k,mode=755,newinstance,gid=5,ptmxmode=0666");
        assert_eq!(m.flags, MountFlags::NOSUID);
        assert!(m.recursive.is_none());
    }

    #[test]
    fn recursive_attributes() {
        use MountAttrFlags as A;
        let m = p(&["rbind", "rro", "rnosuid", "rdev"]).recursive.unwrap();
        assert_eq!(m.attr_set, A::MOUNT_ATTR_RDONLY | A::MOUNT_ATTR_NOSUID);
        assert_eq!(m.attr_clr, A::MOUNT_ATTR_NODEV);
        let m = p(&["rrw"]).recursive.unwrap();
        assert_eq!((m.attr_set, m.attr_clr), (A::empty(), A::MOUNT_ATTR_RDONLY));
        // An atime mode clears the whole atime field.
        let m = p(&["rnoatime"]).recursive.unwrap();
        assert_eq!((m.attr_set, m.attr_clr), (A::MOUNT_ATTR_NOATIME, A::MOUNT_ATTR__ATIME));
        let m = p(&["rrelatime"]).recursive.unwrap();
        assert_eq!((m.attr_set, m.attr_clr), (A::empty(), A::MOUNT_ATTR__ATIME));
        let m = p(&["rstrictatime", "rnosymfollow", "rnoexec"]).recursive.unwrap();
        assert_eq!(m.attr_set, A::MOUNT_ATTR_STRICTATIME | A::MOUNT_ATTR_NOSYMFOLLOW | A::MOUNT_ATTR_NOEXEC);
        assert_eq!(m.attr_clr, A::MOUNT_ATTR__ATIME);
        // rro is not ro: the flag word stays read-write.
        assert!(!p(&["rro"]).readonly());
    }

    #[test]
    fn tmpcopyup_is_an_extension_not_data() {
        let m = p(&["tmpcopyup", "size=1m"]);
        assert!(m.tmpcopyup);
        assert_eq!(m.data, "size=1m");
    }
}
