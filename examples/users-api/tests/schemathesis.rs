//! Property-based API testing: schemathesis (PyPI, pinned in `scripts/requirements-test.txt`,
//! installed into `.test-env/venv` by `./scripts/test`) generates requests from the service's
//! own `/api-docs/openapi.json` — valid and invalid ones — against the binary on PostgreSQL,
//! logged in through the session cookie, and checks that no answer is a 5xx and that every
//! answer conforms to the document.
//!
//! schemathesis is found at `$APPRUNNER_TEST_SCHEMATHESIS`, else `.test-env/venv/bin/schemathesis`,
//! else on `PATH`. Without it the test fails and says how to install it.

mod support;

use std::path::PathBuf;
use std::process::Command;

use apprunner_kit_tests::Postgres;
use serde_json::json;
use support::{Call, Http, Service};

/// Examples per operation and phase: enough to find the edge cases, bounded so that the run
/// takes well under two minutes on two cores.
const MAX_EXAMPLES: &str = "40";

fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("APPRUNNER_TEST_SCHEMATHESIS").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-env/venv/bin/schemathesis");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("schemathesis"))
        .find(|candidate| candidate.exists());
    on_path.unwrap_or_else(|| {
        panic!(
            "schemathesis not found: run ./scripts/test (it installs scripts/requirements-test.txt \
             into .test-env/venv), or `pip install schemathesis==4.32.5` and set \
             APPRUNNER_TEST_SCHEMATHESIS to its path"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let program = schemathesis();
    let pg = Postgres::start();
    let database_url = pg.create_database("users_api_schemathesis");
    let env = vec![
        ("DATABASE_URL".to_owned(), database_url),
        ("JWT_SECRET".to_owned(), "k".repeat(48)),
        ("OTEL_TRACES_EXPORTER".to_owned(), "none".to_owned()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));

    // Log in, so the routes behind the cookie are exercised beyond their 401.
    let http = Http::new();
    let base = service.url("");
    let creds = json!({"email": "fuzz@example.com", "password": "fuzzing password"});
    let r = http
        .send(&base, &Call::new("POST", "/signup").json(&creds), None)
        .await;
    assert_eq!(r.status, 201);
    let r = http
        .send(&base, &Call::new("POST", "/login").json(&creds), None)
        .await;
    assert_eq!(r.status, 200);
    let cookie = r.session_cookie();

    let reports = tempfile::tempdir().unwrap();
    let output = tokio::task::block_in_place(|| {
        Command::new(&program)
            .arg("run")
            .arg(service.url("/api-docs/openapi.json"))
            .args(["--checks", "not_a_server_error,response_schema_conformance"])
            .args(["--max-examples", MAX_EXAMPLES])
            .args(["--workers", "2"])
            .args(["--request-timeout", "10"])
            .args(["--header", &format!("Cookie: {cookie}")])
            .args(["--report-dir", &reports.path().display().to_string()])
            .current_dir(reports.path())
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\n{}",
        output.status,
        service.output()
    );
    // It really tested every operation of the document (`Selected: 9/9`, `Tested: 9`).
    let number_after = |label: &str| -> Option<String> {
        let line = stdout.lines().find(|l| l.trim_start().starts_with(label))?;
        Some(line.trim_start()[label.len()..].trim().to_owned())
    };
    let selected = number_after("Selected:").unwrap_or_default();
    let tested = number_after("Tested:").unwrap_or_default();
    let (picked, total) = selected.split_once('/').unwrap_or(("", "-"));
    assert!(
        !tested.is_empty() && tested != "0" && picked == total && tested == total,
        "schemathesis did not test every operation (selected {selected:?}, tested {tested:?}):\n{stdout}"
    );
}
