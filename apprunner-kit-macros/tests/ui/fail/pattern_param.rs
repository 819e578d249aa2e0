#[apprunner::main]
async fn main((a, b): (apprunner::AppContext, apprunner::AppContext)) {
    let _ = (a, b);
}
