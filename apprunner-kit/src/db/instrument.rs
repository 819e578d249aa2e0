//! One CLIENT span per statement, following the stable OpenTelemetry database conventions.
//!
//! Spans are made with the OpenTelemetry API directly (the tracer `telemetry::init` installed,
//! else the global provider's; scope `apprunner`), as children of the current `tracing` span's OpenTelemetry context: a statement
//! span is never entered, so going through `tracing` would only add the subscriber's
//! bookkeeping and one allocation per attribute, on the hottest path of a service.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use opentelemetry::trace::SpanBuilder;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, StringValue, Value};

use crate::telemetry::{KitSpan, start_kit_span};

use super::config::{DbEngine, QueryText, TraceSettings};
use super::driver::{Driver, Endpoint};
use super::sanitize::{Sanitizer, sanitize_message};

/// The log target of this module: filter with `apprunner::db` in `RUST_LOG`.
pub(crate) const TARGET: &str = "apprunner::db";

/// The attributes every span of a pool carries (replaced when rotation changes the user, or
/// when the server turns out to be MariaDB).
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) system: &'static str,
    pub(crate) endpoint: Endpoint,
    pub(crate) peer_service: Option<String>,
    attributes: Attributes,
}

/// The per-pool attribute values, ready to clone into each span (reference-counted strings).
#[derive(Debug)]
struct Attributes {
    namespace: Option<StringValue>,
    address: Option<StringValue>,
    port: Option<i64>,
    user: Option<StringValue>,
    peer_service: Option<StringValue>,
}

fn shared(value: Option<&String>) -> Option<StringValue> {
    value.map(|v| StringValue::from(Arc::<str>::from(v.as_str())))
}

impl Meta {
    pub(crate) fn new(engine: DbEngine, endpoint: Endpoint, peer_service: Option<&str>) -> Self {
        let peer_service = match (peer_service, &endpoint.namespace, &endpoint.address) {
            (Some(name), _, _) => Some(name.to_owned()),
            (None, Some(namespace), Some(address)) => Some(format!("{namespace}@{address}")),
            (None, None, Some(address)) => Some(address.clone()),
            _ => None,
        };
        Self::with(engine.system_name(), endpoint, peer_service)
    }

    pub(crate) fn with(
        system: &'static str,
        endpoint: Endpoint,
        peer_service: Option<String>,
    ) -> Self {
        let attributes = Attributes {
            namespace: shared(endpoint.namespace.as_ref()),
            address: shared(endpoint.address.as_ref()),
            port: endpoint.port.map(i64::from),
            user: shared(endpoint.user.as_ref()),
            peer_service: shared(peer_service.as_ref()),
        };
        Self {
            system,
            endpoint,
            peer_service,
            attributes,
        }
    }
}

/// Per-pool tracing state.
#[derive(Debug)]
pub(crate) struct Tracer {
    settings: TraceSettings,
    sanitizer: Sanitizer,
    meta: RwLock<Arc<Meta>>,
    /// Keyed with foldhash rather than SipHash: the keys are the application's own statements,
    /// hashed on every query.
    cache: RwLock<HashMap<Box<str>, Arc<Analysis>, foldhash::fast::RandomState>>,
}

impl Tracer {
    pub(crate) fn new<DB: Driver>(settings: TraceSettings, meta: Meta) -> Self {
        Self {
            sanitizer: Sanitizer::new(DB::DIALECT).collapse_in_lists(settings.collapse_in_lists),
            settings,
            meta: RwLock::new(Arc::new(meta)),
            cache: RwLock::new(HashMap::default()),
        }
    }

