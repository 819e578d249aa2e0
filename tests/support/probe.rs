//! Runs the `telemetry-probe` binary (`bin/telemetry_probe.rs`) as a child process, so that each
//! telemetry scenario gets its own environment and global state, and reads what it printed.
//!
//! The binary's path is only known to the test targets of this package (`CARGO_BIN_EXE_*`), so
//! callers pass it: `Probe::run(env!("CARGO_BIN_EXE_telemetry-probe"), "spans", &env)`.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{OtlpReceiver, SpanRecord};

/// One finished run of the telemetry probe: its output and how long it took.
#[derive(Debug)]
pub struct Probe {
    output: Output,
    elapsed: Duration,
}

/// What the probe's export pipeline reported at shutdown (`apprunner::telemetry::ExportStats`).
///
/// When shutdown failed (a timeout), the counts are those seen right before shutdown began:
/// `spans_ended` is then exact and the spans not yet exported or failed count as dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeStats {
    /// Sampled spans that ended.
    pub spans_ended: u64,
    /// Spans the collector accepted.
    pub spans_exported: u64,
    /// Spans whose export failed.
    pub spans_failed: u64,
    /// Spans neither exported nor failed (dropped from a full queue, or lost at shutdown).
    pub spans_dropped: u64,
}

impl Probe {
    /// Runs `bin` (the probe) with the scenario and environment, its own `OTEL_*`, `AWS_*`,
    /// `APPRUNNER_*` and `RUST_LOG` variables removed first (JSON logs unless `env` says
    /// otherwise), and waits for it.
    ///
    /// # Panics
    ///
    /// When the probe cannot run or exits unsuccessfully (printing its output).
    pub fn run(bin: &str, scenario: &str, env: &[(&str, String)]) -> Probe {
        let mut cmd = Command::new(bin);
        cmd.arg(scenario);
        for (key, _) in std::env::vars() {
            if key.starts_with("OTEL_")
                || key.starts_with("AWS_")
                || key == "RUST_LOG"
                || key.starts_with("APPRUNNER_")
            {
                cmd.env_remove(key);
            }
        }
        cmd.env("APPRUNNER_LOG_FORMAT", "json");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let output = cmd.output().expect("run telemetry-probe");
        let elapsed = started.elapsed();
        assert!(
            output.status.success(),
            "probe failed: {}\nstdout:\n{}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        Probe { output, elapsed }
    }

    /// How long the child ran, from spawn to exit.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// Everything the probe wrote to stdout.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Everything the probe wrote to stderr.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The JSON log lines (everything but the final result line).
    ///
    /// # Panics
    ///
    /// When a line is not JSON.
    pub fn logs(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .filter(|l| !l.starts_with("PROBE_RESULT "))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The `PROBE_RESULT` line's JSON: `ok`, `error`, `shutdown_ms`, the stats
    /// (`spans_ended`, `spans_exported`, `spans_failed`, `spans_dropped`) and the older
    /// `exported` and `dropped`.
    pub fn result(&self) -> Value {
        let line = self
            .stdout()
            .lines()
            .find_map(|l| l.strip_prefix("PROBE_RESULT ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no probe result line in:\n{}", self.stdout()));
        serde_json::from_str(&line).expect("the probe result is JSON")
    }

    /// The export statistics of the result line.
    pub fn stats(&self) -> ProbeStats {
        let result = self.result();
        let count = |key: &str| {
            result[key]
                .as_u64()
                .unwrap_or_else(|| panic!("no {key} in the probe result {result}"))
        };
        ProbeStats {
            spans_ended: count("spans_ended"),
            spans_exported: count("spans_exported"),
            spans_failed: count("spans_failed"),
            spans_dropped: count("spans_dropped"),
        }
    }

    /// The first log line with this message.
    ///
    /// # Panics
    ///
    /// When there is none.
    pub fn log(&self, message: &str) -> Value {
        self.logs()
            .into_iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no log line {message:?} in:\n{}", self.stdout()))
    }
}

/// `OTEL_EXPORTER_OTLP_ENDPOINT` set to the receiver's gRPC endpoint.
pub fn grpc_env(receiver: &OtlpReceiver) -> Vec<(&'static str, String)> {
    vec![("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())]
}

/// The only span named `name`.
///
/// # Panics
///
/// When there is not exactly one.
pub fn one<'a>(spans: &'a [SpanRecord], name: &str) -> &'a SpanRecord {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "expected one span {name:?}, got {spans:#?}");
    found[0]
}

/// Runs a future on a new current-thread runtime (for the synchronous child-process tests).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a current-thread runtime")
        .block_on(f)
}
