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