    pub(crate) fn meta(&self) -> Arc<Meta> {
        Arc::clone(&self.meta.read().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn update_meta(&self, update: impl FnOnce(&Meta) -> Meta) {
        let mut meta = self.meta.write().unwrap_or_else(PoisonError::into_inner);
        *meta = Arc::new(update(&meta));
    }

    /// The parent of a statement issued now: the current span's context, or an empty one for a
    /// root span when root spans are wanted; `None` when the statement gets no span.
    pub(crate) fn parent(&self) -> Option<Context> {
        let cx = crate::telemetry::current_parent();
        let parent = cx.span().span_context().clone();
        if parent.is_valid() {
            // A request that is not sampled records no statement either (parent-based
            // sampling, the default): skip the analysis and the span altogether.
            parent.is_sampled().then_some(cx)
        } else if self.settings.root_spans {
            Some(Context::new())
        } else {
            None
        }
    }

    /// The span of a statement issued now, if it gets one.
    pub(crate) fn statement_span(&self, sql: &str) -> Option<StatementSpan> {
        self.parent().map(|parent| self.statement(&parent, sql))
    }

    /// The span of a transaction command issued now, if it gets one.
    pub(crate) fn command_span(&self, command: &'static str) -> Option<StatementSpan> {
        self.parent().map(|parent| self.command(&parent, command))
    }

    /// The span of one statement, under `parent`.
    pub(crate) fn statement(&self, parent: &Context, sql: &str) -> StatementSpan {
        let analysis = self.analysis(sql);
        self.span(
            parent,
            analysis.summary.as_ref().map(StringValue::as_str),
            &analysis,
        )
    }

    /// The span of a transaction command (`BEGIN`, `COMMIT`, `SAVEPOINT`, …).
    pub(crate) fn command(&self, parent: &Context, command: &'static str) -> StatementSpan {
        let analysis = Analysis {
            summary: Some(command.into()),
            text: (self.settings.query_text != QueryText::Off).then(|| command.into()),
            operation: command.split(' ').next().map(StringValue::from),
            collection: None,
            procedure: None,
        };
        self.span(parent, Some(command), &analysis)
    }

    /// The analysis of `sql`, from the cache when this statement was seen before (statements
    /// are mostly the same few strings, run over and over).
    fn analysis(&self, sql: &str) -> Arc<Analysis> {
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sql)
        {
            return Arc::clone(hit);
        }
        let analysis = Arc::new(self.analyze(sql));
        if sql.len() <= CACHE_MAX_STATEMENT {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            if cache.len() >= CACHE_ENTRIES {
                // Statements built with `format!` never repeat: start over rather than grow.
                cache.clear();
            }
            cache.insert(Box::from(sql), Arc::clone(&analysis));
        }
        analysis
    }

    fn analyze(&self, sql: &str) -> Analysis {
        let info = match self.settings.query_text {
            QueryText::Sanitized => self.sanitizer.analyze(sql),
            QueryText::Raw | QueryText::Off => self.sanitizer.summarize(sql),
        };
        let shared = |s: &str| StringValue::from(Arc::<str>::from(s));
        Analysis {
            summary: Some(info.summary()).filter(|s| !s.is_empty()).map(shared),
            text: match self.settings.query_text {
                QueryText::Sanitized => Some(shared(info.text())),
                QueryText::Raw => Some(shared(sql)),
                QueryText::Off => None,
            },
            operation: info.operation().map(shared),
            collection: info.collection().map(shared),
            procedure: info.stored_procedure().map(shared),
        }
    }

    /// The span of a statement named `name` (else after the database system), its attributes
    /// given at the start so that the sampler sees them.
    fn span(&self, parent: &Context, name: Option<&str>, s: &Analysis) -> StatementSpan {
        let meta = self.meta();
        let name = name.map_or(Cow::Borrowed(meta.system), |n| Cow::Owned(n.to_owned()));
        let builder = SpanBuilder::from_name(name)
            .with_kind(SpanKind::Client)
            .with_attributes(self.attributes(&meta, s));
        StatementSpan {
            span: start_kit_span(builder, parent),
            rows: 0,
            done: false,
        }
    }

    /// The attributes of statement `s` in this pool.
    fn attributes(&self, meta: &Meta, s: &Analysis) -> Vec<KeyValue> {
        let a = &meta.attributes;
        let mut attributes = Vec::with_capacity(20);
        let mut push = |key: &'static str, value: &Option<StringValue>| {
            if let Some(value) = value {
                attributes.push(KeyValue::new(key, Value::String(value.clone())));
            }
        };
        push("db.namespace", &a.namespace);
        push("db.query.text", &s.text);
        push("db.query.summary", &s.summary);
        push("db.operation.name", &s.operation);
        push("db.collection.name", &s.collection);
        push("db.stored_procedure.name", &s.procedure);
        push("server.address", &a.address);
        push("peer.service", &a.peer_service);
        if self.settings.legacy_attributes {
            push("db.name", &a.namespace);
            push("db.statement", &s.text);
            push("db.user", &a.user);
            attributes.push(KeyValue::new("db.system", meta.system));
        }
        attributes.push(KeyValue::new("db.system.name", meta.system));
        if let Some(port) = a.port {
            attributes.push(KeyValue::new("server.port", port));
        }
        attributes
    }
}

