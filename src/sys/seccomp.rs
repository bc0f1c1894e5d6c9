//! Seccomp filters through libseccomp: a filter context, its
//! architectures, attributes and rules, and loading it into the calling
//! process.
//!
//! This is the only place the `libseccomp` crate is named. libseccomp
//! compiles rules to BPF (sorting, arch rewriting such as `socketcall` on
//! x86, argument comparisons on 32-bit ABIs), which is why strata uses it
//! rather than a BPF compiler of its own. The vocabulary here is
//! libseccomp's (`SCMP_ACT_*`, `SCMP_CMP_*`, `SCMP_ARCH_*`,
//! `SCMP_FLTATR_*`); errors are the library's negative errno values as
//! [`io::Error`]s.
//!
//! Libseccomp's `SCMP_FLTATR_CTL_NNP` is on by default, which would make
//! `seccomp_load` set `no_new_privs` behind the caller's back; [`Filter::init`]
//! turns it off, so whether the process gets `no_new_privs` is the
//! caller's choice (the OCI `process.noNewPrivileges`), as in runc.
//!
//! A filter can also be exported as its classic BPF program
//! ([`Filter::export_bpf`]) and that program installed later, without
//! libseccomp, by [`seccomp_set_mode_filter`]: the runtime compiles once,
//! caches the program, and the container's init only loads it.

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterAttr, ScmpFilterContext, ScmpSyscall};
use std::io;

/// What a filter does with a syscall (`SCMP_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `SCMP_ACT_KILL_PROCESS` (API level 3).
    KillProcess,
    /// `SCMP_ACT_KILL_THREAD` (`SCMP_ACT_KILL`).
    KillThread,
    /// `SCMP_ACT_TRAP`: `SIGSYS` to the thread.
    Trap,
    /// `SCMP_ACT_ERRNO(n)`: the syscall fails with `n`.
    Errno(u16),
    /// `SCMP_ACT_TRACE(n)`: a ptrace tracer is told, with `n`.
    Trace(u16),
    /// `SCMP_ACT_LOG` (API level 3): allowed and logged.
    Log,
    /// `SCMP_ACT_ALLOW`.
    Allow,
    /// `SCMP_ACT_NOTIFY` (API level 5): a user-space agent decides.
    Notify,
}

impl Action {
    fn to_scmp(self) -> ScmpAction {
        match self {
            Action::KillProcess => ScmpAction::KillProcess,
            Action::KillThread => ScmpAction::KillThread,
            Action::Trap => ScmpAction::Trap,
            Action::Errno(n) => ScmpAction::Errno(i32::from(n)),
            Action::Trace(n) => ScmpAction::Trace(n),
            Action::Log => ScmpAction::Log,
            Action::Allow => ScmpAction::Allow,
            Action::Notify => ScmpAction::Notify,
        }
    }

    /// The lowest libseccomp API level (`seccomp_api_get(3)`) that has the
    /// action: 3 for `KILL_PROCESS` and `LOG`, 5 for `NOTIFY`.
    pub fn api_level(self) -> u32 {
        match self {
            Action::KillProcess | Action::Log => 3,
            Action::Notify => 5,
            _ => 1,
        }
    }
}

/// How a syscall argument is compared (`SCMP_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Ne,
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
    /// `SCMP_CMP_MASKED_EQ`: `(arg & mask) == value`.
    MaskedEq {
        mask: u64,
    },
}

/// One argument comparison of a rule (`struct scmp_arg_cmp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCmp {
    /// Argument number, 0 to 5.
    pub index: u32,
    pub cmp: Cmp,
    pub value: u64,
}

impl ArgCmp {
    fn to_scmp(self) -> ScmpArgCompare {
        let op = match self.cmp {
            Cmp::Ne => ScmpCompareOp::NotEqual,
            Cmp::Lt => ScmpCompareOp::Less,
            Cmp::Le => ScmpCompareOp::LessOrEqual,
            Cmp::Eq => ScmpCompareOp::Equal,
            Cmp::Ge => ScmpCompareOp::GreaterEqual,
            Cmp::Gt => ScmpCompareOp::Greater,
            Cmp::MaskedEq { mask } => ScmpCompareOp::MaskedEqual(mask),
        };
        ScmpArgCompare::new(self.index, op, self.value)
    }
}

