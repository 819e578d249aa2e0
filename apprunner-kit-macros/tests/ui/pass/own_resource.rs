struct Greeting(String);

impl apprunner::FromContext for Greeting {
    async fn from_context(cx: &apprunner::AppContext) -> apprunner::Result<Self> {
        Ok(Greeting(format!("hello from {}", cx.service_name())))
    }
}

#[apprunner::main]
async fn main(greeting: Greeting) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    assert!(greeting.0.starts_with("hello"));
    Ok(())
}
