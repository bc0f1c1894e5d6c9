//! Reading a subvolume's own b-tree: `BTRFS_IOC_GET_SUBVOL_INFO` for the
//! transaction that created a snapshot, and `BTRFS_IOC_TREE_SEARCH` for the
//! items in tree blocks written since (what `btrfs subvolume find-new`
//! does). With both, the changes of a snapshot are found in time
//! proportional to the changes, not to the tree.
//!
//! Item payloads are parsed by pure functions ([`inode_transid`],
//! [`FileExtent::parse`]) over the little-endian on-disk structs of
//! `<linux/btrfs_tree.h>`.

#![allow(unsafe_code)]

use super::{ioc, ioctl_ptr, IOC_READ, IOC_WRITE};
use rustix::fd::AsFd;
use rustix::io::Errno;

/// `#define BTRFS_IOC_TREE_SEARCH _IOWR(BTRFS_IOCTL_MAGIC, 17, struct btrfs_ioctl_search_args)`
pub const BTRFS_IOC_TREE_SEARCH: libc::Ioctl = ioc(IOC_READ | IOC_WRITE, 17, size_of::<SearchArgs>());
/// `#define BTRFS_IOC_GET_SUBVOL_INFO _IOR(BTRFS_IOCTL_MAGIC, 60, struct btrfs_ioctl_get_subvol_info_args)`
pub const BTRFS_IOC_GET_SUBVOL_INFO: libc::Ioctl = ioc(IOC_READ, 60, size_of::<SubvolInfoArgs>());

/// `#define BTRFS_INODE_ITEM_KEY 1` (`<linux/btrfs_tree.h>`).
pub const BTRFS_INODE_ITEM_KEY: u32 = 1;
/// `#define BTRFS_EXTENT_DATA_KEY 108`: one file extent item per extent.
pub const BTRFS_EXTENT_DATA_KEY: u32 = 108;

/// `struct btrfs_ioctl_search_key`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawSearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: u64,
    unused2: u64,
    unused3: u64,
    unused4: u64,
}

/// `#define BTRFS_SEARCH_ARGS_BUFSIZE (4096 - sizeof(struct btrfs_ioctl_search_key))`
const SEARCH_BUF: usize = 4096 - size_of::<RawSearchKey>();

/// `struct btrfs_ioctl_search_args`.
#[repr(C)]
struct SearchArgs {
    key: RawSearchKey,
    buf: [u8; SEARCH_BUF],
}

/// `struct btrfs_ioctl_search_header`, which precedes each item in `buf`.
const HEADER_LEN: usize = 32;

/// `struct btrfs_ioctl_timespec` (16 bytes with its padding).
#[repr(C)]
struct Timespec {
    sec: u64,
    nsec: u32,
}

/// `struct btrfs_ioctl_get_subvol_info_args`.
#[repr(C)]
struct SubvolInfoArgs {
    treeid: u64,
    name: [u8; super::BTRFS_VOL_NAME_MAX + 1],
    parent_id: u64,
    dirid: u64,
    generation: u64,
    flags: u64,
    uuid: [u8; 16],
    parent_uuid: [u8; 16],
    received_uuid: [u8; 16],
    ctransid: u64,
    otransid: u64,
    stransid: u64,
    rtransid: u64,
    times: [Timespec; 4],
    reserved: [u64; 8],
}

const _: () = assert!(size_of::<RawSearchKey>() == 104);
const _: () = assert!(size_of::<SearchArgs>() == 4096);
const _: () = assert!(size_of::<SubvolInfoArgs>() == 504);
const _: () = assert!(std::mem::offset_of!(SubvolInfoArgs, otransid) == 352);

/// What `BTRFS_IOC_GET_SUBVOL_INFO` says about a subvolume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubvolInfo {
    pub id: u64,
    /// The transaction the subvolume (or snapshot) was created in.
    pub otransid: u64,
    /// The last transaction that changed it.
    pub generation: u64,
}

/// `ioctl(subvol, BTRFS_IOC_GET_SUBVOL_INFO, &args)` on the subvolume's
/// root directory (Linux 4.18+).
pub fn subvol_info(subvol: impl AsFd) -> Result<SubvolInfo, Errno> {
    // SAFETY: SubvolInfoArgs is integers, byte arrays and Timespec (two
    // integers); all-zero is a valid value of each.
    let mut args: Box<SubvolInfoArgs> = Box::new(unsafe { std::mem::zeroed() });
    ioctl_ptr(subvol.as_fd(), BTRFS_IOC_GET_SUBVOL_INFO, &mut *args)?;
    Ok(SubvolInfo { id: args.treeid, otransid: args.otransid, generation: args.generation })
}

