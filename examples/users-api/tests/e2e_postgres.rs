//! The users API end to end, configured the way App Runner runs it (`names` mode of the CDK
//! stack): the compiled binary gets only `DB_SECRET_NAME` (an RDS-style secret pointing at a
//! real PostgreSQL), `APPRUNNER_SECRETS=JWT_SECRET=<arn>`, the Secrets Manager emulator's
//! endpoint and credentials, the OTLP receiver's endpoint and `PORT`.
//!
//! Every request carries an App Runner-style `X-Amzn-Trace-Id`. After SIGTERM (exit 0) the test
//! checks, request by request: exactly one trace, whose SERVER root continues the header and is
//! named `{METHOD} {route}`; SQL statements as its CLIENT children, sanitized (no value from
//! the request in them); the resource naming the service, never the database; and JSON log
//! lines carrying the trace id. Secrets, passwords and hashes appear nowhere.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use apprunner_kit_tests::{Postgres, SpanKind, SpanRecord, StatusCode};
use serde_json::{Value, json};
use support::{
    AppRunnerPeers, Call, Http, Reply, Service, TraceHeader, assert_error, assert_no_password,
};

/// A request as sent, and what its trace must look like.
struct Sent {
    trace: TraceHeader,
    what: String,
    span_name: String,
    status: u16,
    /// SQL statements the request runs.
    statements: usize,
    /// Values from the request that no SQL span may contain.
    literals: Vec<String>,
}

struct Client {
    http: Http,
    base: String,
    sent: Vec<Sent>,
}

impl Client {
    /// Sends `call` with a fresh trace header; `span_name` and `statements` are what its trace
    /// must show.
    async fn send(&mut self, call: Call, span_name: &str, statements: usize) -> Reply {
        let trace = TraceHeader::new();
        let reply = self.http.send(&self.base, &call, Some(&trace)).await;
        let header = reply
            .header("x-amzn-trace-id")
            .unwrap_or_else(|| panic!("{} {}: no X-Amzn-Trace-Id", call.method, call.path));
        assert!(
            header.starts_with(&format!("Root={};Parent=", trace.xray_id())),
            "{} {}: the response names another trace: {header}",
            call.method,
            call.path
        );
        // (The OpenAPI document describes the password field of request bodies.)
        if !call.path.starts_with("/api-docs")
            && let Ok(body) = serde_json::from_slice::<Value>(&reply.body)
        {
            assert_no_password(&body);
        }
        self.sent.push(Sent {
            what: format!("{} {} -> {}", call.method, call.path, reply.status),
            span_name: span_name.to_owned(),
            status: reply.status,
            statements,
            literals: literals(&call),
            trace,
        });
        reply
    }
}

/// The strings of a request that must never reach a span: body values and path ids.
fn literals(call: &Call) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((_, body)) = &call.body
        && let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body)
    {
        for value in map.values() {
            if let Some(s) = value.as_str().filter(|s| s.len() >= 4) {
                out.push(s.to_owned());
                out.push(s.trim().to_lowercase());
            }
        }
    }
    if let Some(id) = call.path.strip_prefix("/users/") {
        out.push(id.to_owned());
    }
    out
}

fn creds(email: &str, password: &str) -> Value {
    json!({ "email": email, "password": password })
}

