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
use super::instrument::{StatementSpan, Tracer};
use super::pool::Pool;
use super::shared::Shared;

/// A query taken apart so its SQL can be read before it runs.
struct Prepared<DB: Database> {
    sql: SqlStr,
    statement: Option<DB::Statement>,
    arguments: Option<Result<Option<DB::Arguments>, BoxDynError>>,
    persistent: bool,
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
    shared: &Shared<DB>,
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
// &Pool

impl<DB: Driver> Pool<DB> {
    fn shared(&self) -> Arc<Shared<DB>> {
        Arc::clone(&self.shared)
    }
}

impl<'p, DB: Driver> Executor<'p> for &'_ Pool<DB> {
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let shared = self.shared();
        let (query, mut span) = start(&shared.tracer, query);
        Box::pin(Generator::new(move |yielder| async move {
            let mut conn = match acquire(&shared, span.as_mut()).await {
                Ok(conn) => conn,
                Err(e) => {
                    if let Some(span) = &mut span {
                        span.fail::<DB>(&e);
                    }
                    return Err(e);
                }
            };
            let mut stream = traced_steps::<DB>(DB::fetch_many(&mut *conn, query), span);
            while let Some(item) = stream.try_next().await? {
                yielder.send(item).await;
            }
            Ok(())
        }))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        'p: 'e,
        E: 'q + Execute<'q, DB>,
    {
        let shared = self.shared();
        let (query, mut span) = start(&shared.tracer, query);
        Box::pin(async move {
            let result = async {
                let mut conn = acquire(&shared, span.as_mut()).await?;
                DB::fetch_optional(&mut *conn, query).await
            }
            .await;
            if let Some(span) = &mut span {
                record_optional::<DB>(span, &result);
            }
            result
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement, sqlx::Error>>
    where
        'p: 'e,
    {
        let shared = self.shared();
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

    fn describe<'e>(self, sql: SqlStr) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>>
    where
        'p: 'e,
    {
        // Used by the `query!` macros at compile time, not traced.
        let shared = self.shared();
        Box::pin(async move {
            let mut conn = shared.acquire().await?;
            DB::describe(&mut *conn, sql).await
        })
    }
}

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
