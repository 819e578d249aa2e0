//! `sqlx::Executor` for the traced pool, connections and transactions: every `fetch_*`,
//! `execute*` and `prepare*` call (including those of the `query!` macros) goes through
//! `fetch_many`, `fetch_optional` or `prepare_with` here, and gets its span.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, Stream, TryStreamExt as _};
use sqlx::error::BoxDynError;
use sqlx::{Database, Describe, Either, Execute, Executor, SqlStr};

use super::conn::{Connection, PoolConnection, Transaction};
use super::driver::{Driver, Steps};
use super::instrument::TARGET;
use super::instrument::{StatementSpan, Tracer};
use super::pool::{Pool, Retryable};
use super::resilience::{connection_lost, is_read_only, may_be_read_only, refused_write};
use super::shared::Shared;

/// A query taken apart so its SQL can be read before it runs.
struct Prepared<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
}

impl<'q, DB: Database> Execute<'q, DB> for Prepared<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        self.statement.as_ref()
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        self.arguments.take().unwrap_or(Ok(None))
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}

/// The query as given (no span), or taken apart (span).
enum Query<DB: Database, E> {
    Plain(E),
    Prepared(Prepared<DB>),
}

impl<'q, DB: Database, E: Execute<'q, DB>> Execute<'q, DB> for Query<DB, E> {
    fn sql(self) -> SqlStr {
        match self {
            Self::Plain(query) => query.sql(),
            Self::Prepared(p) => p.sql,
        }
    }

    fn statement(&self) -> Option<&DB::Statement> {
        match self {
            Self::Plain(query) => query.statement(),
            Self::Prepared(p) => p.statement.as_ref(),
        }
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, BoxDynError> {
        match self {
            Self::Plain(query) => query.take_arguments(),
            Self::Prepared(p) => p.arguments.take().unwrap_or(Ok(None)),
        }
    }

    fn persistent(&self) -> bool {
        match self {
            Self::Plain(query) => query.persistent(),
            Self::Prepared(p) => p.persistent,
        }
    }
}

/// Starts the span of `query` when one is wanted (reading its SQL), else passes it through.
fn start<'q, DB: Driver, E: Execute<'q, DB>>(
    tracer: &Tracer,
    mut query: E,
) -> (Query<DB, E>, Option<StatementSpan>) {
    let Some(parent) = tracer.parent() else {
        return (Query::Plain(query), None);
    };
    let arguments = Some(query.take_arguments());
    let statement = query.statement().cloned();
    let persistent = query.persistent();
    let sql = query.sql();
    let span = tracer.statement(&parent, sql.as_str());
    let prepared = Prepared {
        sql,
        statement,
        arguments,
        persistent,
    };
    (Query::Prepared(prepared), Some(span))
}

/// A connection from the pool, the wait recorded on the statement's span.
async fn acquire<DB: Driver>(
    shared: &Arc<Shared<DB>>,
    span: Option<&mut StatementSpan>,
) -> Result<sqlx::pool::PoolConnection<DB>, sqlx::Error> {
    let started = Instant::now();
    let conn = shared.acquire().await?;
    if let Some(span) = span {
        span.waited(started.elapsed());
    }
    Ok(conn)
}

/// A statement's steps, counting rows and recording the error on its span when it has one.
fn traced_steps<DB: Driver>(inner: Steps<'_, DB>, span: Option<StatementSpan>) -> Steps<'_, DB> {
    match span {
        None => inner,
        Some(span) => Box::pin(TracedStream::<DB> { inner, span }),
    }
}

/// Records on `span` what a `fetch_optional` returned.
fn record_optional<DB: Driver>(
    span: &mut StatementSpan,
    result: &Result<Option<DB::Row>, sqlx::Error>,
) {
    match result {
        Ok(row) => span.rows(usize::from(row.is_some())),
        Err(e) => span.fail::<DB>(e),
    }
}

/// Records on `span` the outcome of a `prepare_with`.
fn record_prepare<DB: Driver>(
    span: &mut StatementSpan,
    result: &Result<DB::Statement, sqlx::Error>,
) {
    span.finish::<DB, _>(result);
}

/// A connection's statement future, its outcome recorded with `record` when it has a span.
fn traced_future<'e, T: Send + 'e>(
    inner: BoxFuture<'e, Result<T, sqlx::Error>>,
    span: Option<StatementSpan>,
    record: fn(&mut StatementSpan, &Result<T, sqlx::Error>),
) -> BoxFuture<'e, Result<T, sqlx::Error>> {
    let Some(mut span) = span else {
        return inner;
    };
    Box::pin(async move {
        let result = inner.await;
        record(&mut span, &result);
        result
    })
}