/// The key of one item found by [`tree_search`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemKey {
    /// Generation of the tree block holding the item.
    pub transid: u64,
    /// The inode number, for inode and file extent items.
    pub objectid: u64,
    pub item_type: u32,
    /// The file offset, for file extent items.
    pub offset: u64,
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Calls `f` for every item of the subvolume tree that `fd` is in, held in
/// tree blocks written in transaction `min_transid` or later, in key
/// order: `ioctl(fd, BTRFS_IOC_TREE_SEARCH, …)` (tree 0 = `fd`'s own)
/// repeated from just past the last key returned. Needs `CAP_SYS_ADMIN`.
///
/// An item too large for the 4 KiB v1 buffer comes back with no payload
/// (the v1 interface cannot report `EOVERFLOW`); `f` then sees it empty.
pub fn tree_search(fd: impl AsFd, min_transid: u64, mut f: impl FnMut(ItemKey, &[u8])) -> Result<(), Errno> {
    let mut next = (0u64, 0u32, 0u64);
    loop {
        let key = RawSearchKey {
            tree_id: 0,
            min_objectid: next.0,
            max_objectid: u64::MAX,
            min_type: next.1,
            max_type: u32::from(u8::MAX),
            min_offset: next.2,
            max_offset: u64::MAX,
            min_transid,
            max_transid: u64::MAX,
            nr_items: u32::MAX,
            ..RawSearchKey::default()
        };
        let mut args = Box::new(SearchArgs { key, buf: [0; SEARCH_BUF] });
        ioctl_ptr(fd.as_fd(), BTRFS_IOC_TREE_SEARCH, &mut *args)?;
        let found = args.key.nr_items;
        if found == 0 {
            return Ok(());
        }
        let mut at = 0usize;
        let mut last = None;
        for _ in 0..found {
            let b = &args.buf[..];
            let (Some(transid), Some(objectid), Some(offset), Some(item_type), Some(len)) =
                (le64(b, at), le64(b, at + 8), le64(b, at + 16), le32(b, at + 24), le32(b, at + 28))
            else {
                return Err(Errno::IO);
            };
            let start = at + HEADER_LEN;
            let data = b.get(start..start + len as usize).ok_or(Errno::IO)?;
            let key = ItemKey { transid, objectid, item_type, offset };
            f(key, data);
            last = Some(key);
            at = start + len as usize;
        }
        let Some(last) = last else { return Ok(()) };
        // The smallest key after the last one: (objectid, type, offset + 1)
        // with carries; the 136-bit key space is ordered lexicographically
        // and the type is a u8 in the kernel's key.
        let next_type = Some(last.item_type.saturating_add(1)).filter(|t| *t <= u32::from(u8::MAX));
        next = match (last.offset.checked_add(1), next_type, last.objectid.checked_add(1)) {
            (Some(o), _, _) => (last.objectid, last.item_type, o),
            (None, Some(t), _) => (last.objectid, t, 0),
            (None, None, Some(id)) => (id, 0, 0),
            (None, None, None) => return Ok(()),
        };
    }
}

/// `btrfs_inode_item.transid`: the transaction that last changed the inode.
pub fn inode_transid(item: &[u8]) -> Option<u64> {
    le64(item, 8)
}

/// The parts of a `struct btrfs_file_extent_item` that size a file's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileExtent {
    /// The transaction that wrote the extent.
    pub generation: u64,
    pub kind: FileExtentKind,
    /// Bytes of file data the item covers: `num_bytes` for regular and
    /// preallocated extents (0 for a hole: `disk_bytenr == 0`), the
    /// uncompressed length `ram_bytes` for inline ones.
    pub bytes: u64,
}

/// `BTRFS_FILE_EXTENT_{INLINE,REG,PREALLOC}` (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileExtentKind {
    Inline,
    Regular,
    Prealloc,
}

impl FileExtent {
    /// Parses the packed item: `generation` @0, `ram_bytes` @8, `type` @20,
    /// and for non-inline extents `disk_bytenr` @21 and `num_bytes` @45.
    pub fn parse(item: &[u8]) -> Option<FileExtent> {
        let generation = le64(item, 0)?;
        let kind = match item.get(20)? {
            0 => FileExtentKind::Inline,
            1 => FileExtentKind::Regular,
            2 => FileExtentKind::Prealloc,
            _ => return None,
        };
        let bytes = match kind {
            FileExtentKind::Inline => le64(item, 8)?,
            _ if le64(item, 21)? == 0 => 0,
            _ => le64(item, 45)?,
        };
        Some(FileExtent { generation, kind, bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_numbers_match_the_c_header() {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let got = (BTRFS_IOC_TREE_SEARCH as u32, BTRFS_IOC_GET_SUBVOL_INFO as u32);
        assert_eq!(got, (0xd000_9411, 0x81f8_943c));
    }

    fn extent(generation: u64, ram: u64, kind: u8, bytenr: u64, num: u64) -> Vec<u8> {
        let mut b = vec![0u8; 53];
        b[0..8].copy_from_slice(&generation.to_le_bytes());
        b[8..16].copy_from_slice(&ram.to_le_bytes());
        b[20] = kind;
        b[21..29].copy_from_slice(&bytenr.to_le_bytes());
        b[45..53].copy_from_slice(&num.to_le_bytes());
        b
    }

    #[test]
    fn file_extents_parse() {
        let reg = FileExtent::parse(&extent(9, 8192, 1, 1 << 20, 4096)).unwrap();
        assert_eq!(reg, FileExtent { generation: 9, kind: FileExtentKind::Regular, bytes: 4096 });
        let hole = FileExtent::parse(&extent(9, 8192, 1, 0, 4096)).unwrap();
        assert_eq!(hole.bytes, 0);
        let mut inline = extent(7, 11, 0, 0, 0);
        inline.truncate(21 + 11);
        assert_eq!(FileExtent::parse(&inline).unwrap().bytes, 11);
        assert_eq!(FileExtent::parse(&extent(1, 1, 3, 1, 1)), None, "unknown type");
        assert_eq!(FileExtent::parse(&[0u8; 10]), None, "short item");
    }
}
