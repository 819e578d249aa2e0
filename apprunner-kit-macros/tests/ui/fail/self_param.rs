struct S;
impl S {
    #[apprunner::main]
    async fn main(&self) {}
}
fn main() {}
