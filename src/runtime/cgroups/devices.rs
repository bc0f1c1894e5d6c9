//! The device cgroup: `linux.resources.devices` as cgroup v1 lines and as
//! a cgroup v2 eBPF program. Both are pure; `apply` writes or attaches
//! them.
//!
//! Semantics (the OCI spec's "applied in order", made precise per access
//! bit): a request for access bits `A` on device `(type, major, minor)`
//! is allowed when, for every bit in `A`, the **last** rule that matches
//! the device and names that bit is an allow rule; a bit no rule names is
//! denied. [`evaluate`] is that definition in plain Rust, the slow twin
//! the generated program is checked against. cgroup v1 gets the same
//! list as `devices.deny a` followed by each rule, which the kernel's own
//! exception list evaluates.
//!
//! The program walks the rules backwards keeping the still-undecided
//! access bits in `r3`: a matching deny rule that names an undecided bit
//! returns 0; a matching allow rule clears its bits and returns 1 once
//! none is left; falling off the end returns 0.

use super::CgroupError;
use crate::runtime::spec::{DeviceRule, DeviceRuleType};
use crate::sys::bpf::{self, Insn, Reg};

/// The license string handed to the kernel with the program.
pub const LICENSE: &str = "Apache";

/// Device type in a request (`BPF_DEVCG_DEV_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevType {
    Char,
    Block,
}

/// One rule normalized: wildcards as `None`, access as `BPF_DEVCG_ACC_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    kind: Option<DevType>,
    major: Option<u32>,
    minor: Option<u32>,
    access: u32,
}

fn field(i: usize, name: &str) -> String {
    format!("linux.resources.devices[{i}].{name}")
}

fn number(i: usize, name: &str, v: Option<i64>) -> Result<Option<u32>, CgroupError> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n).map(Some).map_err(|_| CgroupError::Invalid {
            field: field(i, name),
            value: n.to_string(),
            reason: "out of range".into(),
        }),
    }
}

fn normalize(rules: &[DeviceRule]) -> Result<Vec<Rule>, CgroupError> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut access = 0;
            for c in r.access.chars() {
                access |= match c {
                    'r' => bpf::DEVCG_ACC_READ,
                    'w' => bpf::DEVCG_ACC_WRITE,
                    'm' => bpf::DEVCG_ACC_MKNOD,
                    _ => {
                        return Err(CgroupError::Invalid {
                            field: field(i, "access"),
                            value: r.access.clone(),
                            reason: "only r, w and m are allowed".into(),
                        })
                    }
                };
            }
            if r.access.is_empty() {
                access = ALL_ACCESS;
            }
            let kind = match r.kind {
                None | Some(DeviceRuleType::All) => None,
                Some(DeviceRuleType::Char) => Some(DevType::Char),
                Some(DeviceRuleType::Block) => Some(DevType::Block),
            };
            Ok(Rule {
                allow: r.allow,
                kind,
                major: number(i, "major", r.major)?,
                minor: number(i, "minor", r.minor)?,
                access,
            })
        })
        .collect()
}

const ALL_ACCESS: u32 = bpf::DEVCG_ACC_READ | bpf::DEVCG_ACC_WRITE | bpf::DEVCG_ACC_MKNOD;

/// The cgroup v1 lines for `rules`: `(allow?, "c 1:3 rwm")`, to be
/// written after `devices.deny` ← `a`.
pub fn v1_lines(rules: &[DeviceRule]) -> Result<Vec<(bool, String)>, CgroupError> {
    Ok(normalize(rules)?
        .into_iter()
        .map(|r| {
            let kind = match r.kind {
                None => 'a',
                Some(DevType::Char) => 'c',
                Some(DevType::Block) => 'b',
            };
            let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
            let mut acc = String::new();
            for (bit, c) in [(bpf::DEVCG_ACC_READ, 'r'), (bpf::DEVCG_ACC_WRITE, 'w'), (bpf::DEVCG_ACC_MKNOD, 'm')] {
                if r.access & bit != 0 {
                    acc.push(c);
                }
            }
            (r.allow, format!("{kind} {}:{} {acc}", num(r.major), num(r.minor)))
        })
        .collect())
}

fn matches(r: &Rule, kind: DevType, major: u32, minor: u32) -> bool {
    r.kind.map_or(true, |k| k == kind) && r.major.map_or(true, |m| m == major) && r.minor.map_or(true, |m| m == minor)
}

