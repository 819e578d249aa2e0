//! The API docs page in a real browser: headless Chromium driven over WebDriver (chromedriver,
//! through `fantoccini`), against the binary in local mode with nothing configured.
//!
//! It loads `/api-docs`, waits for Swagger UI to list the operations, checks that every
//! operation of the OpenAPI document is shown, runs "Try it out" on `GET /users`, checks the
//! page shows the `200`, and checks that the call's SERVER span was printed on the service's
//! terminal. Screenshots are kept under `target/tmp/users-api-browser/` (`CARGO_TARGET_TMPDIR`):
//! `api-docs-list.png` (the operations listed) and `api-docs.png` (the tried call's answer).
//!
//! Chromium is found at `APPRUNNER_TEST_CHROMIUM` or `/usr/bin/chromium`, chromedriver at
//! `APPRUNNER_TEST_CHROMEDRIVER` or `/usr/bin/chromedriver` (Debian's `chromium` and
//! `chromium-driver` packages, which `./scripts/test` installs). When they are missing the test
//! fails under `CI=true`, and otherwise passes after saying on standard error that it did not
//! run.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use support::{Call, Http, Service};

const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The executable named by `var`, else `default`, if it exists.
fn tool(var: &str, default: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found (set {var}, or install Debian's chromium and chromium-driver packages; \
             ./scripts/test does)",
            path.display()
        ))
    }
}

/// chromedriver on a free local port, stopped on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start(chromedriver: &Path) -> Self {
        let port = apprunner_kit_tests::free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver = Self { child, port };
        let deadline = Instant::now() + PAGE_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A headless Chromium session.
async fn browser(driver: &Driver, chromium: &Path, profile: &Path) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                // Containers run tests as root, where Chromium's sandbox cannot start.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--window-size=1280,1800",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url())
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Polls `script` (a JavaScript function body) until it returns something truthy.
async fn wait_for_js(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        let value = client.execute(script, Vec::new()).await.expect(what);
        let ready = match &value {
            Value::Null | Value::Bool(false) => false,
            Value::Array(items) => !items.is_empty(),
            Value::String(text) => !text.is_empty(),
            _ => true,
        };
        if ready {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[allow(clippy::print_stderr)]
fn tools_or_skip() -> Option<(PathBuf, PathBuf)> {
    let found = tool("APPRUNNER_TEST_CHROMIUM", "/usr/bin/chromium").and_then(|chromium| {
        tool("APPRUNNER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver").map(|d| (chromium, d))
    });
    match found {
        Ok(tools) => Some(tools),
        Err(missing) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("the browser test cannot run under CI=true: {missing}")
        }
        Err(missing) => {
            eprintln!("SKIPPED the browser test of /api-docs: {missing}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_docs_page_lists_every_operation_and_tries_one() {
    let Some((chromium, chromedriver)) = tools_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &[]));

    // What the page must show: every operation of the document.
    let http = Http::new();
    let r = http
        .send(
            &service.url(""),
            &Call::new("GET", "/api-docs/openapi.json"),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let doc = r.json();
    let mut expected: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    expected.sort();
    assert!(expected.len() >= 9, "{expected:?}");

    let driver = tokio::task::block_in_place(|| Driver::start(&chromedriver));
    let profile = tempfile::tempdir().unwrap();
    let client = browser(&driver, &chromium, profile.path()).await;

    // `/api-docs` redirects to `/api-docs/`, whose Swagger UI loads the document.
    client.goto(&service.url("/api-docs")).await.unwrap();
    let shown = wait_for_js(
        &client,
        "the operations to be listed",
        "return [...document.querySelectorAll('.opblock')].map(op => \
           op.querySelector('.opblock-summary-method').textContent.trim() + ' ' + \
           op.querySelector('.opblock-summary-path').getAttribute('data-path'));",
    )
    .await;
    let mut shown: Vec<String> = serde_json::from_value(shown).unwrap();
    shown.sort();
    assert_eq!(shown, expected, "the page does not list every operation");
    let title = client.title().await.unwrap();
    assert_eq!(title, "Swagger UI");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("users-api-browser");
    std::fs::create_dir_all(&shots).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(shots.join("api-docs-list.png"), &png).unwrap();

    // "Try it out" on GET /users: expand it, try it out, execute.
    let list_users = client
        .find(Locator::XPath(
            "//div[contains(@class,'opblock-get')][.//*[contains(@class,'opblock-summary-path') \
             and @data-path='/users']]",
        ))
        .await
        .expect("GET /users on the page");
    list_users
        .find(Locator::Css(".opblock-summary-control"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let try_it_out = wait_for_element(&list_users, ".try-out__btn").await;
    try_it_out.click().await.unwrap();
    let execute = wait_for_element(&list_users, ".execute").await;
    execute.click().await.unwrap();
    let status = wait_for_js(
        &client,
        "the live response",
        "const cell = document.querySelector(\
           '.opblock-get .live-responses-table .response .response-col_status'); \
         return cell ? cell.textContent.trim() : '';",
    )
    .await;
    assert_eq!(status, "200", "the page shows another status");
    let body = wait_for_js(
        &client,
        "the response body",
        "const body = document.querySelector(\
           '.opblock-get .live-responses-table .response-col_description pre'); \
         return body ? body.textContent : '';",
    )
    .await;
    let body: Value = serde_json::from_str(body.as_str().unwrap()).expect("a JSON body shown");
    assert_eq!(body["message"], "findAll");

    // Keep a picture of it, the response in view.
    client
        .execute(
            "document.querySelector('.opblock-get .live-responses-table')\
               .scrollIntoView({block: 'center'});",
            Vec::new(),
        )
        .await
        .unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(shots.join("api-docs.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "not a PNG screenshot");
    client.close().await.unwrap();

    // The call made in the page shows as a span on the service's terminal (local mode prints
    // spans with nothing configured), and the page itself made none.
    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(status.success(), "exit {status}:\n{}", service.output());
    let output = service.output();
    assert!(
        output.contains("SERVER GET /users"),
        "the tried call's span was not printed:\n{output}"
    );
    assert!(
        !output.contains("/api-docs"),
        "the docs page made spans or log lines:\n{output}"
    );
}

/// Waits for the first element under `parent` matching `css`.
async fn wait_for_element(
    parent: &fantoccini::elements::Element,
    css: &str,
) -> fantoccini::elements::Element {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        if let Ok(element) = parent.find(Locator::Css(css)).await {
            return element;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