fn random_hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&TraceHeader::new().trace_id);
    }
    s.truncate(n);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_on_postgres_with_secrets_manager_traced_end_to_end() {
    // Real peers: PostgreSQL, Secrets Manager (moto), an OTLP receiver.
    let pg = Postgres::start();
    let db_url = url::Url::parse(&pg.create_database("users_api")).unwrap();
    let db_name = db_url.path().trim_start_matches('/').to_owned();
    let db_password = match db_url.password() {
        Some(p) => p.to_owned(),
        // Throwaway clusters trust local connections: any password works, and this one must
        // still never show up anywhere.
        None => format!("pg-{}", random_hex(24)),
    };
    let jwt_key = random_hex(64);
    let AppRunnerPeers {
        moto,
        receiver,
        db_arn,
        jwt_arn,
        mut env,
    } = AppRunnerPeers::start(&pg, &db_url, &db_password, &jwt_key).await;
    // One access log line per request, to check each carries its trace id.
    env.push(("APPRUNNER_ACCESS_LOG".into(), "all".into()));
    let dir = tempfile::tempdir().unwrap();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));
    assert_eq!(
        moto.get_secret_value_calls(&db_arn),
        1,
        "the DB secret is read once"
    );
    assert_eq!(
        moto.get_secret_value_calls(&jwt_arn),
        1,
        "the JWT key is read once"
    );

    let mut c = Client {
        http: Http::new(),
        base: service.url(""),
        sent: Vec::new(),
    };
    let ada_password = format!("ada-{}", random_hex(12));
    let bob_password = format!("bob-{}", random_hex(12));
    let robert_password = format!("robert-{}", random_hex(12));

    // --- sign up -----------------------------------------------------------------------------
    let r = c
        .send(
            Call::new("POST", "/signup").json(&creds(" Ada@Example.com ", &ada_password)),
            "POST /signup",
            1,
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let body = r.json();
    assert_eq!(body["message"], "signup");
    assert_eq!(body["data"]["email"], "ada@example.com");
    let ada_id = body["data"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.header("location"),
        Some(format!("/users/{ada_id}").as_str())
    );
    assert_eq!(
        body["data"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([
            &"created_at".to_owned(),
            &"email".to_owned(),
            &"id".to_owned(),
            &"updated_at".to_owned()
        ])
    );

    let r = c
        .send(
            Call::new("POST", "/signup").json(&creds("ADA@example.com", "another password")),
            "POST /signup",
            1,
        )
        .await;
    assert_error(&r, 409);

    // Every way a body can be wrong, none of which reaches the database.
    let cases: Vec<(Call, u16)> = vec![
        (
            Call::new("POST", "/signup").raw("application/json", "{\"email\": "),
            400,
        ),
        (
            Call::new("POST", "/signup").json(&json!({"email": 5, "password": true})),
            422,
        ),
        (
            Call::new("POST", "/signup").json(&json!({"email": "eve@example.com"})),
            422,
        ),
        (
            Call::new("POST", "/signup").json(&json!(["eve@example.com", "secret-secret"])),
            422,
        ),
        (
            Call::new("POST", "/signup").json(&creds("eve@", "long enough password")),
            422,
        ),
        (
            Call::new("POST", "/signup").json(&creds("eve@example.com", "short")),
            422,
        ),
        (
            Call::new("POST", "/signup").json(&creds("eve@example.com", &"x".repeat(129))),
            422,
        ),
        (
            Call::new("POST", "/signup")
                .raw("text/plain", creds("eve@example.com", "x").to_string()),
            415,
        ),
        (
            Call::new("POST", "/signup").json(&creds("eve@example.com", &"p".repeat(20_000))),
            413,
        ),
    ];
    for (call, status) in cases {
        let r = c.send(call, "POST /signup", 0).await;
        assert_error(&r, status);
    }

    // --- log in -------------------------------------------------------------------------------
    let r = c
        .send(
            Call::new("POST", "/login").json(&creds("ada@example.com", "not the password")),
            "POST /login",
            1,
        )
        .await;
    let wrong_password = assert_error(&r, 401);
    assert!(r.header("set-cookie").is_none());
    let r = c
        .send(
            Call::new("POST", "/login").json(&creds("nobody@example.com", &ada_password)),
            "POST /login",
            1,
        )
        .await;
    assert_eq!(
        assert_error(&r, 401),
        wrong_password,
        "unknown email and wrong password look alike"
    );

    let r = c
        .send(
            Call::new("POST", "/login").json(&creds("ada@example.com", &ada_password)),
            "POST /login",
            1,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["message"], "login");
    assert_eq!(r.json()["data"]["id"], ada_id.as_str());
    let set_cookie = r.header("set-cookie").unwrap().to_owned();
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=3600",
    ] {
        assert!(
            set_cookie.split("; ").any(|a| a == attribute),
            "{attribute} missing from {set_cookie}"
        );
    }
    let ada = r.session_cookie();
    assert!(ada.starts_with("__Host-session=ey"), "{ada}");
    let ada_token = ada.trim_start_matches("__Host-session=").to_owned();

    // --- create (needs the cookie) ------------------------------------------------------------
    let bob_body = creds("bob@example.com", &bob_password);
    let r = c
        .send(
            Call::new("POST", "/users").json(&bob_body),
            "POST /users",
            0,
        )
        .await;
    assert_error(&r, 401);
    let r = c
        .send(
            Call::new("POST", "/users")
                .json(&bob_body)
                .cookie("__Host-session=forged"),
            "POST /users",
            0,
        )
        .await;
    assert_error(&r, 401);
    let mut tampered = ada.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    let r = c
        .send(
            Call::new("POST", "/users")
                .json(&bob_body)
                .cookie(&tampered),
            "POST /users",
            0,
        )
        .await;
    assert_error(&r, 401);
    let r = c
        .send(
            Call::new("POST", "/users").json(&bob_body).cookie(&ada),
            "POST /users",
            1,
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["message"], "created");
    let bob_id = r.json()["data"]["id"].as_str().unwrap().to_owned();

    // --- read ---------------------------------------------------------------------------------
    let r = c.send(Call::new("GET", "/users"), "GET /users", 2).await;
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["message"], "findAll");
    assert_eq!(
        body["pagination"],
        json!({"page": 1, "per_page": 20, "total": 2})
    );
    let emails: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["ada@example.com", "bob@example.com"],
        "oldest first"
    );
    let r = c
        .send(
            Call::new("GET", "/users?page=2&per_page=1"),
            "GET /users",
            2,
        )
        .await;
    assert_eq!(r.json()["data"][0]["id"], bob_id.as_str());
    assert_eq!(r.json()["pagination"]["total"], 2);
    for bad in [
        "per_page=101",
        "per_page=0",
        "page=0",
        "page=-3",
        "per_page=ten",
    ] {
        let r = c
            .send(Call::new("GET", format!("/users?{bad}")), "GET /users", 0)
            .await;
        assert_error(&r, 400);
    }

    let r = c
        .send(
            Call::new("GET", format!("/users/{bob_id}")),
            "GET /users/{id}",
            1,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["message"], "findOne");
    assert_eq!(r.json()["data"]["email"], "bob@example.com");
    let unknown = "01890a5d-ac96-774b-bcce-b302099a8057";
    let r = c
        .send(
            Call::new("GET", format!("/users/{unknown}")),
            "GET /users/{id}",
            1,
        )
        .await;
    assert_eq!(assert_error(&r, 404), "user not found");
    let r = c
        .send(Call::new("GET", "/users/not-a-uuid"), "GET /users/{id}", 0)
        .await;
    assert_error(&r, 404);

    // --- only one's own account can change ----------------------------------------------------
    let new_bob = creds("robert@example.com", &robert_password);
    let r = c
        .send(
            Call::new("PUT", format!("/users/{bob_id}"))
                .json(&new_bob)
                .cookie(&ada),
            "PUT /users/{id}",
            1,
        )
        .await;
    assert_error(&r, 403);
    let r = c
        .send(
            Call::new("PUT", format!("/users/{unknown}"))
                .json(&new_bob)
                .cookie(&ada),
            "PUT /users/{id}",
            1,
        )
        .await;
    assert_error(&r, 404);
    let r = c
        .send(
            Call::new("PUT", format!("/users/{bob_id}")).json(&new_bob),
            "PUT /users/{id}",
            0,
        )
        .await;
    assert_error(&r, 401);
    let r = c
        .send(
            Call::new("DELETE", format!("/users/{bob_id}")).cookie(&ada),
            "DELETE /users/{id}",
            1,
        )
        .await;
    assert_error(&r, 403);

    let r = c
        .send(
            Call::new("POST", "/login").json(&creds("bob@example.com", &bob_password)),
            "POST /login",
            1,
        )
        .await;
    assert_eq!(r.status, 200);
    let bob = r.session_cookie();
    let r = c
        .send(
            Call::new("PUT", format!("/users/{bob_id}"))
                .json(&creds("ada@example.com", &robert_password))
                .cookie(&bob),
            "PUT /users/{id}",
            1,
        )
        .await;
    assert_error(&r, 409);
    let r = c
        .send(
            Call::new("PUT", format!("/users/{bob_id}"))
                .json(&new_bob)
                .cookie(&bob),
            "PUT /users/{id}",
            1,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["message"], "updated");
    assert_eq!(r.json()["data"]["email"], "robert@example.com");
    let r = c
        .send(
            Call::new("POST", "/login").json(&creds("robert@example.com", &robert_password)),
            "POST /login",
            1,
        )
        .await;
    assert_eq!(r.status, 200, "the new password works");
    let r = c
        .send(
            Call::new("POST", "/login").json(&creds("robert@example.com", &bob_password)),
            "POST /login",
            1,
        )
        .await;
    assert_error(&r, 401);

    // --- delete -------------------------------------------------------------------------------
    let r = c
        .send(
            Call::new("DELETE", format!("/users/{bob_id}")).cookie(&bob),
            "DELETE /users/{id}",
            1,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["message"], "deleted");
    assert_eq!(r.json()["data"]["id"], bob_id.as_str());
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = c
        .send(
            Call::new("DELETE", format!("/users/{bob_id}")).cookie(&bob),
            "DELETE /users/{id}",
            1,
        )
        .await;
    assert_error(&r, 404);
    let r = c
        .send(
            Call::new("GET", format!("/users/{bob_id}")),
            "GET /users/{id}",
            1,
        )
        .await;
    assert_error(&r, 404);

    // --- log out, the rest ----------------------------------------------------------------------
    let r = c
        .send(Call::new("POST", "/logout").cookie(&ada), "POST /logout", 0)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"data": null, "message": "logout"}));
    assert!(
        r.header("set-cookie")
            .unwrap()
            .starts_with("__Host-session=;")
    );

    let r = c.send(Call::new("GET", "/nowhere"), "GET", 0).await;
    assert_eq!(assert_error(&r, 404), "route not found");
    let r = c
        .send(Call::new("PATCH", "/users"), "PATCH /users", 0)
        .await;
    assert_error(&r, 405);
    // The API docs are served outside the tracing layer, like the health check.
    let docs_trace = TraceHeader::new();
    let docs = Call::new("GET", "/api-docs/openapi.json");
    let r = c.http.send(&c.base, &docs, Some(&docs_trace)).await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/signup",
        "/login",
        "/logout",
        "/users",
        "/users/{id}",
        "/healthz",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is not documented");
    }

    // The health check answers without a span (and without the database).
    let health_trace = TraceHeader::new();
    let r = c
        .http
        .send(&c.base, &Call::new("GET", "/healthz"), Some(&health_trace))
        .await;
    assert_eq!(r.status, 200);

    // --- SIGTERM right after a last request: exit 0, nothing lost ---------------------------
    let r = c.send(Call::new("GET", "/users"), "GET /users", 2).await;
    assert_eq!(r.status, 200);
    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        service.output()
    );

    let spans = receiver.spans();
    check_traces(&c.sent, &spans, &db_name, pg.port(), &service.output());
    for (untraced, what) in [(&health_trace, "health check"), (&docs_trace, "API docs")] {
        let made = spans.iter().any(|s| s.trace_id == untraced.trace_id);
        assert!(!made, "the {what} made a span");
    }

    // Log lines carry the trace ids (APPRUNNER_ACCESS_LOG=all: one line per request).
    let logs = service.logs();
    for sent in &c.sent {
        let id = sent.trace.xray_id();
        assert!(
            logs.iter().any(|l| l["trace_id"] == id.as_str()
                && l["target"] == "apprunner::http::access"
                && l["service.name"] == "users-api"
                && l["http.response.status_code"] == sent.status),
            "no log line with trace id {id} for {}",
            sent.what
        );
    }
    assert!(
        !service.output().contains("spans lost"),
        "telemetry lost spans:\n{}",
        service.output()
    );

    // No secret, password, hash or token anywhere in the output or the spans.
    let output = service.output();
    let span_text = format!("{spans:?}");
    for secret in [
        jwt_key.as_str(),
        db_password.as_str(),
        ada_password.as_str(),
        bob_password.as_str(),
        robert_password.as_str(),
        ada_token.as_str(),
        "$argon2",
    ] {
        assert!(
            !output.contains(secret),
            "{secret:?} is in the service's output"
        );
        assert!(!span_text.contains(secret), "{secret:?} is in a span");
    }
}

