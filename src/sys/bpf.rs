//! eBPF programs for cgroup v2's device controller: instructions as data,
//! and the few `bpf(2)` commands that load a program and attach it to a
//! cgroup, list what is attached, and detach it.
//!
//! cgroup v2 has no `devices.allow`; the kernel asks a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the group (and to
//! each ancestor) whether an access is allowed, handing it a
//! `struct bpf_cgroup_dev_ctx` (see the kernel's
//! Documentation/admin-guide/cgroup-v2.rst, "Device controller"). runc
//! and crun generate such programs by hand; so does
//! `runtime::cgroups::devices`, with the opcodes below. Only the handful
//! of instructions that generator needs are named here.
#![allow(unsafe_code)]

use rustix::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::io;

/// One `struct bpf_insn` (`<linux/bpf.h>`): opcode, destination and
/// source registers (low and high nibble), offset, immediate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// A BPF register (`BPF_REG_0`..`BPF_REG_10`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

impl Reg {
    pub const R0: Reg = Reg(0);
    pub const R1: Reg = Reg(1);
    pub const R2: Reg = Reg(2);
    pub const R3: Reg = Reg(3);
    pub const R4: Reg = Reg(4);
    pub const R5: Reg = Reg(5);
}

/// `BPF_LDX | BPF_MEM | BPF_W`: 32-bit load from memory.
pub const LDX_MEM_W: u8 = 0x01 | 0x60;
/// `BPF_ALU | BPF_AND | BPF_K`: 32-bit `dst &= imm`.
pub const ALU32_AND_K: u8 = 0x04 | 0x50;
/// `BPF_ALU | BPF_RSH | BPF_K`: 32-bit `dst >>= imm`.
pub const ALU32_RSH_K: u8 = 0x04 | 0x70;
/// `BPF_ALU | BPF_MOV | BPF_K`: 32-bit `dst = imm`.
pub const ALU32_MOV_K: u8 = 0x04 | 0xb0;
/// `BPF_ALU | BPF_MOV | BPF_X`: 32-bit `dst = src`.
pub const ALU32_MOV_X: u8 = 0x04 | 0xb0 | 0x08;
/// `BPF_JMP32 | BPF_JEQ | BPF_K`: `if (u32)dst == imm goto +off`.
pub const JMP32_JEQ_K: u8 = 0x06 | 0x10;
/// `BPF_JMP32 | BPF_JNE | BPF_K`: `if (u32)dst != imm goto +off`.
pub const JMP32_JNE_K: u8 = 0x06 | 0x50;
/// `BPF_JMP | BPF_EXIT`: return `r0`.
pub const EXIT: u8 = 0x05 | 0x90;

impl Insn {
    const fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn { code, regs: (src.0 << 4) | (dst.0 & 0x0f), off, imm }
    }
    /// `dst = *(u32 *)(src + off)`.
    pub const fn load_u32(dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(LDX_MEM_W, dst, src, off, 0)
    }
    /// `dst = (u32)dst & imm`.
    pub const fn and32(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU32_AND_K, dst, Reg::R0, 0, imm)
    }
    /// `dst = (u32)dst >> imm`.
    pub const fn rsh32(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU32_RSH_K, dst, Reg::R0, 0, imm)
    }
    /// `dst = imm` (32-bit, zero-extended).
    pub const fn mov32(dst: Reg, imm: i32) -> Insn {
        Insn::new(ALU32_MOV_K, dst, Reg::R0, 0, imm)
    }
    /// `dst = (u32)src`.
    pub const fn mov32_reg(dst: Reg, src: Reg) -> Insn {
        Insn::new(ALU32_MOV_X, dst, src, 0, 0)
    }
    /// `if (u32)dst == imm` skip `off` instructions.
    pub const fn jeq32(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP32_JEQ_K, dst, Reg::R0, off, imm)
    }
    /// `if (u32)dst != imm` skip `off` instructions.
    pub const fn jne32(dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(JMP32_JNE_K, dst, Reg::R0, off, imm)
    }
    /// `return r0`.
    pub const fn exit() -> Insn {
        Insn::new(EXIT, Reg::R0, Reg::R0, 0, 0)
    }
    /// The destination register.
    pub fn dst(self) -> Reg {
        Reg(self.regs & 0x0f)
    }
    /// The source register.
    pub fn src(self) -> Reg {
        Reg(self.regs >> 4)
    }
}

/// `struct bpf_cgroup_dev_ctx`'s device types (`BPF_DEVCG_DEV_*`), in the
/// low 16 bits of `access_type`.
pub const DEVCG_DEV_BLOCK: u32 = 1;
pub const DEVCG_DEV_CHAR: u32 = 2;
/// `BPF_DEVCG_ACC_*`, in the high 16 bits of `access_type`.
pub const DEVCG_ACC_MKNOD: u32 = 1;
pub const DEVCG_ACC_READ: u32 = 2;
pub const DEVCG_ACC_WRITE: u32 = 4;