/// A boolean filter attribute (`SCMP_FLTATR_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attr {
    /// `SCMP_FLTATR_CTL_NNP`: set `no_new_privs` on load.
    CtlNnp,
    /// `SCMP_FLTATR_CTL_TSYNC`: `SECCOMP_FILTER_FLAG_TSYNC` (API level 2).
    CtlTsync,
    /// `SCMP_FLTATR_CTL_LOG`: `SECCOMP_FILTER_FLAG_LOG` (API level 3).
    CtlLog,
    /// `SCMP_FLTATR_CTL_SSB`: `SECCOMP_FILTER_FLAG_SPEC_ALLOW` (API level 4).
    CtlSsb,
    /// `SCMP_FLTATR_CTL_WAITKILL`: `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`
    /// (API level 7, libseccomp 2.6).
    CtlWaitkill,
    /// `SCMP_FLTATR_API_SYSRAWRC`: failures carry the kernel's errno
    /// rather than `ECANCELED` (libseccomp 2.5).
    ApiSysRawRc,
}

impl Attr {
    fn to_scmp(self) -> ScmpFilterAttr {
        match self {
            Attr::CtlNnp => ScmpFilterAttr::CtlNnp,
            Attr::CtlTsync => ScmpFilterAttr::CtlTsync,
            Attr::CtlLog => ScmpFilterAttr::CtlLog,
            Attr::CtlSsb => ScmpFilterAttr::CtlSsb,
            Attr::CtlWaitkill => ScmpFilterAttr::CtlWaitkill,
            Attr::ApiSysRawRc => ScmpFilterAttr::ApiSysRawRc,
        }
    }
}

/// A libseccomp filter context (`scmp_filter_ctx`), released on drop.
pub struct Filter {
    ctx: ScmpFilterContext,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter").finish_non_exhaustive()
    }
}

impl Filter {
    /// `seccomp_init(default)`, then `SCMP_FLTATR_CTL_NNP` off (see the
    /// module doc) and `SCMP_FLTATR_API_SYSRAWRC` on where the library
    /// has it. The filter covers the native architecture.
    ///
    /// See seccomp_init(3), seccomp_attr_set(3).
    pub fn init(default: Action) -> io::Result<Filter> {
        let ctx = ScmpFilterContext::new(default.to_scmp()).map_err(to_io)?;
        let mut filter = Filter { ctx };
        filter.attr_set(Attr::CtlNnp, false)?;
        // Only a better error code: older libraries lack the attribute.
        let _ = filter.attr_set(Attr::ApiSysRawRc, true);
        Ok(filter)
    }

    /// `seccomp_arch_add(ctx, arch)` for the architecture libseccomp
    /// spells `token` (`"SCMP_ARCH_X86"`). Returns false when the filter
    /// already had it (the native one). Fails with `EINVAL` for a token
    /// this library does not know.
    ///
    /// See seccomp_arch_add(3).
    pub fn arch_add(&mut self, token: &str) -> io::Result<bool> {
        let arch: ScmpArch = token.parse().map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        match self.ctx.add_arch(arch) {
            Ok(_) => Ok(true),
            Err(e) => match to_io(e) {
                e if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
                e => Err(e),
            },
        }
    }

    /// `seccomp_attr_set(ctx, attr, value)`.
    ///
    /// See seccomp_attr_set(3).
    pub fn attr_set(&mut self, attr: Attr, value: bool) -> io::Result<()> {
        self.ctx.set_filter_attr(attr.to_scmp(), u32::from(value)).map_err(to_io)?;
        Ok(())
    }

