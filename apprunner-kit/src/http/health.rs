//! A health route for App Runner's HTTP health check.

use std::{fmt, future::Future, pin::Pin, sync::Arc};

use axum::{
    Json, Router,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};

type Check =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// `GET /health` answering `200 {"status":"ok"}` without any I/O.
///
/// App Runner calls the health check every few seconds. A check that queried the database would
/// keep an Aurora Serverless cluster from ever pausing (and answer "unhealthy" while it resumes,
/// getting the instance replaced for nothing), so the default check only says the process serves
/// HTTP. Use [`HealthRoute::check`] to opt into a deeper check.
///
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .merge(apprunner::http::health_route());
/// ```
pub fn health_route<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    HealthRoute::new().into_router()
}

/// A configurable health route: its path and an optional check.
///
/// Give it to [`Server::health_route`](super::Server::health_route) to serve it outside the
/// [`TraceLayer`](super::TraceLayer) and the request timeout: App Runner's health checks then
/// make no spans. Merged into your own router instead, it is traced like any other route.
///
/// ```
/// use apprunner::http::HealthRoute;
///
/// # async fn ping_database() -> Result<(), std::io::Error> { Ok(()) }
/// let health = HealthRoute::new()
///     .path("/healthz")
///     // Runs on every health check: this keeps the database awake.
///     .check(|| async { ping_database().await });
/// let app: axum::Router = axum::Router::new().merge(health.into_router());
/// ```
#[derive(Clone)]
pub struct HealthRoute {
    path: String,
    check: Option<Check>,
}

impl HealthRoute {
    /// `GET /health`, answering `200` without any check.
    pub fn new() -> Self {
        Self {
            path: "/health".to_owned(),
            check: None,
        }
    }

    /// Serves the route at `path` (must start with `/`) instead of `/health`.
    ///
    /// ```
    /// let health = apprunner::http::HealthRoute::new().path("/ping");
    /// # let _ = health;
    /// ```
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Runs `check` on every health request: `Ok` answers `200 {"status":"ok"}`, `Err` answers
    /// `503 {"status":"unavailable"}` and logs the error at WARN (the error is not sent to the
    /// caller: the route is public).
    ///
    /// ```
    /// let health = apprunner::http::HealthRoute::new()
    ///     .check(|| async { Err::<(), _>("database unreachable") });
    /// # let _ = health;
    /// ```
    pub fn check<F, Fut, E>(mut self, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        self.check = Some(Arc::new(move || {
            let checking = check();
            Box::pin(async move { checking.await.map_err(|error| error.to_string()) })
        }));
        self
    }

    /// The route as an axum router, to merge into yours.
    ///
    /// ```
    /// let app: axum::Router = apprunner::http::HealthRoute::new().into_router();
    /// # let _ = app;
    /// ```
    pub fn into_router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let check = self.check;
        Router::new().route(
            &self.path,
            get(move || {
                let check = check.clone();
                async move { answer(check).await }
            }),
        )
    }
}

async fn answer(check: Option<Check>) -> Response {
    let result = match check {
        Some(check) => check().await,
        None => Ok(()),
    };
    match result {
        Ok(()) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Err(error) => {
            tracing::warn!(target: "apprunner::http", %error, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({ "status": "unavailable" })),
            )
                .into_response()
        }
    }
}

impl Default for HealthRoute {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HealthRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthRoute")
            .field("path", &self.path)
            .field("check", &self.check.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use tower::ServiceExt as _;

    async fn get_status(router: Router, path: &str) -> (StatusCode, serde_json::Value) {
        let request = http::Request::get(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = to_bytes(response.into_body(), 1024).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn default_route_answers_ok_without_a_check() {
        let (status, body) = get_status(health_route(), "/health").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["status"], "ok");
    }

    #[tokio::test]
    async fn failing_check_answers_503_without_the_error_text() {
        let router = HealthRoute::new()
            .path("/ready")
            .check(|| async { Err::<(), _>("password=hunter2 rejected") })
            .into_router();
        let (status, body) = get_status(router, "/ready").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, serde_json::json!({ "status": "unavailable" }));
    }
}