/// `enum bpf_cmd` values used here.
const BPF_PROG_LOAD: libc::c_int = 5;
const BPF_PROG_ATTACH: libc::c_int = 8;
const BPF_PROG_DETACH: libc::c_int = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
const BPF_PROG_QUERY: libc::c_int = 16;
/// `BPF_PROG_TYPE_CGROUP_DEVICE`.
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` (`enum bpf_attach_type`).
const BPF_CGROUP_DEVICE: u32 = 6;
/// `#define BPF_F_ALLOW_MULTI (1U << 1)`: several programs on one group,
/// all of which must allow.
pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

/// The `BPF_PROG_LOAD` member of `union bpf_attr`, up to
/// `expected_attach_type` (the kernel zero-fills the rest).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The `BPF_PROG_ATTACH`/`BPF_PROG_DETACH` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The `BPF_PROG_QUERY` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

/// The `BPF_*_GET_FD_BY_ID` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `bpf(cmd, attr, sizeof *attr)`.
///
/// # Safety
/// `attr` must be the member of `union bpf_attr` that `cmd` reads, and
/// every pointer in it must be valid for what the kernel does with it.
unsafe fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: the caller guarantees attr's shape and its pointers; the
    // size passed is the size of the struct handed in, so the kernel
    // reads (and for queries writes) nothing beyond it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), std::mem::size_of::<T>()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

fn fd_from(rc: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(rc).map_err(|_| io::Error::other("bpf returned an out-of-range descriptor"))?;
    // SAFETY: the kernel returned a new descriptor (O_CLOEXEC, as every
    // bpf object descriptor) that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw(fd: BorrowedFd<'_>) -> u32 {
    // Descriptors are non-negative once open.
    u32::try_from(fd.as_raw_fd()).unwrap_or(u32::MAX)
}

/// `bpf(BPF_PROG_LOAD, {BPF_PROG_TYPE_CGROUP_DEVICE, insns, license})`:
/// loads a device program; on a verifier error the message is its log.
///
/// See bpf(2).
pub fn prog_load_cgroup_device(insns: &[Insn], license: &str) -> io::Result<OwnedFd> {
    let license = std::ffi::CString::new(license).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: u32::try_from(log.len()).unwrap_or(u32::MAX),
        log_buf: log.as_mut_ptr() as u64,
        ..ProgLoadAttr::default()
    };
    attr.prog_name[..8].copy_from_slice(b"strata_d");
    // SAFETY: attr is BPF_PROG_LOAD's member; insns, license and log
    // outlive the call and their lengths are the counts given.
    match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
        Ok(rc) => fd_from(rc),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]);
            if text.trim().is_empty() {
                Err(e)
            } else {
                Err(io::Error::new(e.kind(), format!("{e}: verifier: {}", text.trim())))
            }
        }
    }
}

/// `bpf(BPF_PROG_ATTACH, {cgroup, prog, BPF_CGROUP_DEVICE, flags})`.
///
/// See bpf(2).
pub fn prog_attach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>, flags: u32) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(prog),
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: 0,
    };
    // SAFETY: attr is BPF_PROG_ATTACH's member and holds no pointers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map(drop)
}

/// `bpf(BPF_PROG_DETACH, {cgroup, prog, BPF_CGROUP_DEVICE})`.
///
/// See bpf(2).
pub fn prog_detach_cgroup_device(cgroup: BorrowedFd<'_>, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = AttachAttr {
        target_fd: raw(cgroup),
        attach_bpf_fd: raw(prog),
        attach_type: BPF_CGROUP_DEVICE,
        ..AttachAttr::default()
    };
    // SAFETY: attr is BPF_PROG_DETACH's member and holds no pointers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr) }.map(drop)
}

/// `bpf(BPF_PROG_QUERY, {cgroup, BPF_CGROUP_DEVICE})`: the IDs of the
/// device programs attached to the group itself (not its ancestors).
///
/// See bpf(2).
pub fn prog_query_cgroup_device(cgroup: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: raw(cgroup.as_fd()),
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: u32::try_from(ids.len()).unwrap_or(0),
        ..QueryAttr::default()
    };
    // SAFETY: attr is BPF_PROG_QUERY's member; prog_ids points to
    // prog_cnt writable u32s that outlive the call.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    ids.truncate(usize::try_from(attr.prog_cnt).unwrap_or(0));
    Ok(ids)
}

/// `bpf(BPF_PROG_GET_FD_BY_ID, {id})`.
///
/// See bpf(2).
pub fn prog_get_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = GetFdAttr { id, ..GetFdAttr::default() };
    // SAFETY: attr is BPF_PROG_GET_FD_BY_ID's member and holds no pointers.
    fd_from(unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut attr) }?)
}
