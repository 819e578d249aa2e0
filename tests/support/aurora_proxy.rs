//! [`AuroraProxy`]: a TCP proxy in front of a database that plays Aurora Serverless v2's
//! auto-pause and resume.
//!
//! A paused Aurora cluster (scaled to zero) has no open connections; a new connection is
//! accepted by the proxy fleet and held, without an answer, while the cluster resumes (~15 s,
//! ~30 s after a long pause), then served. [`AuroraProxy::pause`] does the same: existing
//! connections are dropped, and connections accepted while paused are held until the hold has
//! passed (or [`AuroraProxy::resume`]), then forwarded. Every accepted connection is counted.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, Default)]
struct State {
    /// Paused until then (`None`: serving).
    paused_until: Option<Instant>,
    /// Bumped at every pause: connections opened before it are dropped.
    epoch: u64,
}

struct Counters {
    accepted: AtomicUsize,
    accepted_at_pause: AtomicUsize,
    held: AtomicUsize,
    forwarded: AtomicUsize,
}

/// The proxy; stops when dropped. Must be started inside a Tokio runtime.
pub struct AuroraProxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for AuroraProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuroraProxy")
            .field("addr", &self.addr)
            .field("state", &*self.state.borrow())
            .field("accepted", &self.accepted())
            .finish_non_exhaustive()
    }
}

impl AuroraProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let (state, watcher) = watch::channel(State::default());
        let counters = Arc::new(Counters {
            accepted: AtomicUsize::new(0),
            accepted_at_pause: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
        });
        let task = tokio::spawn({
            let counters = Arc::clone(&counters);
            async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    counters.accepted.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(
                        client,
                        upstream,
                        watcher.clone(),
                        Arc::clone(&counters),
                    ));
                }
            }
        });
        Self {
            addr,
            state,
            counters,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Scales to zero: drops every open connection, then holds new ones for `hold` from now
    /// (without answering), then forwards them.
    pub fn pause(&self, hold: Duration) {
        self.counters
            .accepted_at_pause
            .store(self.accepted(), Ordering::SeqCst);
        self.counters.held.store(0, Ordering::SeqCst);
        self.state.send_modify(|s| {
            s.paused_until = Some(Instant::now() + hold);
            s.epoch += 1;
        });
    }

    /// Ends a pause now: held connections are forwarded.
    pub fn resume(&self) {
        self.state.send_modify(|s| s.paused_until = None);
    }

    /// When the current pause ends (`None`: not paused).
    pub fn paused_until(&self) -> Option<Instant> {
        self.state.borrow().paused_until
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted since the last [`pause`](Self::pause): the connection attempts a
    /// client made while the cluster was paused and resuming, and after.
    pub fn accepted_since_pause(&self) -> usize {
        self.accepted() - self.counters.accepted_at_pause.load(Ordering::SeqCst)
    }

    /// Connections held since the last pause (accepted while paused).
    pub fn held(&self) -> usize {
        self.counters.held.load(Ordering::SeqCst)
    }

    /// Connections forwarded to the database since the proxy started.
    pub fn forwarded(&self) -> usize {
        self.counters.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for AuroraProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Open connections end with their tasks when the state sender goes away.
    }
}

async fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut state: watch::Receiver<State>,
    counters: Arc<Counters>,
) {
    let epoch = state.borrow().epoch;
    // Held while paused: accepted, not answered, not read (what the client sent waits in the
    // socket buffer, and is forwarded once resumed).
    let mut counted = false;
    loop {
        let paused_until = state.borrow().paused_until;
        let Some(until) = paused_until.filter(|u| *u > Instant::now()) else {
            break;
        };
        if !counted {
            counters.held.fetch_add(1, Ordering::SeqCst);
            counted = true;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
    let epoch = if counted { state.borrow().epoch } else { epoch };
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    counters.forwarded.fetch_add(1, Ordering::SeqCst);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        // A pause drops the connection (both sockets close).
        _ = state.wait_for(|s| s.epoch != epoch) => {}
    }
}
