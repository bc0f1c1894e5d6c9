//! Docker-style progress output for pull and push: one line per layer
//! (`a1b2c3d4e5f6: Pull complete`). On a terminal the lines are redrawn in
//! place with a bar (`Downloading [====>      ]  12.3MB/45.6MB`); otherwise
//! each status change is printed once, as `docker pull` does into a pipe.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Redraws of byte counts at most this often (status changes redraw at once).
const REDRAW: Duration = Duration::from_millis(100);

#[derive(Debug, Default)]
struct Line {
    id: String,
    status: String,
    bytes: Option<(u64, u64)>,
}

#[derive(Debug)]
struct State {
    lines: Vec<Line>,
    drawn: usize,
    last: Option<Instant>,
}

/// Where pull/push report, shared by their worker threads.
#[derive(Debug)]
pub struct Progress {
    tty: bool,
    quiet: bool,
    state: Mutex<State>,
}

/// `1.5MB`, `12.3kB`: Docker's decimal units.
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else {
        format!("{v:.1}{}", units[u])
    }
}

/// Docker's 50-column bar: `[=====>     ]  1.2MB/3.4MB`.
pub fn bar(current: u64, total: u64) -> String {
    const WIDTH: usize = 50;
    let filled = (current.min(total) as u128 * WIDTH as u128).checked_div(total as u128).unwrap_or(0);
    let filled = usize::try_from(filled).unwrap_or(WIDTH);
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled.saturating_sub(1)));
    if filled > 0 {
        s.push('>');
    }
    s.push_str(&" ".repeat(WIDTH - filled));
    s.push_str(&format!("]  {}/{}", human(current), human(total)));
    s
}

impl Progress {
    /// Output on stdout; bars when it is a terminal.
    pub fn stdout(quiet: bool) -> Progress {
        let tty = crate::sys::term::isatty(std::io::stdout());
        Progress::new(tty, quiet)
    }

    pub fn new(tty: bool, quiet: bool) -> Progress {
        Progress { tty, quiet, state: Mutex::new(State { lines: Vec::new(), drawn: 0, last: None }) }
    }

    /// A line outside the per-layer block (headers, summaries).
    pub fn message(&self, text: &str) {
        if self.quiet {
            return;
        }
        let mut st = self.state.lock().expect("no panics while held");
        if self.tty {
            // Messages go below the block; the block starts anew after.
            self.redraw(&mut st);
            st.lines.clear();
            st.drawn = 0;
        }
        println!("{text}");
    }

    /// Sets layer `id`'s status (`Pull complete`), printing it.
    pub fn status(&self, id: &str, status: &str) {
        if self.quiet {
            return;
        }
        let mut st = self.state.lock().expect("no panics while held");
        let line = Self::line(&mut st, id);
        line.status = status.to_owned();
        line.bytes = None;
        if self.tty {
            self.redraw(&mut st);
        } else {
            println!("{id}: {status}");
        }
    }

    /// Byte progress of layer `id` (`Downloading`, `Pushing`): drawn as a
    /// bar on a terminal, silent otherwise.
    pub fn bytes(&self, id: &str, status: &str, current: u64, total: u64) {
        if self.quiet || !self.tty {
            return;
        }
        let mut st = self.state.lock().expect("no panics while held");
        let line = Self::line(&mut st, id);
        // Called for every read of a download: allocate only on a change.
        if line.status != status {
            line.status = status.to_owned();
        }
        line.bytes = Some((current, total));
        let due = st.last.map_or(true, |t| t.elapsed() >= REDRAW) || current == total;
        if due {
            self.redraw(&mut st);
        }
    }

    fn line<'s>(st: &'s mut State, id: &str) -> &'s mut Line {
        let i = match st.lines.iter().position(|l| l.id == id) {
            Some(i) => i,
            None => {
                st.lines.push(Line { id: id.to_owned(), ..Line::default() });
                st.lines.len() - 1
            }
        };
        &mut st.lines[i]
    }

    fn redraw(&self, st: &mut State) {
        let mut out = std::io::stdout().lock();
        let mut s = String::new();
        if st.drawn > 0 {
            s.push_str(&format!("\x1b[{}A", st.drawn));
        }
        for l in &st.lines {
            s.push_str("\x1b[2K");
            match l.bytes {
                Some((c, t)) => s.push_str(&format!("{}: {} {}\n", l.id, l.status, bar(c, t))),
                None => s.push_str(&format!("{}: {}\n", l.id, l.status)),
            }
        }
        let _ = out.write_all(s.as_bytes());
        let _ = out.flush();
        st.drawn = st.lines.len();
        st.last = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bars_like_docker() {
        assert_eq!(human(999), "999B");
        assert_eq!(human(1500), "1.5kB");
        assert_eq!(human(45_600_000), "45.6MB");
        assert_eq!(bar(0, 100), format!("[{}]  0B/100B", " ".repeat(50)));
        assert_eq!(bar(50, 100), format!("[{}>{}]  50B/100B", "=".repeat(24), " ".repeat(25)));
        assert_eq!(bar(100, 100), format!("[{}>]  100B/100B", "=".repeat(49)));
        assert!(!bar(5, 0).contains('>'), "an unknown total draws an empty bar");
    }
}