// ------------------------------------------------------------------------------------------
// A minimal generator: a future that pushes items into a slot, read by a stream. The pool's
// `fetch_many` must acquire a connection and then stream from it, and the stream borrows the
// connection; driving both from one future avoids a self-referential type.

type Slot<T> = Arc<Mutex<Option<T>>>;

struct Yielder<T> {
    slot: Slot<T>,
}

impl<T> Yielder<T> {
    /// Hands `value` to the stream and waits until it has been taken.
    fn send(&self, value: T) -> YieldOnce {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(value);
        YieldOnce(false)
    }
}

/// Pending once (the stream returns the item meanwhile), then ready.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            // No wake-up needed: the stream yields the item now, and the consumer polls
            // again for the next one, which polls this future again.
            self.0 = true;
            Poll::Pending
        }
    }
}

struct Generator<'a, T> {
    future: Option<BoxFuture<'a, Result<(), sqlx::Error>>>,
    slot: Slot<T>,
}

impl<'a, T: Send + 'a> Generator<'a, T> {
    fn new<F, Fut>(body: F) -> Self
    where
        F: FnOnce(Yielder<T>) -> Fut,
        Fut: Future<Output = Result<(), sqlx::Error>> + Send + 'a,
    {
        let slot = Slot::default();
        let future = body(Yielder {
            slot: Arc::clone(&slot),
        });
        Self {
            future: Some(Box::pin(future)),
            slot,
        }
    }
}

impl<T> Stream for Generator<'_, T> {
    type Item = Result<T, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = future.as_mut().poll(cx);
        if polled.is_ready() {
            self.future = None;
        }
        let item = self
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match (polled, item) {
            // `send` always suspends once, so a finished future left no item behind.
            (_, Some(item)) => Poll::Ready(Some(Ok(item))),
            (Poll::Pending, None) => Poll::Pending,
            (Poll::Ready(result), None) => Poll::Ready(result.err().map(Err)),
        }
    }
}

/// A connection's stream with its span: counts rows, records the error, ends with the stream.
struct TracedStream<'e, DB: Driver> {
    inner: Steps<'e, DB>,
    span: StatementSpan,
}

impl<DB: Driver> Stream for TracedStream<'_, DB> {
    type Item = Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(Either::Right(_)))) => self.span.row(),
            Poll::Ready(Some(Err(e))) => self.span.fail::<DB>(e),
            _ => {}
        }
        polled
    }
}

// ------------------------------------------------------------------------------------------
// &Pool and Retryable: statements that may run a second time

/// The connection a pool statement runs on: from the pool the first time, a fresh one
/// (outside the pool, closed after) the second.
enum Lease<DB: Database> {
    Pooled(sqlx::pool::PoolConnection<DB>),
    Fresh(DB::Connection),
}

impl<DB: Database> Lease<DB> {
    fn conn(&mut self) -> &mut DB::Connection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Fresh(conn) => conn,
        }
    }

    /// The statement is over: a pooled connection goes back to the pool (or is closed, if it
    /// died), a fresh one is closed.
    async fn release(self) {
        if let Self::Fresh(conn) = self {
            let _ = sqlx::Connection::close(conn).await;
        }
    }
}

/// The connection for attempt `attempt` (0: the pool's; then a fresh one).
async fn lease<DB: Driver>(
    shared: &Arc<Shared<DB>>,
    span: Option<&mut StatementSpan>,
    attempt: u8,
) -> Result<Lease<DB>, sqlx::Error> {
    if attempt == 0 {
        acquire(shared, span).await.map(Lease::Pooled)
    } else {
        shared.fresh().await.map(Lease::Fresh)
    }
}

/// What a pool statement needs to run a second time: kept for statements that may be retried
/// (read-only ones, and all of a [`Retryable`]).
struct Replay<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<DB::Arguments>,
    persistent: bool,
    /// The caller declared the statement safe to run twice.
    marked: bool,
}

/// Attempts a statement gets at most when each failure proves it did not run (a server
/// ending the session under it, or refusing a write while failing over): a fresh connection
/// can meet the same fate while the server is still going down.
const PROVEN_ATTEMPTS: u8 = 3;

impl<DB: Driver> Replay<DB> {
    /// Whether attempt number `made` (1: the first) failing with `error` may be answered by
    /// another: nothing reached the caller yet, and either the error proves the statement did
    /// not run (up to [`PROVEN_ATTEMPTS`]), or, once, the connection died under a statement
    /// safe to run twice.
    fn allows(&self, error: &sqlx::Error, yielded: bool, made: u8) -> bool {
        if yielded {
            return false;
        }
        let proven = refused_write(error) || DB::rolled_back(error);
        let safe_twice = connection_lost(error) && (self.marked || is_read_only(self.sql.as_str()));
        (proven && made < PROVEN_ATTEMPTS) || (safe_twice && made == 1)
    }

