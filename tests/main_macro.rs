//! `#[apprunner::main]` end to end: the `macro-service` binary (a pool parameter, migrations,
//! a returned router) boots with only `DB_SECRET_NAME` and the emulator/receiver endpoints,
//! against real PostgreSQL, moto and an OTLP receiver; then SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apprunner_kit_tests::{OtlpReceiver, Postgres, SecretsEmulator, SpanKind, free_port};

const WAIT: Duration = Duration::from_secs(60);
const TRACE_HEADER: &str =
    "Root=1-6740a1b2-0123456789abcdef01234567;Parent=1111222233334444;Sampled=1";

/// A minimal blocking HTTP/1.1 GET: (status, headers, body).
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad response: {raw}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

#[test]
fn a_macro_service_boots_from_secrets_serves_traced_requests_and_drains_on_sigterm() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = Postgres::start();
    let db_url = pg.create_database("macro_service");
    let db_name = db_url.rsplit('/').next().unwrap().to_owned();
    let moto = SecretsEmulator::start();
    let secret = serde_json::json!({
        "engine": "postgres",
        "host": pg.host(),
        "port": pg.port(),
        "username": "postgres",
        "password": "unused-with-trust-auth",
        "dbname": db_name,
    })
    .to_string();
    rt.block_on(moto.create_secret("macro-service/db", &secret));
    let receiver = OtlpReceiver::start_blocking();
    let port = free_port();

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_macro-service"));
    for (key, _) in std::env::vars() {
        if key.starts_with("OTEL_")
            || key.starts_with("AWS_")
            || key.starts_with("DB_")
            || key == "DATABASE_URL"
        {
            cmd.env_remove(key);
        }
    }
    cmd.envs(moto.env())
        .env("DB_SECRET_NAME", "macro-service/db")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
        .env("APPRUNNER_LOG_FORMAT", "json")
        .env("PORT", port.to_string())
        .stdout(Stdio::piped());
    let mut child = cmd.spawn().expect("start macro-service");
    let (tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut logs: Vec<serde_json::Value> = Vec::new();
    let wait_for_log = |message: &str, logs: &mut Vec<serde_json::Value>| {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(found) = logs.iter().find(|l| l["message"] == message) {
                return found.clone();
            }
            match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => logs.push(
                    serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}")),
                ),
                Err(_) => panic!("no log line {message:?}; got {logs:#?}"),
            }
        }
    };
    wait_for_log("listening", &mut logs);

    // The pool came from the secret, and the migrations ran: the route works.
    let (status, headers, body) = get(port, "/visits/home", &[("X-Amzn-Trace-Id", TRACE_HEADER)]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "1");
    let echoed = headers
        .iter()
        .find(|(k, _)| k == "x-amzn-trace-id")
        .map(|(_, v)| v.clone());
    assert!(
        echoed
            .unwrap_or_default()
            .contains("Root=1-6740a1b2-0123456789abcdef01234567")
    );
    let (status, _, body) = get(port, "/visits/home", &[]);
    assert_eq!((status, body.as_str()), (200, "2"));
    let visit_log = wait_for_log("visit recorded", &mut logs);

    // SIGTERM: drain, flush, exit 0.
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "macro-service did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");

    // Every span arrived, before the process exited.
    let spans = receiver.spans();
    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .collect();
    assert_eq!(server.len(), 2, "{spans:#?}");
    let first = server
        .iter()
        .find(|s| s.trace_id == "6740a1b20123456789abcdef01234567")
        .expect("the request continuing the X-Amzn-Trace-Id");
    assert_eq!(first.name, "GET /visits/{name}");
    assert_eq!(first.parent_span_id.as_deref(), Some("1111222233334444"));
    let sql: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client && s.trace_id == first.trace_id)
        .collect();
    assert_eq!(sql.len(), 2, "{spans:#?}");
    for span in &sql {
        assert_eq!(span.parent_span_id.as_deref(), Some(first.span_id.as_str()));
        assert_eq!(span.attr_str("db.system.name"), Some("postgresql"));
        assert!(
            !span
                .attr_str("db.query.text")
                .unwrap_or_default()
                .contains("home")
        );
    }
    // Start-up: the secret fetch, replayed once telemetry was up.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "SecretsManager.GetSecretValue"
                && s.kind == SpanKind::Client
                && s.attr_str("rpc.service") == Some("SecretsManager")),
        "{spans:#?}"
    );
    for span in &spans {
        assert_eq!(span.resource_str("service.name"), Some("macro-service"));
    }
    // The log line written inside the first request carries its trace id.
    assert_eq!(visit_log["trace_id"], "1-6740a1b2-0123456789abcdef01234567");
    assert_eq!(visit_log["trace_id"], first.xray_trace_id());
    drop(pg);
}