/// The per-request trace assertions (see the file's docs).
fn check_traces(sent: &[Sent], spans: &[SpanRecord], db_name: &str, db_port: u16, output: &str) {
    let mut by_trace: BTreeMap<&str, Vec<&SpanRecord>> = BTreeMap::new();
    for span in spans {
        by_trace
            .entry(span.trace_id.as_str())
            .or_default()
            .push(span);
    }
    let sent_ids: BTreeSet<&str> = sent.iter().map(|s| s.trace.trace_id.as_str()).collect();

    // Besides the requests' traces, only the start-up trace of the secrets bootstrap.
    let others: Vec<_> = by_trace
        .iter()
        .filter(|(id, _)| !sent_ids.contains(*id))
        .collect();
    assert_eq!(others.len(), 1, "traces not made by a request: {others:#?}");
    let (_, bootstrap) = others[0];
    let root: Vec<_> = bootstrap.iter().filter(|s| s.is_root()).collect();
    assert_eq!(root.len(), 1);
    assert_eq!(root[0].name, "secrets bootstrap");
    // An X-Ray local root named after the service (see e2e_service_map.rs).
    assert_eq!(root[0].attr_str("aws.span.kind"), Some("LOCAL_ROOT"));
    assert_eq!(root[0].attr_str("aws.local.service"), Some("users-api"));
    assert!(
        bootstrap.iter().all(|s| s.attr("db.system.name").is_none()),
        "a statement ran outside any request: {bootstrap:#?}"
    );

    for span in spans {
        assert_eq!(
            span.resource_str("service.name"),
            Some("users-api"),
            "{}",
            span.summary()
        );
        for (key, value) in &span.resource {
            let value = value.to_string();
            assert!(
                !value.contains(db_name) && !value.contains(&db_port.to_string()),
                "resource attribute {key}={value} names the database"
            );
        }
    }

    for s in sent {
        let trace = by_trace
            .get(s.trace.trace_id.as_str())
            .unwrap_or_else(|| panic!("no span for {}\n{output}", s.what));
        let servers: Vec<_> = trace
            .iter()
            .filter(|x| x.kind == SpanKind::Server)
            .collect();
        assert_eq!(servers.len(), 1, "{}: {trace:#?}", s.what);
        let server = servers[0];
        assert_eq!(server.name, s.span_name, "{}", s.what);
        assert_eq!(
            server.parent_span_id.as_deref(),
            Some(s.trace.parent.as_str()),
            "{}: the SERVER span does not continue X-Amzn-Trace-Id",
            s.what
        );
        assert_eq!(
            server.attr_i64("http.response.status_code"),
            Some(i64::from(s.status)),
            "{}",
            s.what
        );
        let expected_status = if s.status >= 500 {
            StatusCode::Error
        } else {
            StatusCode::Unset
        };
        assert_eq!(server.status.code, expected_status, "{}", s.what);

        let ids: BTreeSet<&str> = trace.iter().map(|x| x.span_id.as_str()).collect();
        for span in trace.iter().filter(|x| x.span_id != server.span_id) {
            let parent = span.parent_span_id.as_deref().unwrap_or("-");
            assert!(
                ids.contains(parent),
                "{}: {} is detached",
                s.what,
                span.summary()
            );
        }

        let statements: Vec<_> = trace
            .iter()
            .filter(|x| x.attr("db.system.name").is_some())
            .collect();
        assert_eq!(
            statements.len(),
            s.statements,
            "{}: statements {:#?}",
            s.what,
            statements.iter().map(|x| x.summary()).collect::<Vec<_>>()
        );
        for statement in statements {
            assert_eq!(statement.kind, SpanKind::Client, "{}", statement.summary());
            assert_eq!(
                statement.parent_span_id.as_deref(),
                Some(server.span_id.as_str()),
                "{}: a statement is not a child of the request",
                s.what
            );
            assert_eq!(statement.attr_str("db.system.name"), Some("postgresql"));
            assert_eq!(statement.attr_str("db.namespace"), Some(db_name));
            let text = statement.attr_str("db.query.text").unwrap_or_else(|| {
                panic!("{}: no db.query.text on {}", s.what, statement.summary())
            });
            assert!(text.contains("users"), "{text}");
            for (key, value) in &statement.attributes {
                let value = value.to_string();
                for literal in &s.literals {
                    assert!(
                        !value.contains(literal.as_str()),
                        "{}: {key} carries {literal:?} from the request: {value}",
                        s.what
                    );
                }
            }
        }
        if s.status == 409 {
            let failed = trace
                .iter()
                .find(|x| x.attr("db.system.name").is_some())
                .unwrap();
            assert_eq!(failed.status.code, StatusCode::Error);
            assert_eq!(failed.attr_str("db.response.status_code"), Some("23505"));
        }
    }
}

