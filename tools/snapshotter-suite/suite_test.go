// Package snapshottersuite runs containerd's own snapshotter conformance
// suite (snapshots/testsuite, from Debian's
// golang-github-containerd-containerd-dev) through containerd's proxy
// client (snapshots/proxy) against `strata snapshotter serve`.
//
// Built in GOPATH mode from Debian's packages only (no modules, no vendored
// code): tests/snapshotter (Rust) compiles it with
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go test -c
//
// and runs it once per driver with STRATA_BIN (the strata binary),
// STRATA_DRIVER (overlay, copy, btrfs) and TMPDIR (a scratch filesystem of
// the kind under test: the suite makes every check's directories there).
//
// Every check of the suite gets its own server over its own data root,
// as every check of strata's own suite gets a fresh root. A server dies
// with this process (PR_SET_PDEATHSIG) even if the test is killed.
package snapshottersuite

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

func TestStrataSnapshotter(t *testing.T) {
	bin, driver := os.Getenv("STRATA_BIN"), os.Getenv("STRATA_DRIVER")
	if bin == "" || driver == "" {
		t.Fatal("STRATA_BIN and STRATA_DRIVER must be set (tests/snapshotter sets them)")
	}
	testsuite.SnapshotterSuite(t, "strata-"+driver, func(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
		return start(bin, driver, root)
	})
}

// start runs a server over data root `root` and connects containerd's
// proxy client to it. The returned function stops both.
func start(bin, driver, root string) (snapshots.Snapshotter, func() error, error) {
	// A unix socket path must fit in sun_path (108 bytes); the suite's
	// roots, under a scratch mount, are longer.
	sockDir, err := os.MkdirTemp("/tmp", "strata-suite-")
	if err != nil {
		return nil, nil, err
	}
	sock := filepath.Join(sockDir, "snapshotter.sock")
	logPath := filepath.Join(filepath.Dir(root), "snapshotter.log")
	log, err := os.Create(logPath)
	if err != nil {
		os.RemoveAll(sockDir)
		return nil, nil, err
	}
	defer log.Close()
	cmd := exec.Command(bin, "--root", root, "snapshotter", "serve", "--address", sock, "-s", driver)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(sockDir)
		return nil, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() error {
		defer os.RemoveAll(sockDir)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("strata snapshotter serve: %v; its log:\n%s", err, tail(logPath))
			}
			return nil
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("strata snapshotter serve ignored SIGTERM for 20s; its log:\n%s", tail(logPath))
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		select {
		case err := <-exited:
			exited <- err
			return nil, nil, fmt.Errorf("strata snapshotter serve exited before listening (%v); its log:\n%s", err, tail(logPath))
		default:
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("%s did not appear in 20s; log:\n%s", sock, tail(logPath))
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.Dial("passthrough:///strata",
		grpc.WithInsecure(),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}))
	if err != nil {
		stop()
		return nil, nil, err
	}
	sn := proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), "strata")
	return sn, func() error {
		cerr := conn.Close()
		if err := stop(); err != nil {
			return err
		}
		return cerr
	}, nil
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
