#[apprunner::main]
fn main() {}
