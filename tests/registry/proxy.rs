//! A fault-injecting proxy in front of the real registry: a std
//! `TcpListener` thread that forwards each request on a fresh upstream
//! connection (`Connection: close`), reads the whole response, and — for
//! requests whose path contains a chosen pattern — corrupts its body,
//! cuts it short, or answers 500 instead. Request bodies are forwarded
//! when they have a Content-Length (strata always sends one).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Flip one byte in the middle of the body.
    Corrupt,
    /// Send the headers and half the body, then close.
    Truncate,
    /// Answer `500 Internal Server Error`.
    Error500,
}

pub struct Proxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    /// Faults injected so far.
    pub injected: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn read_head(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).ok()? == 0 {
            return None;
        }
        // A TLS ClientHello (strata tries HTTPS first): refuse it at once,
        // as a plain-HTTP server's error answer would.
        if head.is_empty() && b[0] == 0x16 {
            return None;
        }
        head.push(b[0]);
    }
    Some(head)
}

impl Proxy {
    /// Forwards to `127.0.0.1:<upstream>`; requests whose first line
    /// contains `pattern` get `fault`, the first `times` of them.
    pub fn start(upstream: u16, pattern: &str, fault: Fault, times: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let injected = Arc::new(AtomicUsize::new(0));
        let (stop2, injected2, pattern) = (stop.clone(), injected.clone(), pattern.to_owned());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let mut client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                let Some(head) = read_head(&mut client) else { continue };
                let text = String::from_utf8_lossy(&head).into_owned();
                let first = text.lines().next().unwrap_or("").to_owned();
                let hit = first.contains(&pattern) && injected2.load(Ordering::SeqCst) < times;
                if hit && fault == Fault::Error500 {
                    // The request body is never read: the connection closes.
                    injected2.fetch_add(1, Ordering::SeqCst);
                    let _ = client.write_all(
                        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    continue;
                }
                // Forward with Connection: close, so the response ends at EOF.
                let mut req = String::new();
                for line in text.split("\r\n").filter(|l| !l.is_empty()) {
                    if !line.to_ascii_lowercase().starts_with("connection:") {
                        req.push_str(line);
                        req.push_str("\r\n");
                    }
                }
                req.push_str("Connection: close\r\n\r\n");
                let body_len = text
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let mut body = Vec::new();
                if (&mut client).take(body_len).read_to_end(&mut body).is_err() {
                    continue;
                }
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else { continue };
                let _ = up.write_all(req.as_bytes()).and_then(|()| up.write_all(&body));
                let mut resp = Vec::new();
                let _ = up.read_to_end(&mut resp);
                let body_at = resp.windows(4).position(|w| w == b"\r\n\r\n").map_or(resp.len(), |p| p + 4);
                let body_len = resp.len() - body_at;
                if hit && body_len > 1 {
                    injected2.fetch_add(1, Ordering::SeqCst);
                    match fault {
                        Fault::Corrupt => resp[body_at + body_len / 2] ^= 0xff,
                        Fault::Truncate => resp.truncate(body_at + body_len / 2),
                        Fault::Error500 => unreachable!(),
                    }
                }
                let _ = client.write_all(&resp);
                let _ = client.shutdown(Shutdown::Both);
            }
        });
        Proxy { port, stop, injected, thread: Some(thread) }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
