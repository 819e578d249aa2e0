use axum::{Router, routing::get};

#[apprunner::main(service = "hello")]
async fn main() -> apprunner::Result<Router> {
    // trybuild runs pass cases: stop the server the way App Runner does, with SIGTERM.
    std::thread::spawn(|| {
        std::thread::sleep(std::time::Duration::from_millis(500));
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
    });
    Ok(Router::new().route("/", get(|| async { "hello" })))
}
