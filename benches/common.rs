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
