//! Namespaces: created, inherited, joined by path; user namespaces with
//! ID mappings.

use crate::runner::NetNs;
use crate::{compare, Case, Compared};
use std::os::unix::fs::MetadataExt;
use strata::runtime::spec::{IdMapping, Namespace, NamespaceType};

fn ns(kind: NamespaceType) -> Namespace {
    Namespace { kind, path: String::new() }
}

#[test]
fn new_cgroup_namespace() {
    let case =
        Case::new("cgroupns").edit(|spec, _| spec.linux.as_mut().unwrap().namespaces.push(ns(NamespaceType::Cgroup)));
    let Some(Compared { want, .. }) = compare(case) else { return };
    let namespaces = want.observed.section("ns");
    for kind in ["cgroup", "ipc", "mnt", "net", "pid", "uts"] {
        assert!(namespaces.contains(&format!("{kind} new").as_str()), "{kind}: {namespaces:?}");
    }
    assert!(want.observed.section("cgroup").iter().all(|l| l.ends_with(":/")), "{:?}", want.observed.section("cgroup"));
}

#[test]
fn inherited_namespaces() {
    let case = Case::new("inherit").edit(|spec, _| {
        spec.linux.as_mut().unwrap().namespaces.retain(|n| !matches!(n.kind, NamespaceType::Ipc | NamespaceType::Uts));
        // A hostname needs a UTS namespace of its own.
        spec.hostname.clear();
    });
    let Some(Compared { want, .. }) = compare(case) else { return };
    let namespaces = want.observed.section("ns");
    assert!(namespaces.contains(&"ipc host") && namespaces.contains(&"uts host"), "{namespaces:?}");
}

#[test]
fn join_network_namespace_by_path() {
    let netns = NetNs::new("join");
    // A veth pair only this namespace has.
    let st = std::process::Command::new("ip")
        .args(["netns", "exec", &netns.name, "ip", "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"])
        .status()
        .expect("ip link add");
    assert!(st.success(), "ip link add veth in {}", netns.name);
    let path = netns.path();
    let ino = std::fs::metadata(&path).expect("stat netns").ino();
    let case = Case::new("joinnet")
        .edit(move |spec, _| {
            let linux = spec.linux.as_mut().unwrap();
            linux.namespaces.retain(|n| n.kind != NamespaceType::Network);
            linux.namespaces.push(Namespace { kind: NamespaceType::Network, path: path.clone() });
        })
        .join_ns(format!("net:[{ino}]"))
        .extra("ip -o link show | cut -d: -f2 | cut -d@ -f1 | sort");
    let Some(Compared { want, .. }) = compare(case) else { return };
    assert!(want.observed.section("ns").contains(&"net joined"), "{:?}", want.observed.section("ns"));
    assert_eq!(want.observed.section("extra"), ["lo", "probe0", "probe1"]);
}

#[test]
fn user_namespace_with_mappings() {
    let case = Case::new("userns")
        .edit(|spec, _| {
            let linux = spec.linux.as_mut().unwrap();
            linux.namespaces.push(ns(NamespaceType::User));
            linux.uid_mappings = vec![IdMapping { container_id: 0, host_id: 100_000, size: 65_536 }];
            linux.gid_mappings = vec![IdMapping { container_id: 0, host_id: 200_000, size: 65_536 }];
        })
        .extra("stat -c '%u %g' /bin/busybox; touch /dev/shm/f && stat -c '%u %g' /dev/shm/f");
    let Some(Compared { want, .. }) = compare(case) else { return };
    assert!(want.observed.section("ns").contains(&"user new"));
    assert_eq!(want.observed.section("idmap"), ["0 100000 65536", "0 200000 65536"]);
    // Host root's files are unmapped in the container: the overflow IDs.
    assert_eq!(want.observed.section("extra"), ["65534 65534", "0 0"]);
}
