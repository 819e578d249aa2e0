//! One CLIENT span per statement, following the stable OpenTelemetry database conventions.

use std::borrow::Cow;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::trace::TraceContextExt as _;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::config::{DbEngine, QueryText, TraceSettings};
use super::driver::{Driver, Endpoint};
use super::sanitize::{Sanitizer, sanitize_message};

/// The span target: filter with `apprunner::db` in `RUST_LOG` / `APPRUNNER_SPAN_FILTER`.
pub(crate) const TARGET: &str = "apprunner::db";

/// The attributes every span of a pool carries (replaced when rotation changes the user, or
/// when the server turns out to be MariaDB).
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) system: &'static str,
    pub(crate) endpoint: Endpoint,
    pub(crate) peer_service: Option<String>,
}

impl Meta {
    pub(crate) fn new(engine: DbEngine, endpoint: Endpoint, peer_service: Option<&str>) -> Self {
        let peer_service = match (peer_service, &endpoint.namespace, &endpoint.address) {
            (Some(name), _, _) => Some(name.to_owned()),
            (None, Some(namespace), Some(address)) => Some(format!("{namespace}@{address}")),
            (None, None, Some(address)) => Some(address.clone()),
            _ => None,
        };
        Self {
            system: engine.system_name(),
            endpoint,
            peer_service,
        }
    }
}

/// Per-pool tracing state.
#[derive(Debug)]
pub(crate) struct Tracer {
    settings: TraceSettings,
    sanitizer: Sanitizer,
    meta: RwLock<Arc<Meta>>,
}

impl Tracer {
    pub(crate) fn new<DB: Driver>(settings: TraceSettings, meta: Meta) -> Self {
        Self {
            sanitizer: Sanitizer::new(DB::DIALECT).collapse_in_lists(settings.collapse_in_lists),
            settings,
            meta: RwLock::new(Arc::new(meta)),
        }
    }

