//! `strata exec` never hands the caller's descriptors to the container:
//! `-t` relays a pty made in the container's devpts, without `-t` the
//! process gets pipes (stdin only with `-i`, else `/dev/null`), always in
//! a session of its own; `-d` detaches; exit codes are relayed.
//!
//! The caller's terminal is a pty this test owns: strata runs with its
//! slave as stdin, stdout and stderr, and the test reads the master.

use crate::Host;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata::scratch::FsKind;
use strata::sys::term::{openpty, tcgetattr, tcsetwinsize, Winsize};

/// A pty the test owns, its output collected by a thread reading the
/// master (which ends once every slave is closed: strata exited and the
/// test dropped its own copy).
struct Pty {
    master: std::fs::File,
    slave: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn new(rows: u16, cols: u16) -> Pty {
        let (master, slave) = openpty().expect("openpty");
        tcsetwinsize(&master, Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }).unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(master.try_clone().unwrap());
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty { master: std::fs::File::from(master), slave, output }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `needle`; panics with what it has
    /// after 20 s.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "no {needle:?} on the pty; it shows {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether input is waiting on the slave, for whoever reads our
    /// terminal next (a line, in canonical mode).
    fn pending_input(&self) -> bool {
        let mut fds = [strata::sys::event::PollFd::new(&self.slave, strata::sys::event::PollFlags::IN)];
        strata::sys::event::poll(&mut fds, Some(Duration::from_millis(300))).unwrap() > 0
    }

    fn canonical(&self) -> bool {
        tcgetattr(&self.slave).unwrap().local_modes.contains(rustix::termios::LocalModes::ICANON)
    }
}

/// A strata process killed and reaped on the way out, whatever happened.
struct Strata(Child);

impl Strata {
    fn wait(&mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "strata exec did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Strata {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn strata(host: &Host, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strata"));
    cmd.arg("--root").arg(&host.env.root).arg("--storage-driver").arg(host.env.driver).args(args);
    cmd
}

/// `strata ARGS` with the pty as its stdin, stdout and stderr.
fn on_pty(host: &Host, pty: &Pty, args: &[&str]) -> Strata {
    let io = || Stdio::from(pty.slave.try_clone().unwrap());
    Strata(strata(host, args).stdin(io()).stdout(io()).stderr(io()).spawn().expect("spawn strata"))
}

/// `strata ARGS` with `input` on a pipe as stdin: (code, stdout).
fn with_input(host: &Host, args: &[&str], input: &[u8]) -> (i32, String) {
    let child = strata(host, args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let mut child = Strata(child.expect("spawn strata"));
    // A process that never reads stdin may be gone before we write.
    let _ = child.0.stdin.take().unwrap().write_all(input);
    let code = child.wait();
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.0.stdout.take().unwrap(), &mut out).unwrap();
    (code, out)
}

/// A running container `c` with the TIOCSTI probe at `/probe`.
fn container(host: &Host) {
    host.env.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "600"]);
    let probe = host.env.scratch("probe");
    build_probe(&probe);
    host.env.ok(&["cp", probe.to_str().unwrap(), "c:/probe"]);
}

/// A static program that pushes `echo INJECTED` + newline into the input
/// of the terminal on its stdin with `TIOCSTI`, one byte per ioctl, and
/// reports how many it pushed and the last errno.
fn build_probe(out: &std::path::Path) {
    const SOURCE: &str = r#"
extern "C" { fn ioctl(fd: i32, request: u64, ...) -> i32; }
const TIOCSTI: u64 = 0x5412;
fn main() {
    let (mut pushed, mut errno) = (0, 0);
    for b in b"echo INJECTED\n" {
        // SAFETY: TIOCSTI reads one byte through the pointer, which is valid.
        if unsafe { ioctl(0, TIOCSTI, b as *const u8) } == 0 {
            pushed += 1;
        } else {
            errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
        }
    }
    println!("tiocsti pushed={pushed} errno={errno}");
}
"#;
    let src = out.with_extension("rs");
    std::fs::write(&src, SOURCE).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = Command::new(rustc)
        .args(["-O", "-C", "target-feature=+crt-static", "-o"])
        .arg(out)
        .arg(&src)
        .output()
        .expect("run rustc");
    assert!(built.status.success(), "build the probe: {}", String::from_utf8_lossy(&built.stderr));
}

#[test]
fn exec_tty_is_a_pty_in_the_container_and_cannot_inject_into_ours() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    container(&host);

    // The pty is the container's: its devpts (same st_dev as the
    // container's /dev/pts), our window size, a session of its own with it
    // as controlling terminal.
    let pty = Pty::new(33, 77);
    let script = "tty; echo dev=$(stat -L -c %d /proc/self/fd/0) pts=$(stat -c %d /dev/pts); stty size; \
                  echo ctty=$(cut -d' ' -f7 /proc/self/stat) sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$";
    let mut s = on_pty(&host, &pty, &["exec", "-t", "c", "sh", "-c", script]);
    assert_eq!(s.wait(), 0);
    let text = pty.wait_for("pid=");
    assert!(text.contains("/dev/pts/"), "{text:?}");
    let field = |name: &str| {
        let start = text.find(&format!("{name}=")).unwrap_or_else(|| panic!("no {name}= in {text:?}")) + name.len() + 1;
        text[start..].split_whitespace().next().unwrap().to_owned()
    };
    assert_eq!(field("dev"), field("pts"), "stdin is a pty of the container's devpts: {text:?}");
    assert!(text.contains("33 77"), "our window size: {text:?}");
    assert_ne!(field("ctty"), "0", "the pty is its controlling terminal: {text:?}");
    assert_eq!(field("sid"), field("pid"), "a session of its own: {text:?}");
    drop(s);

    // TIOCSTI from inside works on the container's own pty, and so never
    // reaches ours: nothing waits on our terminal's input afterwards.
    let pty = Pty::new(24, 80);
    let mut s = on_pty(&host, &pty, &["exec", "-t", "c", "/probe"]);
    assert_eq!(s.wait(), 0);
    let text = pty.wait_for("tiocsti");
    assert!(text.contains("pushed=14"), "the probe pushed into its own pty: {text:?}");
    assert!(!pty.pending_input(), "input injected into the caller's terminal");
}

