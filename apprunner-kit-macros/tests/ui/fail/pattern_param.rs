#[apprunner::main]
async fn main((a, b): (apprunner::Context, apprunner::Context)) {
    let _ = (a, b);
}