    pub(crate) fn meta(&self) -> Arc<Meta> {
        Arc::clone(&self.meta.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn update_meta(&self, update: impl FnOnce(&Meta) -> Meta) {
        let mut meta = self.meta.write().unwrap_or_else(PoisonError::into_inner);
        *meta = Arc::new(update(&meta));
    }

    /// Whether a statement issued now gets a span: there is a parent span, or root spans are
    /// wanted.
    pub(crate) fn wants_span(&self) -> bool {
        self.settings.root_spans || has_parent()
    }

    /// The span of one statement.
    pub(crate) fn statement(&self, sql: &str) -> StatementSpan {
        let info = match self.settings.query_text {
            QueryText::Sanitized => self.sanitizer.analyze(sql),
            QueryText::Raw | QueryText::Off => self.sanitizer.summarize(sql),
        };
        let text = match self.settings.query_text {
            QueryText::Sanitized => Some(info.text()),
            QueryText::Raw => Some(sql),
            QueryText::Off => None,
        };
        let summary = Some(info.summary()).filter(|s| !s.is_empty());
        self.span(
            summary,
            text,
            info.operation(),
            info.collection(),
            info.stored_procedure(),
        )
    }

    /// The span of a transaction command (`BEGIN`, `COMMIT`, `SAVEPOINT`, …).
    pub(crate) fn command(&self, command: &'static str) -> StatementSpan {
        let text = (self.settings.query_text != QueryText::Off).then_some(command);
        let operation = command.split(' ').next();
        self.span(Some(command), text, operation, None, None)
    }

    fn span(
        &self,
        summary: Option<&str>,
        text: Option<&str>,
        operation: Option<&str>,
        collection: Option<&str>,
        procedure: Option<&str>,
    ) -> StatementSpan {
        let meta = self.meta();
        let endpoint = &meta.endpoint;
        let legacy = self.settings.legacy_attributes;
        let span = tracing::info_span!(
            target: TARGET,
            "db.statement",
            otel.name = summary.unwrap_or(meta.system),
            otel.kind = "client",
            otel.status_code = Empty,
            otel.status_description = Empty,
            db.system.name = meta.system,
            db.namespace = endpoint.namespace.as_deref(),
            db.query.text = text,
            db.query.summary = summary,
            db.operation.name = operation,
            db.collection.name = collection,
            db.stored_procedure.name = procedure,
            server.address = endpoint.address.as_deref(),
            server.port = endpoint.port.map(i64::from),
            peer.service = meta.peer_service.as_deref(),
            db.client.connection.wait_time = Empty,
            db.response.returned_rows = Empty,
            db.response.status_code = Empty,
            error.type = Empty,
            db.system = legacy.then_some(meta.system),
            db.name = endpoint.namespace.as_deref().filter(|_| legacy),
            db.statement = text.filter(|_| legacy),
            db.user = endpoint.user.as_deref().filter(|_| legacy),
        );
        StatementSpan {
            span,
            rows: 0,
            done: false,
        }
    }
}

/// Whether the current context has a valid span to be the parent of a statement's span.
fn has_parent() -> bool {
    let current = Span::current();
    if !current.is_none() && current.context().span().span_context().is_valid() {
        return true;
    }
    opentelemetry::Context::map_current(|cx| cx.span().span_context().is_valid())
}

/// The span of one statement: records the rows it returned when dropped, and its error.
#[derive(Debug)]
pub(crate) struct StatementSpan {
    span: Span,
    rows: i64,
    done: bool,
}

impl StatementSpan {
    pub(crate) fn row(&mut self) {
        self.rows += 1;
    }

    pub(crate) fn rows(&mut self, n: usize) {
        self.rows += i64::try_from(n).unwrap_or(i64::MAX);
    }

    /// Records how long acquiring the connection took (seconds, as the
    /// `db.client.connection.wait_time` metric of the conventions).
    pub(crate) fn waited(&self, wait: Duration) {
        self.span
            .record("db.client.connection.wait_time", wait.as_secs_f64());
    }

    /// Records a failure: `error.type`, `db.response.status_code` and the span status (with a
    /// message stripped of anything quoted and of numbers).
    pub(crate) fn fail<DB: Driver>(&mut self, error: &sqlx::Error) {
        self.done = true;
        let code = match error {
            sqlx::Error::Database(e) => DB::status_code(e.as_ref()),
            _ => None,
        };
        if let Some(code) = &code {
            self.span.record("db.response.status_code", code.as_ref());
        }
        let error_type = code.unwrap_or_else(|| Cow::Borrowed(error_type(error)));
        self.span.record("error.type", error_type.as_ref());
        self.span.record(
            "otel.status_description",
            sanitize_message(&error.to_string()),
        );
    }

    /// Records the outcome of a statement.
    pub(crate) fn finish<DB: Driver, T>(&mut self, result: &Result<T, sqlx::Error>) {
        if let Err(e) = result {
            self.fail::<DB>(e);
        }
    }
}

impl Drop for StatementSpan {
    fn drop(&mut self) {
        if !self.done && !self.span.is_disabled() {
            self.span.record("db.response.returned_rows", self.rows);
        }
    }
}

/// `error.type` for errors that carry no database code.
pub(crate) fn error_type(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(_) => "_OTHER",
        sqlx::Error::Configuration(_) => "configuration",
        sqlx::Error::InvalidArgument(_) => "invalid_argument",
        sqlx::Error::Io(_) => "io",
        sqlx::Error::Tls(_) => "tls",
        sqlx::Error::Protocol(_) => "protocol",
        sqlx::Error::RowNotFound => "row_not_found",
        sqlx::Error::TypeNotFound { .. } => "type_not_found",
        sqlx::Error::ColumnIndexOutOfBounds { .. } => "column_index_out_of_bounds",
        sqlx::Error::ColumnNotFound(_) => "column_not_found",
        sqlx::Error::ColumnDecode { .. } => "column_decode",
        sqlx::Error::Encode(_) => "encode",
        sqlx::Error::Decode(_) => "decode",
        sqlx::Error::AnyDriverError(_) => "driver",
        sqlx::Error::PoolTimedOut => "pool_timed_out",
        sqlx::Error::PoolClosed => "pool_closed",
        sqlx::Error::WorkerCrashed => "worker_crashed",
        sqlx::Error::Migrate(_) => "migrate",
        _ => "_OTHER",
    }
}
