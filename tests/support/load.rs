//! [`Load`]: a steady stream of requests from N concurrent workers, every result recorded with
//! its time and class, so a resilience test can count failures per phase and measure recovery.
//!
//! The load is generic: each worker calls an async operation (an HTTP request to a service, a
//! statement on a pool) that says what kind of request it was (`"read"`, `"write"`) and how it
//! ended ([`Outcome`]).
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use apprunner_kit_tests::load::{Class, Load, Outcome};
//!
//! let load = Load::start(4, Duration::from_millis(10), |worker, _seq| async move {
//!     let kind = if worker == 0 { "write" } else { "read" };
//!     (kind, Outcome::new(Class::Ok, ""))
//! });
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! let report = load.stop().await;
//! assert_eq!(report.failed(None), 0);
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// It succeeded.
    Ok,
    /// The database was unavailable: HTTP 503 with `Retry-After`, or an error
    /// `apprunner::db::is_unavailable` accepts.
    Unavailable,
    /// HTTP 500, or a database error that is not "unavailable".
    Internal,
    /// Anything else: another status, a 503 without `Retry-After`, a connection error, a
    /// client-side timeout.
    Other,
}

impl Class {
    /// The class of an HTTP answer: `ok_status` is the success status of the route.
    pub fn from_http(status: u16, ok_status: u16, has_retry_after: bool) -> Self {
        match status {
            s if s == ok_status => Class::Ok,
            503 if has_retry_after => Class::Unavailable,
            500 => Class::Internal,
            _ => Class::Other,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Class::Ok => "ok",
            Class::Unavailable => "unavailable",
            Class::Internal => "internal",
            Class::Other => "other",
        })
    }
}

/// What an operation reports.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Its class.
    pub class: Class,
    /// A short description (status and body, the error), kept for failure messages.
    pub detail: String,
}

impl Outcome {
    /// An outcome.
    pub fn new(class: Class, detail: impl Into<String>) -> Self {
        Self {
            class,
            detail: detail.into(),
        }
    }
}

/// One request as recorded.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The worker that sent it.
    pub worker: usize,
    /// Its kind, as the operation said (`"read"`, `"write"`, …).
    pub kind: &'static str,
    /// When it was sent.
    pub start: Instant,
    /// When it ended.
    pub end: Instant,
    /// How it ended.
    pub class: Class,
    /// The operation's description.
    pub detail: String,
}

impl Sample {
    /// How long it took.
    pub fn latency(&self) -> Duration {
        self.end - self.start
    }
}

struct Shared {
    samples: Mutex<Vec<Sample>>,
    stop: AtomicBool,
    in_flight: AtomicU64,
}

/// Workers sending requests until [`stop`](Self::stop). Must be started inside a Tokio runtime.
pub struct Load {
    shared: Arc<Shared>,
    hold: watch::Sender<bool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
    started: Instant,
}

impl fmt::Debug for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("workers", &self.workers.len())
            .field("samples", &lock(&self.shared.samples).len())
            .finish_non_exhaustive()
    }
}

impl Load {
    /// Starts `workers` workers; each calls `op(worker, seq)`, records the result, waits `pace`,
    /// and again, until stopped.
    pub fn start<F, Fut>(workers: usize, pace: Duration, op: F) -> Self
    where
        F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = (&'static str, Outcome)> + Send + 'static,
    {
        let shared = Arc::new(Shared {
            samples: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
        });
        let (hold, held) = watch::channel(false);
        let op = Arc::new(op);
        let handles = (0..workers)
            .map(|worker| {
                let shared = Arc::clone(&shared);
                let op = Arc::clone(&op);
                let mut held = held.clone();
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    while !shared.stop.load(Ordering::SeqCst) {
                        // Held: wait (not in flight) until released or stopped.
                        if *held.borrow() {
                            let _ = held.wait_for(|h| !*h).await;
                            continue;
                        }
                        shared.in_flight.fetch_add(1, Ordering::SeqCst);
                        let start = Instant::now();
                        let (kind, outcome) = op(worker, seq).await;
                        let end = Instant::now();
                        lock(&shared.samples).push(Sample {
                            worker,
                            kind,
                            start,
                            end,
                            class: outcome.class,
                            detail: outcome.detail,
                        });
                        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                        seq += 1;
                        tokio::time::sleep(pace).await;
                    }
                })
            })
            .collect();
        Self {
            shared,
            hold,
            workers: handles,
            started: Instant::now(),
        }
    }

    /// Every result so far.
    pub fn samples(&self) -> Vec<Sample> {
        lock(&self.shared.samples).clone()
    }

    /// Results so far, as a report.
    pub fn report(&self) -> Report {
        Report {
            samples: self.samples(),
            started: self.started,
            stopped: Instant::now(),
        }
    }

    /// Waits until `n` requests of `kind` (any kind: `None`) that started at or after `since`
    /// succeeded; false if that did not happen within `timeout` (the caller's assertions on
    /// the report then say what failed).
    pub async fn wait_for_ok(
        &self,
        kind: Option<&str>,
        since: Instant,
        n: usize,
        timeout: Duration,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = lock(&self.shared.samples)
                .iter()
                .filter(|s| s.class == Class::Ok && s.start >= since)
                .filter(|s| kind.is_none_or(|k| s.kind == k))
                .count();
            if ok >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets the workers finish their request in flight and hold (send nothing) until
    /// [`release`](Self::release); returns once none is in flight. For events that must
    /// happen while nothing runs (Aurora pauses only an idle cluster).
    pub async fn hold(&self) {
        self.hold.send_replace(true);
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Ends a [`hold`](Self::hold).
    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// Stops the workers (each finishes its request in flight) and returns every result.
    pub async fn stop(self) -> Report {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.hold.send_replace(false);
        for worker in self.workers {
            let _ = worker.await;
        }
        Report {
            samples: lock(&self.shared.samples).clone(),
            started: self.started,
            stopped: Instant::now(),
        }
    }
}

/// What a load saw.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every request, in the order they ended.
    pub samples: Vec<Sample>,
    /// When the load started.
    pub started: Instant,
    /// When it stopped.
    pub stopped: Instant,
}

