//! Compile-time behaviour of `#[apprunner::main]`: what compiles, and the exact errors of what
//! does not. Snapshots are for the installed stable toolchain; regenerate them with
//! `TRYBUILD=overwrite cargo test -p apprunner-kit-macros --test ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
