#[apprunner::main(service = "worker", crate = ::apprunner)]
pub async fn main(cx: apprunner::Context, _unused: apprunner::Context) -> Result<(), std::io::Error> {
    assert_eq!(cx.service_name(), "worker");
    Ok(())
}