/// Statements longer than this are analysed every time, not cached.
const CACHE_MAX_STATEMENT: usize = 4096;
/// Distinct statements kept per pool.
const CACHE_ENTRIES: usize = 1024;

/// What the attributes say about one statement (shared strings, cheap to clone into a span).
#[derive(Debug)]
struct Analysis {
    summary: Option<StringValue>,
    text: Option<StringValue>,
    operation: Option<StringValue>,
    collection: Option<StringValue>,
    procedure: Option<StringValue>,
}

/// The span of one statement: records the rows it returned and ends when dropped.
pub(crate) struct StatementSpan {
    span: KitSpan,
    rows: i64,
    done: bool,
}

impl std::fmt::Debug for StatementSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementSpan")
            .field("span", &self.span.span_context())
            .field("rows", &self.rows)
            .finish()
    }
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
    pub(crate) fn waited(&mut self, wait: Duration) {
        self.span.set_attribute(KeyValue::new(
            "db.client.connection.wait_time",
            wait.as_secs_f64(),
        ));
    }

    /// Notes that the statement ran again on a fresh connection after `error` (a `retry`
    /// event with its `error.type`); the rows counted so far are dropped with the first attempt.
    pub(crate) fn retried<DB: Driver>(&mut self, error: &sqlx::Error) {
        self.rows = 0;
        let error_type = match error {
            sqlx::Error::Database(e) => DB::status_code(e.as_ref())
                .map_or_else(|| error_type(error).to_owned(), Cow::into_owned),
            _ => error_type(error).to_owned(),
        };
        self.span
            .add_event("retry", vec![KeyValue::new("error.type", error_type)]);
    }

    /// Records a failure: `error.type`, `db.response.status_code` and the span status (with a
    /// message stripped of anything quoted and of numbers).
    pub(crate) fn fail<DB: Driver>(&mut self, error: &sqlx::Error) {
        self.done = true;
        let code = match error {
            sqlx::Error::Database(e) => DB::status_code(e.as_ref()).map(Cow::into_owned),
            _ => None,
        };
        if let Some(code) = &code {
            self.span
                .set_attribute(KeyValue::new("db.response.status_code", code.clone()));
        }
        let error_type = code.unwrap_or_else(|| error_type(error).to_owned());
        self.span
            .set_attribute(KeyValue::new("error.type", error_type));
        self.span
            .set_status(Status::error(sanitize_message(&error.to_string())));
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
        if !self.done {
            self.span
                .set_attribute(KeyValue::new("db.response.returned_rows", self.rows));
        }
        self.span.end();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tracer(query_text: QueryText) -> Tracer {
        let settings = TraceSettings {
            query_text,
            ..TraceSettings::default()
        };
        Tracer::new::<sqlx::Postgres>(
            settings,
            Meta::new(DbEngine::Postgres, Endpoint::default(), None),
        )
    }

    #[test]
    fn analyses_are_cached_and_bounded() {
        let tracer = tracer(QueryText::Sanitized);
        let a = tracer.analysis("SELECT * FROM users WHERE id = $1");
        let b = tracer.analysis("SELECT * FROM users WHERE id = $1");
        assert!(Arc::ptr_eq(&a, &b), "a repeated statement is analysed once");
        assert_eq!(
            a.summary.as_ref().map(StringValue::as_str),
            Some("SELECT users")
        );
        for i in 0..(CACHE_ENTRIES * 2) {
            tracer.analysis(&format!("SELECT {i} FROM t"));
            assert!(tracer.cache.read().unwrap().len() <= CACHE_ENTRIES);
        }
        let long = format!(
            "SELECT 1 FROM t WHERE a IN ({})",
            "1, ".repeat(CACHE_MAX_STATEMENT)
        );
        let (x, y) = (tracer.analysis(&long), tracer.analysis(&long));
        assert!(!Arc::ptr_eq(&x, &y), "huge statements are not kept");
        assert_eq!(
            x.text.as_ref().map(StringValue::as_str),
            Some("SELECT ? FROM t WHERE a IN (?)")
        );
    }

    /// An Aurora-like endpoint with every field set.
    fn aurora_endpoint() -> Endpoint {
        Endpoint {
            namespace: Some("users".into()),
            address: Some("db.internal".into()),
            port: Some(5432),
            user: Some("app".into()),
        }
    }

    #[test]
    fn attributes_follow_the_pool_meta() {
        let tracer = Tracer::new::<sqlx::Postgres>(
            TraceSettings::default(),
            Meta::new(DbEngine::Postgres, aurora_endpoint(), None),
        );
        let analysis = tracer.analysis("SELECT * FROM users WHERE id = $1");
        let attributes = tracer.attributes(&tracer.meta(), &analysis);
        for expected in [
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.namespace", "users"),
            KeyValue::new("db.query.summary", "SELECT users"),
            KeyValue::new("server.address", "db.internal"),
            KeyValue::new("server.port", 5432_i64),
            KeyValue::new("peer.service", "users@db.internal"),
        ] {
            assert!(
                attributes.contains(&expected),
                "{expected:?} in {attributes:?}"
            );
        }
        // Rotation to another user: later spans carry the new user.
        tracer.update_meta(|meta| {
            let mut endpoint = meta.endpoint.clone();
            endpoint.user = Some("app_rotated".into());
            Meta::with(meta.system, endpoint, meta.peer_service.clone())
        });
        let rotated = tracer.attributes(&tracer.meta(), &analysis);
        let user = |attributes: &[KeyValue]| {
            attributes
                .iter()
                .find(|kv| kv.key.as_str() == "db.user")
                .map(|kv| kv.value.to_string())
        };
        if TraceSettings::default().legacy_attributes {
            assert_eq!(user(&attributes).as_deref(), Some("app"));
            assert_eq!(user(&rotated).as_deref(), Some("app_rotated"));
        } else {
            assert_eq!(user(&rotated), None);
        }
    }

    #[test]
    fn query_text_modes() {
        let sql = "SELECT name FROM users WHERE email = 'bob@example.com'";
        let text = |mode| {
            tracer(mode)
                .analysis(sql)
                .text
                .as_ref()
                .map(|t| t.as_str().to_owned())
        };
        assert_eq!(
            text(QueryText::Sanitized).as_deref(),
            Some("SELECT name FROM users WHERE email = ?")
        );
        assert_eq!(text(QueryText::Raw).as_deref(), Some(sql));
        assert_eq!(text(QueryText::Off), None);
        let off = tracer(QueryText::Off).analysis(sql);
        assert_eq!(
            off.collection.as_ref().map(StringValue::as_str),
            Some("users")
        );
    }

    #[test]
    fn peer_service_defaults_to_namespace_at_address() {
        let endpoint = aurora_endpoint();
        let meta = Meta::new(DbEngine::Postgres, endpoint.clone(), None);
        assert_eq!(meta.peer_service.as_deref(), Some("users@db.internal"));
        let named = Meta::new(DbEngine::Postgres, endpoint, Some("users-db"));
        assert_eq!(named.peer_service.as_deref(), Some("users-db"));
        let sqlite = Meta::new(
            DbEngine::Sqlite,
            Endpoint {
                namespace: Some("app.db".into()),
                ..Endpoint::default()
            },
            None,
        );
        assert_eq!(sqlite.peer_service, None);
    }
}
