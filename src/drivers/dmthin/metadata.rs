//! Reading a thin pool's on-disk metadata (the kernel's persistent-data
//! format, as `thin_ls`/`thin_delta` read it) to count the blocks a thin
//! device does not share with another. Pure: blocks come from a reader
//! closure; the driver feeds it the metadata device under a held metadata
//! snapshot (`reserve_metadata_snap`), which freezes a consistent copy.
//!
//! ```text
//! block 0: superblock  magic 27022010 @32, held_root @56
//! held_root: a copy of the superblock at snapshot time
//!            data_mapping_root @320: b-tree  thin id -> device tree root
//! device tree: b-tree  virtual block -> (data block << 24 | time)
//! b-tree node: header (flags @4: 1 internal, 2 leaf; blocknr @8;
//!              nr_entries @16; max_entries @20; value_size @24), then
//!              max_entries u64 keys, then the values
//! ```
//!
//! Snapshots share b-tree nodes with their origin until either side
//! writes, so a subtree whose root block is also in the parent's tree is
//! identical and skipped: the walk costs time in what changed.

use std::collections::HashSet;
use std::io;

/// Metadata block size: fixed at 4 KiB by the kernel.
pub const BLOCK: usize = 4096;
const MAGIC: u64 = 27_022_010;
const INTERNAL: u32 = 1;
const LEAF: u32 = 2;
/// Deeper than any real tree (2^64 keys fit in far fewer levels).
const MAX_DEPTH: usize = 16;

