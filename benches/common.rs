//! Helpers shared by the benchmarks of this package.

/// Whether the criterion filter given on the command line (if any) selects one of `ids`, so
/// that an expensive setup (servers, databases, interleaved passes) runs only when needed.
/// Option values (`--profile-time 5`) are not taken for filters.
pub(crate) fn selected(ids: &[&str]) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && a.parse::<f64>().is_err())
        .collect();
    filters.is_empty()
        || filters
            .iter()
            .any(|f| ids.iter().any(|id| id.contains(f.as_str())))
}

/// The export counters after a flush: spans still queued would count as dropped.
pub(crate) fn flushed_stats(
    telemetry: &apprunner::telemetry::TelemetryGuard,
) -> apprunner::telemetry::ExportStats {
    telemetry.force_flush().expect("flush");
    telemetry.stats()
}

/// Prints the spans ended and dropped (export queue full) since `before` (a [`flushed_stats`]),
/// for the interleaved pass named `pass`: a traced side that dropped spans did less than its
/// work.
pub(crate) fn report_pass_spans(
    pass: &str,
    telemetry: &apprunner::telemetry::TelemetryGuard,
    before: &apprunner::telemetry::ExportStats,
) {
    let stats = flushed_stats(telemetry);
    eprintln!(
        "{pass} spans: ended {}, dropped (queue full) {}",
        stats.spans_ended - before.spans_ended,
        stats.spans_dropped() - before.spans_dropped(),
    );
}

/// Shuts telemetry down (flushing every span) and prints what the export pipeline did.
pub(crate) fn shutdown_and_report(
    runtime: &tokio::runtime::Runtime,
    telemetry: apprunner::telemetry::TelemetryGuard,
) -> apprunner::telemetry::ExportStats {
    let stats = runtime
        .block_on(telemetry.shutdown())
        .expect("telemetry shutdown");
    eprintln!(
        "spans: ended {}, exported {}, failed {}, dropped {}",
        stats.spans_ended,
        stats.spans_exported,
        stats.spans_failed,
        stats.spans_dropped(),
    );
    stats
}

/// Per-round throughput ratios of an interleaved pass (`traced[i] / plain[i]` for rounds run
/// back to back): their median, minimum and maximum. The median is robust to a burst of
/// outside load that slows down one round of one side, which the ratio of totals is not.
pub(crate) fn round_ratios(
    plain: &[std::time::Duration],
    traced: &[std::time::Duration],
) -> (f64, f64, f64) {
    let mut ratios: Vec<f64> = plain
        .iter()
        .zip(traced)
        .map(|(plain, traced)| plain.as_secs_f64() / traced.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = match ratios.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => ratios[n / 2],
        n => (ratios[n / 2 - 1] + ratios[n / 2]) / 2.0,
    };
    let min = ratios.first().copied().unwrap_or(f64::NAN);
    let max = ratios.last().copied().unwrap_or(f64::NAN);
    (median, min, max)
}

/// A `/proc/.../stat` line's command name and CPU time (user + system, fields 14 and 15, in
/// clock ticks of 10 ms).
pub(crate) fn stat_cpu(stat: &str) -> Option<(&str, std::time::Duration)> {
    let (_, after_pid) = stat.split_once('(')?;
    let (name, fields) = after_pid.rsplit_once(')')?;
    let ticks: u64 = fields
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Some((name, std::time::Duration::from_millis(ticks * 10)))
}

/// CPU time (user + system) this process has used so far; zero where `/proc` is unavailable.
#[allow(dead_code, reason = "not every benchmark reads it")]
pub(crate) fn process_cpu() -> std::time::Duration {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_cpu(&stat).map(|(_, cpu)| cpu))
        .unwrap_or_default()
}
