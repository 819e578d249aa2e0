#[apprunner::main(service = "worker", crate = ::apprunner)]
pub async fn main(cx: apprunner::AppContext, _unused: apprunner::AppContext) -> Result<(), std::io::Error> {
    assert_eq!(cx.service_name(), "worker");
    Ok(())
}