fn corrupt(block: u64, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("thin-pool metadata block {block}: {what}"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// One parsed b-tree node.
struct Node {
    leaf: bool,
    keys: Vec<u64>,
    values: Vec<u64>,
}

fn node(block: u64, b: &[u8]) -> io::Result<Node> {
    if b.len() != BLOCK {
        return Err(corrupt(block, format!("{} bytes, not {BLOCK}", b.len())));
    }
    let flags = u32_at(b, 4);
    if u64_at(b, 8) != block {
        return Err(corrupt(block, format!("names itself block {}", u64_at(b, 8))));
    }
    let (n, max, size) = (u32_at(b, 16) as usize, u32_at(b, 20) as usize, u32_at(b, 24) as usize);
    if size != 8 || n > max || 32 + max * 16 > BLOCK {
        return Err(corrupt(block, format!("bad node header (entries {n}/{max}, value size {size})")));
    }
    let leaf = match flags & (INTERNAL | LEAF) {
        INTERNAL => false,
        LEAF => true,
        f => return Err(corrupt(block, format!("node flags {f:#x}"))),
    };
    let keys = (0..n).map(|i| u64_at(b, 32 + 8 * i)).collect();
    let values = (0..n).map(|i| u64_at(b, 32 + 8 * max + 8 * i)).collect();
    Ok(Node { leaf, keys, values })
}

/// The value stored under `key` in the b-tree at `root`.
fn lookup(read: &mut dyn FnMut(u64) -> io::Result<Vec<u8>>, root: u64, key: u64) -> io::Result<Option<u64>> {
    let mut at = root;
    for _ in 0..MAX_DEPTH {
        let n = node(at, &read(at)?)?;
        // The last entry whose key is <= `key`.
        let Some(i) = n.keys.iter().rposition(|k| *k <= key) else { return Ok(None) };
        if n.leaf {
            return Ok((n.keys[i] == key).then_some(n.values[i]));
        }
        at = n.values[i];
    }
    Err(corrupt(root, "b-tree deeper than 16 levels"))
}

/// Every (key, value) of the tree at `root`, in key order, skipping
/// subtrees rooted at a block in `skip`; records the node blocks it
/// visits in `seen`.
fn walk(
    read: &mut dyn FnMut(u64) -> io::Result<Vec<u8>>,
    root: u64,
    skip: &HashSet<u64>,
    seen: &mut HashSet<u64>,
    out: &mut Vec<(u64, u64)>,
) -> io::Result<()> {
    let mut stack = vec![(root, 0usize)];
    while let Some((at, depth)) = stack.pop() {
        if skip.contains(&at) {
            continue;
        }
        if depth > MAX_DEPTH || !seen.insert(at) {
            return Err(corrupt(at, "b-tree cycle or over 16 levels"));
        }
        let n = node(at, &read(at)?)?;
        if n.leaf {
            out.extend(n.keys.into_iter().zip(n.values));
        } else {
            // Reversed, so the stack pops children in key order.
            stack.extend(n.values.into_iter().rev().map(|c| (c, depth + 1)));
        }
    }
    Ok(())
}

/// The root of thin device `thin`'s mapping tree in the held metadata
/// snapshot.
fn device_root(read: &mut dyn FnMut(u64) -> io::Result<Vec<u8>>, thin: u64) -> io::Result<u64> {
    let sb = read(0)?;
    if sb.len() != BLOCK || u64_at(&sb, 32) != MAGIC {
        return Err(corrupt(0, "not a thin-pool superblock"));
    }
    let held = u64_at(&sb, 56);
    if held == 0 {
        return Err(corrupt(0, "no metadata snapshot is held"));
    }
    let copy = read(held)?;
    if copy.len() != BLOCK || u64_at(&copy, 32) != MAGIC {
        return Err(corrupt(held, "the held snapshot is not a superblock copy"));
    }
    lookup(read, u64_at(&copy, 320), thin)?
        .ok_or_else(|| corrupt(held, format!("thin device {thin} is not in the metadata snapshot")))
}

/// Blocks that thin device `thin` maps to a data block other than the one
/// `parent` maps at the same address (or that `parent` does not map):
/// what `thin` owns alone, counted in pool blocks.
pub fn exclusive_blocks(read: &mut dyn FnMut(u64) -> io::Result<Vec<u8>>, thin: u64, parent: u64) -> io::Result<u64> {
    let (own_root, parent_root) = (device_root(read, thin)?, device_root(read, parent)?);
    let mut parent_nodes = HashSet::new();
    let mut parent_map = Vec::new();
    walk(read, parent_root, &HashSet::new(), &mut parent_nodes, &mut parent_map)?;
    let mut own = Vec::new();
    walk(read, own_root, &parent_nodes, &mut HashSet::new(), &mut own)?;
    let data = |v: u64| v >> 24;
    let n = own
        .iter()
        .filter(|(vblock, v)| match parent_map.binary_search_by_key(vblock, |(k, _)| *k) {
            Ok(i) => data(parent_map[i].1) != data(*v),
            Err(_) => true,
        })
        .count();
    Ok(n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A tiny metadata device in memory.
    #[derive(Default)]
    struct Meta(HashMap<u64, Vec<u8>>);

    impl Meta {
        fn node(&mut self, at: u64, leaf: bool, entries: &[(u64, u64)]) {
            let max = 126;
            let mut b = vec![0u8; BLOCK];
            b[4..8].copy_from_slice(&(if leaf { LEAF } else { INTERNAL }).to_le_bytes());
            b[8..16].copy_from_slice(&at.to_le_bytes());
            b[16..20].copy_from_slice(&u32::try_from(entries.len()).unwrap().to_le_bytes());
            b[20..24].copy_from_slice(&u32::try_from(max).unwrap().to_le_bytes());
            b[24..28].copy_from_slice(&8u32.to_le_bytes());
            for (i, (k, v)) in entries.iter().enumerate() {
                b[32 + 8 * i..40 + 8 * i].copy_from_slice(&k.to_le_bytes());
                b[32 + 8 * max + 8 * i..40 + 8 * max + 8 * i].copy_from_slice(&v.to_le_bytes());
            }
            self.0.insert(at, b);
        }
        fn superblocks(&mut self, held: u64, mapping_root: u64) {
            let mut sb = vec![0u8; BLOCK];
            sb[32..40].copy_from_slice(&MAGIC.to_le_bytes());
            sb[56..64].copy_from_slice(&held.to_le_bytes());
            self.0.insert(0, sb.clone());
            sb[56..64].copy_from_slice(&0u64.to_le_bytes());
            sb[320..328].copy_from_slice(&mapping_root.to_le_bytes());
            self.0.insert(held, sb);
        }
        fn reader(&self) -> impl FnMut(u64) -> io::Result<Vec<u8>> + '_ {
            |b| {
                self.0
                    .get(&b)
                    .cloned()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, format!("block {b}")))
            }
        }
    }

    fn map(data: u64) -> u64 {
        data << 24 | 7
    }

    /// Base (thin 1) maps virtual blocks 0..6 through two leaves; the
    /// container (thin 2) shares the first leaf node and has its own copy
    /// of the second, in which block 4 was rewritten (new data block) and
    /// block 9 added.
    fn fixture() -> Meta {
        let mut m = Meta::default();
        m.superblocks(1, 2);
        m.node(2, true, &[(1, 10), (2, 20)]);
        m.node(10, false, &[(0, 11), (3, 12)]);
        m.node(11, true, &[(0, map(100)), (1, map(101)), (2, map(102))]);
        m.node(12, true, &[(3, map(103)), (4, map(104)), (5, map(105))]);
        m.node(20, false, &[(0, 11), (3, 22)]);
        m.node(22, true, &[(3, map(103)), (4, map(200)), (5, map(105)), (9, map(201))]);
        m
    }

    #[test]
    fn counts_rewritten_and_new_blocks_and_skips_shared_subtrees() {
        let m = fixture();
        let mut read = m.reader();
        assert_eq!(exclusive_blocks(&mut read, 2, 1).unwrap(), 2, "block 4 rewritten, block 9 new");
        assert_eq!(exclusive_blocks(&mut read, 1, 1).unwrap(), 0, "a device shares everything with itself");
        // The base against the container: its block 4 and nothing else.
        assert_eq!(exclusive_blocks(&mut read, 1, 2).unwrap(), 1);
    }

    #[test]
    fn shared_leaves_are_not_read() {
        let m = fixture();
        let mut reads = Vec::new();
        let mut read = |b: u64| {
            reads.push(b);
            m.reader()(b)
        };
        exclusive_blocks(&mut read, 2, 1).unwrap();
        // Leaf 11 is read once (for the parent), never again for the child.
        assert_eq!(reads.iter().filter(|b| **b == 11).count(), 1, "{reads:?}");
    }

    #[test]
    fn bad_metadata_is_an_error_naming_the_block() {
        let mut m = fixture();
        let e = exclusive_blocks(&mut m.reader(), 3, 1).unwrap_err().to_string();
        assert!(e.contains("thin device 3 is not in the metadata snapshot"), "{e}");
        m.0.get_mut(&12).unwrap()[8] = 99; // the node names another block
        let e = exclusive_blocks(&mut m.reader(), 2, 1).unwrap_err().to_string();
        assert!(e.contains("block 12"), "{e}");
        m.0.get_mut(&0).unwrap()[56..64].copy_from_slice(&0u64.to_le_bytes());
        let e = exclusive_blocks(&mut m.reader(), 2, 1).unwrap_err().to_string();
        assert!(e.contains("no metadata snapshot is held"), "{e}");
        // A cycle: an internal node pointing at itself.
        let mut m = fixture();
        m.node(20, false, &[(0, 20)]);
        let e = exclusive_blocks(&mut m.reader(), 2, 1).unwrap_err().to_string();
        assert!(e.contains("cycle"), "{e}");
    }
}
