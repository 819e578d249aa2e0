//! Log output: JSON lines carrying the X-Ray trace id, or readable text on a terminal.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::xray::xray_trace_id;

/// Formats each event as one JSON object: `timestamp`, `level`, `target`, `message`, the
/// event's fields, the current span's name, `service.name` (when [set](Self::service_name), as
/// [`TelemetryConfig::init`](super::TelemetryConfig::init) does), and `trace_id` (X-Ray form)
/// plus `span_id` and `trace_flags` when the event happens inside a traced span — so a
/// CloudWatch Logs Insights query on `trace_id` finds every line of an X-Ray trace, and lines
/// of several services sharing a log group can be told apart.
///
/// `trace_id`, `span_id` and `trace_flags` are the names CloudWatch Application Signals' trace
/// to log correlation reads (the OpenTelemetry log-context names, see "Enable trace to log
/// correlation" in the CloudWatch user guide).
///
/// ```
/// use apprunner::telemetry::JsonFormat;
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry().with(
///     tracing_subscriber::fmt::layer().event_format(JsonFormat::default().service_name("users-api")),
/// );
/// # let _ = subscriber;
/// ```
#[derive(Debug, Default, Clone)]
pub struct JsonFormat {
    service_name: Option<Value>,
}

impl JsonFormat {
    /// Adds `"service.name": name` to every line.
    ///
    /// ```
    /// let format = apprunner::telemetry::JsonFormat::default().service_name("users-api");
    /// # let _ = format;
    /// ```
    pub fn service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(Value::from(name.into()));
        self
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

/// RFC 3339 UTC timestamp with microseconds, without a date-time dependency.
pub(crate) fn rfc3339(now: SystemTime) -> String {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        d.subsec_micros()
    )
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut map = Map::new();
        map.insert("timestamp".into(), Value::from(rfc3339(SystemTime::now())));
        map.insert("level".into(), Value::from(meta.level().as_str()));
        map.insert("target".into(), Value::from(meta.target()));
        if let Some(name) = &self.service_name {
            map.insert("service.name".into(), name.clone());
        }
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        if let Some(message) = fields.remove("message") {
            map.insert("message".into(), message);
        }
        for (k, v) in fields {
            map.entry(k).or_insert(v);
        }
        if let Some(span) = ctx.lookup_current() {
            map.insert("span".into(), Value::from(span.name()));
        }
        let cx = Context::current();
        let otel_span = cx.span();
        let sc = otel_span.span_context();
        if sc.is_valid() {
            map.insert("trace_id".into(), Value::from(xray_trace_id(sc.trace_id())));
            map.insert("span_id".into(), Value::from(sc.span_id().to_string()));
            map.insert(
                "trace_flags".into(),
                Value::from(format!("{:02x}", sc.trace_flags().to_u8())),
            );
        }
        writeln!(writer, "{}", Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123456Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