    fn query(&self) -> Prepared<DB> {
        Prepared {
            sql: self.sql.clone(),
            statement: self.statement.clone(),
            arguments: Some(Ok(self.arguments.clone())),
            persistent: self.persistent,
        }
    }
}

/// Takes a pool statement apart: its span (when traced), the query for the first attempt,
/// and what a second attempt needs (when one may be allowed).
fn start_pool<'q, DB: Driver, E: Execute<'q, DB>>(
    tracer: &Tracer,
    mut query: E,
    marked: bool,
) -> (Prepared<DB>, Option<Replay<DB>>, Option<StatementSpan>) {
    let arguments = query.take_arguments();
    let statement = query.statement().cloned();
    let persistent = query.persistent();
    let sql = query.sql();
    let span = tracer
        .parent()
        .map(|parent| tracer.statement(&parent, sql.as_str()));
    let replay = match &arguments {
        Ok(args) if marked || DB::SAYS_ROLLED_BACK || may_be_read_only(sql.as_str()) => {
            Some(Replay {
                sql: sql.clone(),
                statement: statement.clone(),
                arguments: args.clone(),
                persistent,
                marked,
            })
        }
        _ => None,
    };
    let first = Prepared {
        sql,
        statement,
        arguments: Some(arguments),
        persistent,
    };
    (first, replay, span)
}

/// Whether to run the statement again after `error`; if so, notes the retry on the span. A
/// connection that died is closed rather than given back, and the outage gate is told.
fn retry<DB: Driver>(
    shared: &Arc<Shared<DB>>,
    replay: &Option<Replay<DB>>,
    lease: &mut Lease<DB>,
    span: Option<&mut StatementSpan>,
    error: &sqlx::Error,
    yielded: bool,
    made: u8,
) -> Option<Prepared<DB>> {
    if connection_lost(error) {
        if let Lease::Pooled(conn) = lease {
            conn.close_on_drop();
        }
        shared.report_outage(error, Instant::now());
    }
    let replay = replay.as_ref().filter(|r| r.allows(error, yielded, made))?;
    if let Some(span) = span {
        span.retried::<DB>(error);
    }
    tracing::debug!(target: TARGET, %error, "statement runs again on a fresh connection");
    Some(replay.query())
}

fn pool_fetch_many<'e, 'q: 'e, DB: Driver, E>(
    shared: Arc<Shared<DB>>,
    query: E,
    marked: bool,
) -> Steps<'e, DB>
where
    E: 'q + Execute<'q, DB>,
{
    let (first, replay, mut span) = start_pool(&shared.tracer, query, marked);
    Box::pin(Generator::new(move |yielder| async move {
        let mut query = first;
        let mut attempt: u8 = 0;
        loop {
            let mut conn = match lease(&shared, span.as_mut(), attempt).await {
                Ok(conn) => conn,
                Err(e) => {
                    if let Some(span) = &mut span {
                        span.fail::<DB>(&e);
                    }
                    return Err(e);
                }
            };
            attempt += 1;
            let mut yielded = false;
            let outcome = {
                let mut stream = DB::fetch_many(conn.conn(), query);
                loop {
                    match stream.try_next().await {
                        Ok(Some(item)) => {
                            if let (Some(span), Either::Right(_)) = (&mut span, &item) {
                                span.row();
                            }
                            yielded = true;
                            yielder.send(item).await;
                        }
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    }
                }
            };
            let error = match outcome {
                Ok(()) => {
                    conn.release().await;
                    return Ok(());
                }
                Err(error) => error,
            };
            let again = retry(
                &shared,
                &replay,
                &mut conn,
                span.as_mut(),
                &error,
                yielded,
                attempt,
            );
            conn.release().await;
            match again {
                Some(again) => query = again,
                None => {
                    if let Some(span) = &mut span {
                        span.fail::<DB>(&error);
                    }
                    return Err(error);
                }
            }
        }
    }))
}