/// The CDK stack's default (`runtime` mode): App Runner injects the RDS secret's JSON into
/// `DB_SECRET` and the key into `JWT_SECRET`. No Secrets Manager, no AWS settings at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_api_on_postgres_with_injected_secrets() {
    let pg = Postgres::start();
    let db_url = url::Url::parse(&pg.create_database("users_api_runtime")).unwrap();
    let db_secret = json!({
        "username": db_url.username(),
        "password": db_url.password().unwrap_or("not-checked-by-trust-auth"),
        "host": pg.host(),
        "port": pg.port(),
        "dbname": db_url.path().trim_start_matches('/'),
        "engine": "postgres",
    });
    let env = vec![
        ("DB_SECRET".to_owned(), db_secret.to_string()),
        ("JWT_SECRET".to_owned(), random_hex(64)),
        ("OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));
    let http = Http::new();
    let base = service.url("");
    let body = creds("ada@example.com", "injected secrets");
    let r = http
        .send(&base, &Call::new("POST", "/signup").json(&body), None)
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = http
        .send(&base, &Call::new("POST", "/login").json(&body), None)
        .await;
    assert_eq!(r.status, 200);
    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(status.success(), "exit {status}:\n{}", service.output());
    let output = service.output();
    assert!(!output.contains("injected secrets"));
    assert!(!output.contains(&db_secret.to_string()));
}
