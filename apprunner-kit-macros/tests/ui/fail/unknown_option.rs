#[apprunner::main(service = "a", port = 8080)]
async fn main() {}