fn pool_fetch_optional<'e, 'q: 'e, DB: Driver, E>(
    shared: Arc<Shared<DB>>,
    query: E,
    marked: bool,
) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
where
    E: 'q + Execute<'q, DB>,
{
    let (first, replay, mut span) = start_pool(&shared.tracer, query, marked);
    Box::pin(async move {
        let mut query = first;
        let mut attempt: u8 = 0;
        let result = loop {
            let mut conn = match lease(&shared, span.as_mut(), attempt).await {
                Ok(conn) => conn,
                Err(e) => break Err(e),
            };
            attempt += 1;
            let result = DB::fetch_optional(conn.conn(), query).await;
            let again = match &result {
                Err(error) => retry(
                    &shared,
                    &replay,
                    &mut conn,
                    span.as_mut(),
                    error,
                    false,
                    attempt,
                ),
                Ok(_) => None,
            };
            conn.release().await;
            match again {
                Some(again) => query = again,
                None => break result,
            }
        };
        if let Some(span) = &mut span {
            record_optional::<DB>(span, &result);
        }
        result
    })
}

fn pool_prepare_with<'e, DB: Driver>(
    shared: Arc<Shared<DB>>,
    sql: SqlStr,
    parameters: &'e [DB::TypeInfo],
) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>> {
    let mut span = shared.tracer.statement_span(sql.as_str());
    Box::pin(async move {
        let result = async {
            let mut conn = acquire(&shared, span.as_mut()).await?;
            DB::prepare_with(&mut *conn, sql, parameters).await
        }
        .await;
        if let Some(span) = &mut span {
            record_prepare::<DB>(span, &result);
        }
        result
    })
}

fn pool_describe<'e, DB: Driver>(
    shared: Arc<Shared<DB>>,
    sql: SqlStr,
) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>> {
    // Used by the `query!` macros at compile time, not traced.
    Box::pin(async move {
        let mut conn = shared.acquire().await?;
        DB::describe(&mut *conn, sql).await
    })
}

/// The `Executor` of a pool handle: `$marked` says whether its writes may run twice.
macro_rules! pool_executor {
    ($ty:ty, $lt:lifetime, $marked:expr, $pool:ident => $shared:expr) => {
        impl<$lt, DB: Driver> Executor<$lt> for $ty {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
            where
                $lt: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let $pool = self;
                pool_fetch_many($shared, query, $marked)
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
            where
                $lt: 'e,
                E: 'q + Execute<'q, DB>,
            {
                let $pool = self;
                pool_fetch_optional($shared, query, $marked)
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [DB::TypeInfo],
            ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
            where
                $lt: 'e,
            {
                let $pool = self;
                pool_prepare_with($shared, sql, parameters)
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
            where
                $lt: 'e,
            {
                let $pool = self;
                pool_describe($shared, sql)
            }
        }
    };
}

pool_executor!(&'_ Pool<DB>, 'p, false, pool => Arc::clone(&pool.shared));
pool_executor!(Retryable<'p, DB>, 'p, true, handle => Arc::clone(&handle.pool.shared));

// ------------------------------------------------------------------------------------------
// &mut Connection (what `&mut *tx` and `&mut *conn` give)

impl<'t, 'c, DB: Driver> Executor<'t> for &'t mut Connection<'c, DB> {
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (query, span) = start(&self.shared.tracer, query);
        traced_steps::<DB>(DB::fetch_many(self.raw(), query), span)
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        't: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let (query, span) = start(&self.shared.tracer, query);
        let inner = DB::fetch_optional(self.raw(), query);
        traced_future(inner, span, record_optional::<DB>)
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        't: 'e,
    {
        let span = self.shared.tracer.statement_span(sql.as_str());
        let inner = DB::prepare_with(self.raw(), sql, parameters);
        traced_future(inner, span, record_prepare::<DB>)
    }

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        't: 'e,
    {
        DB::describe(self.raw(), sql)
    }
}

/// `&mut tx` and `&mut conn` work too (as in sqlx before 0.9), besides `&mut *tx`.
macro_rules! forward_executor {
    ($ty:ty, $($lt:lifetime),*) => {
        impl<'t, $($lt,)* DB: Driver> Executor<'t> for &'t mut $ty {
            type Database = DB;

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
            where
                't: 'e,
                E: 'q + Execute<'q, DB>,
            {
                (&mut **self).fetch_many(query)
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
            where
                't: 'e,
                E: 'q + Execute<'q, DB>,
            {
                (&mut **self).fetch_optional(query)
            }

            fn prepare_with<'e>(
                self,
                sql: SqlStr,
                parameters: &'e [DB::TypeInfo],
            ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
            where
                't: 'e,
            {
                (&mut **self).prepare_with(sql, parameters)
            }

            fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
            where
                't: 'e,
            {
                (&mut **self).describe(sql)
            }
        }
    };
}

forward_executor!(Transaction<'c, DB>, 'c);
forward_executor!(PoolConnection<DB>,);