/// Whether `rules` allow `access` (`BPF_DEVCG_ACC_*` bits) to a device:
/// the definition the program implements (see the module doc).
pub fn evaluate(rules: &[DeviceRule], kind: DevType, major: u32, minor: u32, access: u32) -> Result<bool, CgroupError> {
    let rules = normalize(rules)?;
    let mut undecided = access;
    for r in rules.iter().rev().filter(|r| matches(r, kind, major, minor)) {
        if r.allow {
            undecided &= !r.access;
            if undecided == 0 {
                return Ok(true);
            }
        } else if undecided & r.access != 0 {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Reinterprets a `u32` as the 32-bit immediate a `JMP32` compares with.
fn imm(v: u32) -> i32 {
    i32::from_ne_bytes(v.to_ne_bytes())
}

/// The `BPF_PROG_TYPE_CGROUP_DEVICE` program for `rules`.
pub fn program(rules: &[DeviceRule]) -> Result<Vec<Insn>, CgroupError> {
    let rules = normalize(rules)?;
    // struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }
    let mut p = vec![
        Insn::load_u32(Reg::R2, Reg::R1, 0),
        Insn::and32(Reg::R2, 0xffff), // r2 = device type
        Insn::load_u32(Reg::R3, Reg::R1, 0),
        Insn::rsh32(Reg::R3, 16),            // r3 = access bits not yet decided
        Insn::load_u32(Reg::R4, Reg::R1, 4), // r4 = major
        Insn::load_u32(Reg::R5, Reg::R1, 8), // r5 = minor
    ];
    for r in rules.iter().rev() {
        let mut checks = Vec::new();
        if let Some(k) = r.kind {
            let t = match k {
                DevType::Char => bpf::DEVCG_DEV_CHAR,
                DevType::Block => bpf::DEVCG_DEV_BLOCK,
            };
            checks.push((Reg::R2, t));
        }
        if let Some(m) = r.major {
            checks.push((Reg::R4, m));
        }
        if let Some(m) = r.minor {
            checks.push((Reg::R5, m));
        }
        let action = if r.allow {
            // r3 &= ~access; if r3 != 0 continue; return 1
            vec![
                Insn::and32(Reg::R3, imm(!r.access)),
                Insn::jne32(Reg::R3, 0, 2),
                Insn::mov32(Reg::R0, 1),
                Insn::exit(),
            ]
        } else {
            // if (r3 & access) == 0 continue; return 0
            vec![
                Insn::mov32_reg(Reg::R0, Reg::R3),
                Insn::and32(Reg::R0, imm(r.access)),
                Insn::jeq32(Reg::R0, 0, 2),
                Insn::mov32(Reg::R0, 0),
                Insn::exit(),
            ]
        };
        let mut left = checks.len() + action.len();
        for (reg, v) in checks {
            left -= 1;
            let off = i16::try_from(left).expect("a rule block is a few instructions");
            p.push(Insn::jne32(reg, imm(v), off));
        }
        p.extend(action);
    }
    p.extend([Insn::mov32(Reg::R0, 0), Insn::exit()]);
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use crate::sys::bpf::{
        ALU32_AND_K, ALU32_MOV_K, ALU32_MOV_X, ALU32_RSH_K, EXIT, JMP32_JEQ_K, JMP32_JNE_K, LDX_MEM_W,
    };

    /// Runs the instructions `program` emits on one context, as the
    /// kernel would (32-bit ALU ops zero-extend, jumps are relative).
    fn run(p: &[Insn], kind: DevType, major: u32, minor: u32, access: u32) -> u32 {
        let t = match kind {
            DevType::Char => bpf::DEVCG_DEV_CHAR,
            DevType::Block => bpf::DEVCG_DEV_BLOCK,
        };
        let ctx = [(access << 16) | t, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (d, s) = (usize::from(i.dst().0), usize::from(i.src().0));
            let imm = u64::from(u32::from_ne_bytes(i.imm.to_ne_bytes()));
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(s, 1, "loads only from the context");
                    r[d] = u64::from(ctx[usize::try_from(i.off).unwrap() / 4]);
                }
                ALU32_AND_K => r[d] = (r[d] & imm) & 0xffff_ffff,
                ALU32_RSH_K => r[d] = (r[d] & 0xffff_ffff) >> imm,
                ALU32_MOV_K => r[d] = imm,
                ALU32_MOV_X => r[d] = r[s] & 0xffff_ffff,
                JMP32_JEQ_K | JMP32_JNE_K => {
                    let eq = (r[d] & 0xffff_ffff) == imm;
                    if eq == (i.code == JMP32_JEQ_K) {
                        pc += usize::try_from(i.off).unwrap();
                    }
                }
                EXIT => return u32::try_from(r[0]).unwrap(),
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    fn rule(
        allow: bool,
        kind: Option<DeviceRuleType>,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule { allow, kind, major, minor, access: access.into() }
    }

    const R: u32 = bpf::DEVCG_ACC_READ;
    const W: u32 = bpf::DEVCG_ACC_WRITE;
    const M: u32 = bpf::DEVCG_ACC_MKNOD;

    #[test]
    fn deny_all_then_allow_null() {
        let rules =
            [rule(false, None, None, None, "rwm"), rule(true, Some(DeviceRuleType::Char), Some(1), Some(3), "rwm")];
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, DevType::Char, 1, 3, R | W), 1);
        assert_eq!(run(&p, DevType::Char, 1, 5, R), 0);
        assert_eq!(run(&p, DevType::Block, 1, 3, R), 0);
        assert_eq!(v1_lines(&rules).unwrap(), vec![(false, "a *:* rwm".to_owned()), (true, "c 1:3 rwm".to_owned())]);
    }

    #[test]
    fn a_later_deny_of_one_bit_wins_over_an_earlier_allow() {
        let rules = [
            rule(true, Some(DeviceRuleType::Char), Some(1), None, "rwm"),
            rule(false, Some(DeviceRuleType::Char), Some(1), Some(3), "w"),
        ];
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, DevType::Char, 1, 3, R), 1);
        assert_eq!(run(&p, DevType::Char, 1, 3, R | W), 0);
        assert_eq!(run(&p, DevType::Char, 1, 5, R | W), 1);
    }

    #[test]
    fn split_allows_combine_per_bit() {
        let rules = [rule(true, Some(DeviceRuleType::Char), Some(1), Some(3), "r"), rule(true, None, None, None, "w")];
        let p = program(&rules).unwrap();
        assert_eq!(run(&p, DevType::Char, 1, 3, R | W), 1);
        assert_eq!(run(&p, DevType::Char, 1, 3, M), 0);
        assert_eq!(run(&p, DevType::Char, 1, 4, R), 0);
    }

    #[test]
    fn empty_rules_deny_everything_and_bad_access_is_named() {
        let p = program(&[]).unwrap();
        assert_eq!(run(&p, DevType::Char, 1, 3, R), 0);
        let e = program(&[rule(true, None, None, None, "rx")]).unwrap_err().to_string();
        assert!(e.contains("linux.resources.devices[0].access"), "{e}");
        let e = program(&[rule(true, None, Some(1 << 33), None, "r")]).unwrap_err().to_string();
        assert!(e.contains("devices[0].major"), "{e}");
    }

    /// The generated program against `evaluate` on random rule lists and
    /// requests (seeded; the seed is printed on failure).
    #[test]
    fn program_agrees_with_evaluate() {
        let seed = 0x5eed_de71_ce13_u64;
        let mut rng = Rng::new(seed);
        let kinds = [None, Some(DeviceRuleType::All), Some(DeviceRuleType::Char), Some(DeviceRuleType::Block)];
        let accs = ["r", "w", "m", "rw", "rm", "wm", "rwm", ""];
        for case in 0..400 {
            let n = rng.range_usize(0, 7);
            let rules: Vec<DeviceRule> = (0..n)
                .map(|_| {
                    let num = |rng: &mut Rng| match rng.below(3) {
                        0 => None,
                        1 => Some(-1),
                        _ => Some(i64::try_from(rng.below(3)).unwrap()),
                    };
                    let kind = kinds[rng.index(kinds.len())];
                    let major = num(&mut rng);
                    let minor = num(&mut rng);
                    rule(rng.below(2) == 0, kind, major, minor, accs[rng.index(accs.len())])
                })
                .collect();
            let p = program(&rules).unwrap();
            for kind in [DevType::Char, DevType::Block] {
                for major in 0..3 {
                    for minor in 0..3 {
                        for access in 1..8 {
                            let want = evaluate(&rules, kind, major, minor, access).unwrap();
                            let got = run(&p, kind, major, minor, access) == 1;
                            assert_eq!(
                                got, want,
                                "seed {seed:#x} case {case}: {rules:?} on {kind:?} {major}:{minor} access {access}"
                            );
                        }
                    }
                }
            }
        }
    }
}