    /// `seccomp_rule_add_array(ctx, action, syscall, args)`: `action` for
    /// `syscall` (a number from [`syscall_resolve_name`]) when every
    /// comparison in `args` holds. libseccomp rewrites the rule for every
    /// architecture of the filter; it refuses (`EACCES`) a rule whose
    /// action is the filter's default action.
    ///
    /// See seccomp_rule_add(3).
    pub fn rule_add(&mut self, action: Action, syscall: i32, args: &[ArgCmp]) -> io::Result<()> {
        let args: Vec<ScmpArgCompare> = args.iter().map(|a| a.to_scmp()).collect();
        self.ctx
            .add_rule_conditional(action.to_scmp(), ScmpSyscall::from_raw_syscall(syscall), &args)
            .map_err(to_io)?;
        Ok(())
    }

    /// `seccomp_load(ctx)`: compiles the filter and installs it in the
    /// calling thread (every thread with [`Attr::CtlTsync`]). Without
    /// `no_new_privs` the caller needs `CAP_SYS_ADMIN`.
    ///
    /// See seccomp_load(3), seccomp(2).
    pub fn load(&self) -> io::Result<()> {
        self.ctx.load().map_err(to_io)
    }

    /// `seccomp_export_bpf(ctx, fd)`: the program [`Filter::load`] would
    /// install, as classic BPF instructions, for
    /// [`seccomp_set_mode_filter`]. libseccomp 2.5 has no in-memory
    /// variant, so it is written to a memfd and read back.
    ///
    /// See seccomp_export_bpf(3).
    pub fn export_bpf(&self) -> io::Result<Vec<SockFilter>> {
        use std::io::{Read, Seek};
        let memfd = rustix::fs::memfd_create("seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(memfd);
        self.ctx.export_bpf(&file).map_err(to_io)?;
        file.rewind()?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        SockFilter::parse(&bytes).ok_or_else(|| {
            io::Error::other(format!("seccomp_export_bpf wrote {} bytes, not whole instructions", bytes.len()))
        })
    }

    /// `seccomp_export_pfc(ctx, fd)`: the filter as libseccomp's
    /// human-readable pseudo filter code, for debugging and logs.
    ///
    /// See seccomp_export_pfc(3).
    pub fn export_pfc(&self) -> io::Result<String> {
        use std::io::{Read, Seek};
        let memfd = rustix::fs::memfd_create("seccomp-pfc", rustix::fs::MemfdFlags::CLOEXEC)?;
        let mut file = std::fs::File::from(memfd);
        self.ctx.export_pfc(&file).map_err(to_io)?;
        file.rewind()?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        Ok(text)
    }
}

/// One classic BPF instruction (`struct sock_filter` in
/// `<linux/filter.h>`), 8 bytes in the host's byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl SockFilter {
    /// The size of one instruction in bytes.
    pub const SIZE: usize = 8;

    /// The instruction as `struct sock_filter` lays it out.
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..8].copy_from_slice(&self.k.to_ne_bytes());
        b
    }

    /// Instructions from their bytes; `None` unless `bytes` holds whole
    /// instructions.
    pub fn parse(bytes: &[u8]) -> Option<Vec<SockFilter>> {
        if bytes.len() % Self::SIZE != 0 {
            return None;
        }
        let insn = |b: &[u8]| SockFilter {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        };
        Some(bytes.chunks_exact(Self::SIZE).map(insn).collect())
    }
}

/// `BPF_MAXINSNS` (`<linux/bpf_common.h>`): the most instructions a
/// seccomp program may have.
pub const BPF_MAXINSNS: usize = 4096;

/// Flags of `seccomp(SECCOMP_SET_MODE_FILTER, …)` (`SECCOMP_FILTER_FLAG_*`
/// in `<linux/seccomp.h>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterFlags(pub u32);

