#[apprunner::main]
async fn main<T: Default>() {}
