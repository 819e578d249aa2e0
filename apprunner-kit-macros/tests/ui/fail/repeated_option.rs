#[apprunner::main(service = "a", service = "b")]
async fn main() {}
