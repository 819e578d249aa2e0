//! [`SamplingPeer`]: the X-Ray side of the centralized sampling tests, a Python process
//! (`xray_sampling_peer.py`, run with the test virtualenv's Python) answering
//! `GetSamplingRules` and `GetSamplingTargets` on 127.0.0.1 with what the test set, and
//! holding every request it receives and every answer it sends to botocore's X-Ray service
//! model (violations are answered 400/500 and recorded: [`SamplingPeer::violations`]).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::peer_control;

/// A running `xray_sampling_peer.py`; stopped on drop.
#[derive(Debug)]
pub struct SamplingPeer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl SamplingPeer {
    /// Starts the peer on a free port.
    ///
    /// # Panics
    ///
    /// When Python or botocore is missing: run `./scripts/test`, which installs them.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("apprunner-sampling-peer-")
            .tempdir()
            .expect("temporary directory");
        let mut peer = Self {
            child: None,
            dir,
            port: 0,
        };
        peer.spawn(0);
        peer
    }

    fn spawn(&mut self, port: u16) {
        let _ = std::fs::remove_file(self.dir.path().join("port"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("peer.log"))
            .expect("peer log");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("support/xray_sampling_peer.py");
        let mut child = Command::new(crate::sigv4::python())
            .arg(script)
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--port")
            .arg(port.to_string())
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("start the X-Ray sampling peer (python); run ./scripts/test");
        let deadline = Instant::now() + Duration::from_secs(30);
        self.port = loop {
            if let Ok(text) = std::fs::read_to_string(self.dir.path().join("port")) {
                break text.trim().parse().expect("port");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the X-Ray sampling peer exited with {status} (run ./scripts/test to install \
                     botocore):\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the X-Ray sampling peer did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.child = Some(child);
    }

    /// Stops the peer: the endpoint goes down (connections are refused).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the peer again on the same port, with its state reset.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn(self.port);
    }

    /// The peer's own output.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("peer.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<port>`, the endpoint of `OTEL_TRACES_SAMPLER_ARG`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Sets any of `rules` (the API's `SamplingRule` objects), `targets` (rule name ->
    /// `{FixedRate, ReservoirQuota, ReservoirQuotaTTL (seconds from now), Interval}`),
    /// `page_size`, `last_rule_modification: "now"`, `sigv4` (`{access_key, secret, region}`:
    /// every call must be signed so), `delay` (seconds each call is held before its answer).
    pub fn set(&self, settings: Value) {
        peer_control::set(self.port, "/control", &settings);
    }

    /// `rules_calls` and `targets_calls` (each `{at, params}`), `violations`, and `unsigned`
    /// (no request carried an `Authorization` header).
    pub fn records(&self) -> Value {
        peer_control::get_json(self.port, "/records")
    }

    /// Requests or answers that broke botocore's X-Ray model.
    pub fn violations(&self) -> Vec<Value> {
        self.records()["violations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The `GetSamplingTargets` calls seen so far.
    pub fn targets_calls(&self) -> Vec<Value> {
        self.records()["targets_calls"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// How many `GetSamplingRules` calls (pages included) were seen.
    pub fn rules_calls(&self) -> usize {
        self.records()["rules_calls"].as_array().map_or(0, Vec::len)
    }

    /// Waits up to `timeout` for `done(records)`.
    ///
    /// # Panics
    ///
    /// When it does not happen in time (the message says what was waited for).
    pub fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.records();
            if done(&records) {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "waited {timeout:?} for {what}; the peer saw: {records}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends `body` to `path` as the kit would (`POST`, JSON) and returns the status line and
    /// body of the answer: for checking the peer itself.
    pub fn post(&self, path: &str, body: &str) -> (String, String) {
        peer_control::post(self.port, path, body)
    }
}

impl Drop for SamplingPeer {
    fn drop(&mut self) {
        self.stop();
    }
}
