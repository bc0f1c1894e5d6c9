//! A hostile container process for `host_cp`: swaps entries under names
//! the host is copying, as fast as it can, forever.
//!
//! * `racer symlink DIR NAME TARGET`: puts a symlink to `TARGET` at
//!   `DIR/NAME` again and again (built aside, renamed over whatever is
//!   there), so a host that creates `NAME` and then changes its mode by
//!   path meets the symlink.
//! * `racer fifo DIR N`: each of `DIR/f0` … `DIR/f<N-1>` turns from a
//!   regular file into a FIFO and back, by rename, so a host that lists a
//!   file and then opens it by name may open a FIFO with no writer.
//!
//! std only, built static like the probe.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

extern "C" {
    fn mkfifo(path: *const std::os::raw::c_char, mode: u32) -> i32;
}

fn fifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    unsafe { mkfifo(c.as_ptr(), 0o644) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("racer: started");
    match args.get(1).map(String::as_str) {
        Some("symlink") => {
            let dir = Path::new(&args[2]);
            let (name, target) = (dir.join(&args[3]), &args[4]);
            let tmp = dir.join(".racer-tmp");
            loop {
                let _ = std::os::unix::fs::symlink(target, &tmp);
                let _ = std::fs::rename(&tmp, &name);
            }
        }
        Some("fifo") => {
            let dir = Path::new(&args[2]);
            let n: usize = args[3].parse().unwrap();
            let (file, pipe) = (dir.join(".racer-file"), dir.join(".racer-fifo"));
            loop {
                for i in 0..n {
                    let name = dir.join(format!("f{i}"));
                    let _ = std::fs::write(&file, [b'x'; 4096]);
                    let _ = std::fs::rename(&file, &name);
                    fifo(&pipe);
                    let _ = std::fs::rename(&pipe, &name);
                }
            }
        }
        _ => {
            eprintln!("usage: racer symlink DIR NAME TARGET | racer fifo DIR N");
            std::process::exit(2);
        }
    }
}