#[test]
fn exec_it_relays_input_in_raw_mode_follows_the_size_and_restores_the_terminal() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    host.env.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "600"]);
    let pty = Pty::new(33, 77);
    assert!(pty.canonical());
    let script = "echo ready; read x; echo got-$x; \
                  i=0; while [ $i -lt 100 ]; do echo size=$(stty size | tr ' ' x); sleep 0.1; i=$((i+1)); done";
    let mut s = on_pty(&host, &pty, &["exec", "-it", "c", "sh", "-c", script]);
    pty.wait_for("ready");
    assert!(!pty.canonical(), "our terminal is raw while the relay lasts");
    (&pty.master).write_all(b"abc\r").unwrap();
    pty.wait_for("got-abc");
    pty.wait_for("size=33x77");
    tcsetwinsize(&pty.master, Winsize { ws_row: 40, ws_col: 100, ws_xpixel: 0, ws_ypixel: 0 }).unwrap();
    // Our pty is no one's controlling terminal, so the kernel signals no
    // one: send strata the SIGWINCH a terminal would.
    let pid = i32::try_from(s.0.id()).unwrap();
    strata::sys::signal::kill(pid, strata::sys::signal::Signal::SIGWINCH).unwrap();
    pty.wait_for("size=40x100");
    // ^C goes to the container's pty as a byte; its line discipline ends
    // the shell, strata reports 130.
    (&pty.master).write_all(&[3]).unwrap();
    assert_eq!(s.wait(), 130, "{}", pty.text());
    assert!(pty.canonical(), "our terminal is restored at the end");
}

#[test]
fn exec_without_tty_gets_pipes_and_dev_null_never_our_terminal() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    host.env.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "600"]);

    let pty = Pty::new(24, 80);
    // The shell's own descriptors ($$: the exec'd process itself).
    let script = "for fd in 0 1 2; do echo fd$fd=$(readlink /proc/$$/fd/$fd); done; \
                  echo ctty=$(cut -d' ' -f7 /proc/self/stat) done";
    let mut s = on_pty(&host, &pty, &["exec", "c", "sh", "-c", script]);
    assert_eq!(s.wait(), 0);
    let text = pty.wait_for("done");
    assert!(text.contains("fd0=/dev/null"), "{text:?}");
    assert!(text.contains("fd1=pipe:"), "{text:?}");
    assert!(text.contains("fd2=pipe:"), "{text:?}");
    assert!(!text.contains("pts") && !text.contains("ptmx"), "our terminal reached the container: {text:?}");
    assert!(text.contains("ctty=0 "), "no controlling terminal: {text:?}");
    drop(s);

    // -i: stdin relayed and closed at our end of file; without it,
    // /dev/null.
    assert_eq!(with_input(&host, &["exec", "-i", "c", "cat"], b"hi\n"), (0, "hi\n".into()));
    let (_, fd0) = with_input(&host, &["exec", "-i", "c", "readlink", "/proc/self/fd/0"], b"");
    assert!(fd0.starts_with("pipe:"), "{fd0:?}");
    assert_eq!(with_input(&host, &["exec", "c", "cat"], b"hi\n"), (0, String::new()));
    // -it with a stdin that is no terminal is refused, as Docker does.
    let (code, _) = with_input(&host, &["exec", "-it", "c", "true"], b"");
    assert_ne!(code, 0);
}

#[test]
fn exec_detach_env_workdir_user_and_exit_codes() {
    let Some(host) = Host::new(FsKind::Ext4, "overlay") else { return };
    let env = &host.env;
    env.ok(&["run", "-d", "--name", "c", "busybox", "sleep", "600"]);

    let started = Instant::now();
    env.ok(&["exec", "-d", "c", "sh", "-c", "echo started > /tmp/d; exec sleep 31"]);
    assert!(started.elapsed() < Duration::from_secs(10), "exec -d waited for the process");
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.run(&["exec", "c", "cat", "/tmp/d"]).stdout != b"started\n" {
        assert!(Instant::now() < deadline, "the detached process never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(env.ok(&["exec", "c", "ps"]).contains("sleep 31"), "the detached process keeps running");

    let out = env.ok(&["exec", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "c", "sh", "-c", "echo $A $(pwd) $(id -u)"]);
    assert_eq!(out, "1 /tmp 65534\n");

    assert_eq!(env.run(&["exec", "c", "sh", "-c", "exit 7"]).status.code(), Some(7));
    let out = env.run(&["exec", "c", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.run(&["exec", "c", "/no/such/binary"]);
    assert_eq!(out.status.code(), Some(127), "{}", String::from_utf8_lossy(&out.stderr));
}
