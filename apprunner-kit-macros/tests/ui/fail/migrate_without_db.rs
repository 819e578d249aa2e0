#[apprunner::main(migrate = "migrations")]
async fn main() {}
