//! The OCI runtime as the daemons of a real host drive it: containerd (`ctr`
//! through the `io.containerd.runc.v2` shim), podman (through conmon) and
//! Docker (dockerd, its own containerd and the same shim).
//!
//! The runtime under test is `strata-runc` unless `STRATA_TEST_RUNTIME`
//! names another binary (`/usr/sbin/runc`, `/usr/bin/crun`): the same tests
//! run against the reference, which is how they were checked (crun needs
//! `STRATA_TEST_UNMOUNT_CGROUP2=1` on a hybrid cgroup host: it refuses a
//! cgroup2 mount with controllers beside v1, so the daemons' namespaces
//! then unmount `/sys/fs/cgroup/unified`). Each test
//! starts its own daemon on its own sockets and directories under a
//! tempdir, in a private mount namespace with its own `/run` where the
//! daemon allows (see `daemon`), and tears everything down in `Drop`, even
//! when an assertion fails. A test whose daemon is not installed says so
//! and returns; under `STRATA_TEST_STRICT` that is a failure.
//!
//! The daemons call the runtime through a two-line shell wrapper that logs
//! each command line before it execs the runtime, so a test can show that
//! its operation (pause, exec, kill…) reached the runtime under test and was
//! not served by some default `runc`.

mod containerd;
mod daemon;
mod docker;
mod podman;
