//! The local default: `cargo run -p users-api` on a machine with no database server and no AWS.
//! The binary runs with an empty environment (plus `PORT` and `HOST=127.0.0.1`) in an empty
//! directory: it creates `users.db`, applies the migrations, makes up a JWT key (saying so,
//! without the key), serves the API and prints its spans readably on standard error, with no
//! exporter setting (local mode shows its spans); successful requests write no log line; a
//! restart keeps the data but not the logins, and an explicit `OTEL_TRACES_EXPORTER` wins.

mod support;

use serde_json::json;
use support::{Call, Http, Service, assert_error, assert_no_password};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_on_sqlite_with_nothing_configured() {
    let dir = tempfile::tempdir().unwrap();
    let env = Vec::new();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));
    assert!(
        dir.path().join("users.db").exists(),
        "no users.db in the working directory"
    );
    let logs = service.logs();
    assert!(
        logs.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("JWT_SECRET is not set"))),
        "the generated key is not announced:\n{}",
        service.output()
    );

    let http = Http::new();
    let base = service.url("");
    let creds = json!({"email": "ada@example.com", "password": "local password"});
    let r = http
        .send(&base, &Call::new("POST", "/signup").json(&creds), None)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_no_password(&r.json());
    let ada_id = r.json()["data"]["id"].as_str().unwrap().to_owned();
    let r = http
        .send(&base, &Call::new("POST", "/login").json(&creds), None)
        .await;
    assert_eq!(r.status, 200);
    let cookie = r.session_cookie();

    let bob = json!({"email": "bob@example.com", "password": "bob's password"});
    let r = http
        .send(
            &base,
            &Call::new("POST", "/users").json(&bob).cookie(&cookie),
            None,
        )
        .await;
    assert_eq!(r.status, 201);
    let r = http.send(&base, &Call::new("GET", "/users"), None).await;
    assert_eq!(r.json()["pagination"]["total"], 2);
    let r = http
        .send(
            &base,
            &Call::new("PUT", format!("/users/{ada_id}"))
                .json(&json!({"email": "ada@example.org", "password": "local password 2"}))
                .cookie(&cookie),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["data"]["email"], "ada@example.org");
    let r = http
        .send(
            &base,
            &Call::new("PUT", format!("/users/{ada_id}"))
                .json(&json!({"email": "bob@example.com", "password": "local password 2"}))
                .cookie(&cookie),
            None,
        )
        .await;
    assert_error(&r, 409);

    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(status.success(), "exit {status}:\n{}", service.output());

    // The console exporter printed the spans: the request, and its SQL on SQLite.
    let output = service.output();
    for expected in [
        "SERVER POST /signup",
        "SERVER PUT /users/{id}",
        "CLIENT INSERT users",
        "db.system.name=sqlite",
    ] {
        assert!(
            output.contains(expected),
            "{expected:?} not printed:\n{output}"
        );
    }
    for secret in ["local password", "bob's password", "$argon2"] {
        assert!(!output.contains(secret), "{secret:?} printed:\n{output}");
    }

    // No log line per request: only failed, slow or rejected ones.
    let access: Vec<_> = service
        .logs()
        .into_iter()
        .filter(|l| l["target"] == "apprunner::http::access")
        .collect();
    assert!(
        access
            .iter()
            .all(|l| l["http.response.status_code"].as_u64().unwrap() >= 400),
        "successful requests were logged: {access:#?}"
    );
    assert!(
        !output.contains("request served"),
        "a per-request line:\n{output}"
    );

    // A restart keeps the users (the migrations are applied once) but not the logins: the key
    // was made for the previous run. An explicit exporter wins over local mode's console.
    let env = vec![("OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned())];
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));
    let base = service.url("");
    let r = http.send(&base, &Call::new("GET", "/users"), None).await;
    assert_eq!(r.json()["pagination"]["total"], 2);
    let r = http
        .send(
            &base,
            &Call::new("DELETE", format!("/users/{ada_id}")).cookie(&cookie),
            None,
        )
        .await;
    assert_error(&r, 401);
    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(status.success(), "exit {status}:\n{}", service.output());
    let output = service.output();
    assert!(
        !output.contains("SERVER GET /users"),
        "OTEL_TRACES_EXPORTER=none printed spans:\n{output}"
    );
}