/// Recovery figures around an event (see [`Report::recovery`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct Recovery {
    /// From the end of the last failed request to the end of the first success after it
    /// (`None`: nothing failed).
    pub last_failure_to_success: Option<Duration>,
    /// From the moment the database was back to the end of the first success among requests
    /// started after the event (`None`: none succeeded after it was back).
    pub back_to_success: Option<Duration>,
    /// From the event to the end of the first success among requests started after it.
    pub event_to_success: Option<Duration>,
    /// The longest a request took.
    pub max_latency: Duration,
}

impl fmt::Display for Recovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{}ms", d.as_millis()));
        write!(
            f,
            "last_failure->ok={} db_back->ok={} event->ok={} max_latency={}ms",
            ms(self.last_failure_to_success),
            ms(self.back_to_success),
            ms(self.event_to_success),
            self.max_latency.as_millis()
        )
    }
}

impl Report {
    /// The requests of `kind` (all: `None`).
    pub fn of_kind(&self, kind: Option<&str>) -> Report {
        Report {
            samples: self
                .samples
                .iter()
                .filter(|s| kind.is_none_or(|k| s.kind == k))
                .cloned()
                .collect(),
            started: self.started,
            stopped: self.stopped,
        }
    }

    /// The requests that ended in `[from, to)`: a phase of a scenario (a request in flight
    /// when an event happened belongs to the phase in which it ended).
    pub fn ended_between(&self, from: Instant, to: Instant) -> Report {
        Report {
            samples: self
                .samples
                .iter()
                .filter(|s| s.end >= from && s.end < to)
                .cloned()
                .collect(),
            started: from,
            stopped: to,
        }
    }

    /// How many requests of `kind` ended in `class`.
    pub fn count(&self, kind: Option<&str>, class: Class) -> usize {
        self.samples
            .iter()
            .filter(|s| s.class == class && kind.is_none_or(|k| s.kind == k))
            .count()
    }

    /// How many requests of `kind` there were.
    pub fn total(&self, kind: Option<&str>) -> usize {
        self.samples
            .iter()
            .filter(|s| kind.is_none_or(|k| s.kind == k))
            .count()
    }

    /// How many requests of `kind` failed (any class but [`Class::Ok`]).
    pub fn failed(&self, kind: Option<&str>) -> usize {
        self.total(kind) - self.count(kind, Class::Ok)
    }

    /// The failed requests (up to `max`), for assertion messages.
    pub fn failures(&self, max: usize) -> Vec<String> {
        self.samples
            .iter()
            .filter(|s| s.class != Class::Ok)
            .take(max)
            .map(|s| {
                format!(
                    "{} worker {} at +{}ms took {}ms: {} {}",
                    s.kind,
                    s.worker,
                    (s.start - self.started).as_millis(),
                    s.latency().as_millis(),
                    s.class,
                    s.detail
                )
            })
            .collect()
    }

    /// Recovery figures after an `event` (e.g. the restart began), with `back` the moment the
    /// database was reachable again (when known).
    pub fn recovery(&self, event: Instant, back: Option<Instant>) -> Recovery {
        let last_failure = self
            .samples
            .iter()
            .filter(|s| s.class != Class::Ok)
            .map(|s| s.end)
            .max();
        let first_ok_ending_after = |t: Instant, started_after: Instant| {
            self.samples
                .iter()
                .filter(|s| s.class == Class::Ok && s.end >= t && s.start >= started_after)
                .map(|s| s.end)
                .min()
        };
        Recovery {
            last_failure_to_success: last_failure.and_then(|f| {
                self.samples
                    .iter()
                    .filter(|s| s.class == Class::Ok && s.end >= f)
                    .map(|s| s.end - f)
                    .min()
            }),
            back_to_success: back.and_then(|b| {
                first_ok_ending_after(b, event).map(|ok| ok.saturating_duration_since(b))
            }),
            event_to_success: first_ok_ending_after(event, event).map(|ok| ok - event),
            max_latency: self
                .samples
                .iter()
                .map(Sample::latency)
                .max()
                .unwrap_or_default(),
        }
    }

    /// Counts per kind and class, e.g. `read: ok=120 unavailable=0 internal=0 other=0`.
    pub fn summary(&self) -> String {
        let mut per_kind: BTreeMap<&str, BTreeMap<Class, usize>> = BTreeMap::new();
        for s in &self.samples {
            *per_kind
                .entry(s.kind)
                .or_default()
                .entry(s.class)
                .or_default() += 1;
        }
        per_kind
            .iter()
            .map(|(kind, classes)| {
                let n = |c: Class| classes.get(&c).copied().unwrap_or(0);
                format!(
                    "{kind}: ok={} unavailable={} internal={} other={}",
                    n(Class::Ok),
                    n(Class::Unavailable),
                    n(Class::Internal),
                    n(Class::Other)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
