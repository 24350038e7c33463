//! A loopback TCP proxy for network-fault tests: it forwards every connection made to its port
//! to a server's port, and on command (or when a trigger fires) cuts all connections, or stops
//! forwarding while keeping the sockets open (an unresponsive peer), or resumes.
//!
//! Triggers look at what the client sends (plain PostgreSQL protocol, so `sslmode=disable`): a
//! byte pattern such as a query's text, optionally only while a condition holds (e.g. "the
//! target has a rebuild journal", i.e. the rebuild is past its point of no return), and fire
//! after a given number of further bytes from the server on that connection. Plain std threads,
//! two per connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What a trigger does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Close every connection (both sides), as a network failure or a killed peer would.
    Cut,
    /// Stop forwarding in both directions, keeping every socket open, until
    /// [`Proxy::resume`].
    Stall,
}

/// A condition a trigger checks when its pattern is seen.
pub type When = Box<dyn Fn() -> bool + Send>;

/// Fires `action` once: after the client sent `pattern` (while `when` holds) and the server
/// then sent `after_bytes` more bytes on that connection.
pub struct Trigger {
    /// A name for [`Proxy::wait_fired`] and messages.
    pub name: &'static str,
    /// Bytes the client sends, e.g. a query's text.
    pub pattern: Vec<u8>,
    /// Only when this holds (checked when the pattern is seen).
    pub when: Option<When>,
    /// Server bytes to let through on that connection first.
    pub after_bytes: u64,
    /// What to do.
    pub action: Action,
}

struct Armed {
    conn: u64,
    remaining: u64,
    name: &'static str,
    action: Action,
}

#[derive(Default)]
struct State {
    stalled: bool,
    sockets: Vec<(u64, TcpStream)>,
    triggers: Vec<Trigger>,
    armed: Vec<Armed>,
    fired: Vec<&'static str>,
    connections: u64,
    shut: bool,
}

struct Shared {
    upstream: SocketAddr,
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fire(&self, st: &mut State, name: &'static str, action: Action) {
        eprintln!("proxy: trigger {name:?} fires: {action:?}");
        st.fired.push(name);
        match action {
            Action::Cut => {
                for (_, s) in st.sockets.drain(..) {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            Action::Stall => st.stalled = true,
        }
        self.changed.notify_all();
    }

    fn wait_forwarding(&self) {
        let mut st = self.lock();
        while st.stalled && !st.shut {
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// The proxy; dropping it closes everything.
pub struct Proxy {
    /// The port clients connect to (on 127.0.0.1).
    pub port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `127.0.0.1:upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream: SocketAddr::from(([127, 0, 0, 1], upstream_port)),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        std::thread::spawn(move || accept_loop(listener, s));
        Proxy { port, shared }
    }

    /// Adds a trigger.
    pub fn arm(&self, t: Trigger) {
        self.shared.lock().triggers.push(t);
    }

    /// Cuts every open connection now.
    pub fn cut_all(&self) {
        let mut st = self.shared.lock();
        self.shared.fire(&mut st, "cut_all", Action::Cut);
    }

    /// Stops forwarding now (sockets stay open).
    pub fn stall(&self) {
        let mut st = self.shared.lock();
        self.shared.fire(&mut st, "stall", Action::Stall);
    }

    /// Forwards again after a stall.
    pub fn resume(&self) {
        let mut st = self.shared.lock();
        st.stalled = false;
        self.shared.changed.notify_all();
    }

    /// Waits until the trigger `name` fired; false after `limit`.
    pub fn wait_fired(&self, name: &str, limit: Duration) -> bool {
        let t0 = Instant::now();
        let mut st = self.shared.lock();
        while !st.fired.contains(&name) {
            if t0.elapsed() > limit {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Whether the trigger `name` fired.
    pub fn fired(&self, name: &str) -> bool {
        self.shared.lock().fired.contains(&name)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.lock().connections
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.shut = true;
        st.stalled = false;
        for (_, s) in st.sockets.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.shared.changed.notify_all();
        drop(st);
        // Wake the accept loop so that it sees `shut`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let conn = {
            let mut st = shared.lock();
            if st.shut {
                return;
            }
            st.connections += 1;
            st.connections
        };
        let Ok(server) = TcpStream::connect(shared.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            continue;
        };
        {
            let mut st = shared.lock();
            st.sockets.push((conn, c3));
            st.sockets.push((conn, s3));
        }
        let a = shared.clone();
        std::thread::spawn(move || pump(a, conn, true, client, server));
        let b = shared.clone();
        std::thread::spawn(move || pump(b, conn, false, s2, c2));
    }
}

/// Forwards `from` → `to`; `upstream` says the direction (client → server).
fn pump(shared: Arc<Shared>, conn: u64, upstream: bool, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    // The end of the previous chunk, so that a pattern split across reads is still seen.
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let data = &buf[..n];
        let mut split: Option<(usize, &'static str, Action)> = None;
        {
            let mut st = shared.lock();
            if upstream {
                let mut window = std::mem::take(&mut tail);
                let old = window.len();
                window.extend_from_slice(data);
                let mut i = 0;
                while i < st.triggers.len() {
                    let t = &st.triggers[i];
                    // Only an occurrence that ends in the new bytes: one wholly in the tail
                    // was seen (and its `when` checked) with the read before.
                    let seen = window
                        .windows(t.pattern.len())
                        .enumerate()
                        .any(|(at, w)| w == t.pattern && at + w.len() > old);
                    if seen && t.when.as_ref().is_none_or(|w| w()) {
                        let t = st.triggers.remove(i);
                        eprintln!("proxy: pattern of trigger {:?} seen", t.name);
                        st.armed.push(Armed {
                            conn,
                            remaining: t.after_bytes,
                            name: t.name,
                            action: t.action,
                        });
                    } else {
                        i += 1;
                    }
                }
                let keep = window.len().min(256);
                tail = window.split_off(window.len() - keep);
                // A trigger with nothing to wait for fires before its query reaches the
                // server.
                if let Some(pos) = st
                    .armed
                    .iter()
                    .position(|a| a.conn == conn && a.remaining == 0)
                {
                    let a = st.armed.remove(pos);
                    split = Some((0, a.name, a.action));
                }
            } else if let Some(idx) = st.armed.iter().position(|a| a.conn == conn) {
                if (n as u64) >= st.armed[idx].remaining {
                    let a = st.armed.remove(idx);
                    split = Some((a.remaining as usize, a.name, a.action));
                } else {
                    st.armed[idx].remaining -= n as u64;
                }
            }
        }
        shared.wait_forwarding();
        let (now, rest) = match split {
            Some((at, _, _)) => data.split_at(at.min(n)),
            None => (data, &[][..]),
        };
        if to.write_all(now).is_err() {
            break;
        }
        if let Some((_, name, action)) = split {
            let mut st = shared.lock();
            shared.fire(&mut st, name, action);
            drop(st);
            if action == Action::Cut {
                break;
            }
            shared.wait_forwarding();
            if to.write_all(rest).is_err() {
                break;
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