impl FilterFlags {
    /// `SECCOMP_FILTER_FLAG_TSYNC`: install in every thread of the process.
    pub const TSYNC: FilterFlags = FilterFlags(1 << 0);
    /// `SECCOMP_FILTER_FLAG_LOG`: log every action but `ALLOW`.
    pub const LOG: FilterFlags = FilterFlags(1 << 1);
    /// `SECCOMP_FILTER_FLAG_SPEC_ALLOW`: leave speculative store bypass
    /// mitigation off.
    pub const SPEC_ALLOW: FilterFlags = FilterFlags(1 << 2);
    /// `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`: a notifying syscall waits
    /// killably once the agent received it.
    pub const WAIT_KILLABLE_RECV: FilterFlags = FilterFlags(1 << 5);

    pub fn empty() -> FilterFlags {
        FilterFlags(0)
    }
}

impl std::ops::BitOr for FilterFlags {
    type Output = FilterFlags;
    fn bitor(self, other: FilterFlags) -> FilterFlags {
        FilterFlags(self.0 | other.0)
    }
}

impl std::ops::BitOrAssign for FilterFlags {
    fn bitor_assign(&mut self, other: FilterFlags) {
        self.0 |= other.0;
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog)`: installs the classic
/// BPF program `program` in the calling thread (every thread with
/// [`FilterFlags::TSYNC`]). Without `no_new_privs` the caller needs
/// `CAP_SYS_ADMIN` (`EACCES` otherwise). With `TSYNC`, when another
/// thread cannot take the filter the kernel returns that thread's id,
/// which is an error here naming it. `EINVAL` for an empty program or one
/// longer than [`BPF_MAXINSNS`].
///
/// See seccomp(2).
#[allow(unsafe_code)]
pub fn seccomp_set_mode_filter(flags: FilterFlags, program: &[SockFilter]) -> io::Result<()> {
    if program.is_empty() || program.len() > BPF_MAXINSNS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut insns: Vec<libc::sock_filter> =
        program.iter().map(|i| libc::sock_filter { code: i.code, jt: i.jt, jf: i.jf, k: i.k }).collect();
    let prog = libc::sock_fprog {
        // At most BPF_MAXINSNS (checked above), so it fits.
        len: u16::try_from(insns.len()).unwrap_or(u16::MAX),
        filter: insns.as_mut_ptr(),
    };
    // SAFETY: `prog` points at `insns`, `len` instructions that live until
    // the call returns; the kernel copies the program and keeps no
    // pointer into our memory. The other arguments are plain integers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::c_ulong::from(flags.0),
            std::ptr::from_ref(&prog),
        )
    };
    match rc {
        0 => Ok(()),
        rc if rc < 0 => Err(io::Error::last_os_error()),
        tid => Err(io::Error::other(format!("thread {tid} could not be synchronized to the filter"))),
    }
}

/// `seccomp_syscall_resolve_name(name)`: the syscall's number on the
/// native architecture (negative for a name libseccomp knows only on other
/// architectures, which [`Filter::rule_add`] still accepts), or `None`
/// for a name this library does not know.
///
/// See seccomp_syscall_resolve_name(3).
pub fn syscall_resolve_name(name: &str) -> Option<i32> {
    ScmpSyscall::from_name(name).ok().map(ScmpSyscall::as_raw_syscall)
}

/// `seccomp_api_get()`: the API level this library and kernel support
/// together (1 to 7; 0 when seccomp is unusable).
///
/// See seccomp_api_get(3).
pub fn api_get() -> u32 {
    libseccomp::get_api()
}

/// `seccomp_version()`: the running library's version, as
/// `(major, minor, micro)`.
///
/// See seccomp_version(3).
pub fn version() -> io::Result<(u32, u32, u32)> {
    let v = libseccomp::ScmpVersion::current().map_err(to_io)?;
    Ok((v.major, v.minor, v.micro))
}

/// A libseccomp failure as an `io::Error` with its errno where the library
/// gave one.
fn to_io(e: libseccomp::error::SeccompError) -> io::Error {
    match e.sysrawrc() {
        Some(rc) if rc < 0 => io::Error::from_raw_os_error(-rc),
        _ => io::Error::other(e.to_string()),
    }
}
