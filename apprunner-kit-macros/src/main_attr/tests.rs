//! Unit tests of the expansion, on `proc_macro2` streams.

use proc_macro2::TokenStream;
use quote::quote;

use super::expand;

fn norm(ts: TokenStream) -> String {
    ts.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn expand_str(args: TokenStream, item: TokenStream) -> String {
    norm(expand(args, item))
}

#[test]
fn expands_to_app_run_with_trait_dispatch() {
    let out = expand_str(
        quote!(service = "users-api", migrate = "migrations"),
        quote! {
            async fn main(db: apprunner::db::Pool<sqlx::Postgres>) -> apprunner::Result<axum::Router> {
                todo!()
            }
        },
    );
    let expected = norm(quote! {
        fn main() -> ::std::process::ExitCode {
            async fn __apprunner_main(db: apprunner::db::Pool<sqlx::Postgres>) -> apprunner::Result<axum::Router> {
                todo!()
            }
            ::apprunner::__private::App::new(::core::env!("CARGO_PKG_NAME"), ::core::env!("CARGO_PKG_VERSION"))
                .service_name("users-api")
                .migrations(::apprunner::__private::migrate!("migrations"))
                .run(|__apprunner_cx: ::apprunner::__private::AppContext| async move {
                    let __apprunner_arg0 = <apprunner::db::Pool<sqlx::Postgres> as ::apprunner::__private::FromContext>::from_context(&__apprunner_cx).await?;
                    ::apprunner::__private::outcome(__apprunner_main(__apprunner_arg0).await, &__apprunner_cx).await
                })
        }
    });
    assert_eq!(out, expected);
}

#[test]
fn crate_override_is_used_everywhere() {
    let out = expand_str(
        quote!(crate = ::kit),
        quote!(
            async fn main() {}
        ),
    );
    assert!(out.contains(":: kit :: __private :: App :: new"), "{out}");
    assert!(!out.contains(":: apprunner ::"), "{out}");
    let out = expand_str(
        quote!(crate = "renamed::inner"),
        quote!(
            async fn main() {}
        ),
    );
    assert!(
        out.contains("renamed :: inner :: __private :: AppContext"),
        "{out}"
    );
}

#[test]
fn keeps_attributes_and_visibility() {
    let out = expand_str(
        quote!(),
        quote!(
            #[allow(unused)]
            pub async fn main() {}
        ),
    );
    assert!(
        out.starts_with("# [allow (unused)] pub fn main ()"),
        "{out}"
    );
}

fn error_of(args: TokenStream, item: TokenStream) -> String {
    let out = expand_str(args, item);
    assert!(out.contains("compile_error"), "no error in {out}");
    // The user's function is always re-emitted (an async one under another name, next to an
    // empty `main`, so rustc adds no error of its own).
    assert!(out.contains("fn main"), "item dropped: {out}");
    out
}

#[test]
fn rejects_unknown_and_repeated_options() {
    let out = error_of(
        quote!(port = 3),
        quote!(
            async fn main() {}
        ),
    );
    assert!(
        out.contains(
            "unknown option `port`; expected one of `service`, `secrets`, `migrate`, `telemetry`, `crate`"
        ),
        "{out}"
    );
    let out = error_of(
        quote!(service = "a", service = "b"),
        quote!(
            async fn main() {}
        ),
    );
    assert!(out.contains("`service` set multiple times"), "{out}");
    let out = error_of(
        quote!(migrations = "m"),
        quote!(
            async fn main() {}
        ),
    );
    assert!(out.contains("did you mean `migrate`"), "{out}");
    let out = error_of(
        quote!(service = 3),
        quote!(
            async fn main() {}
        ),
    );
    assert!(out.contains("`service` expects a string literal"), "{out}");
}

#[test]
fn telemetry_option_passes_the_function_to_app_telemetry() {
    let out = expand_str(
        quote!(telemetry = crate::local_console),
        quote!(
            async fn main() {}
        ),
    );
    assert!(
        out.contains(". telemetry (crate :: local_console)"),
        "{out}"
    );
    let out = error_of(
        quote!(telemetry = crate::a, telemetry = crate::b),
        quote!(
            async fn main() {}
        ),
    );
    assert!(out.contains("`telemetry` set multiple times"), "{out}");
}

#[test]
fn rejects_unsupported_signatures() {
    let out = error_of(
        quote!(),
        quote!(
            fn main() {}
        ),
    );
    assert!(out.contains("the `async` keyword is missing"), "{out}");
    let out = error_of(
        quote!(),
        quote!(
            async fn main<T>() {}
        ),
    );
    assert!(out.contains("cannot be generic"), "{out}");
    let out = error_of(
        quote!(),
        quote!(
            async fn main(&self) {}
        ),
    );
    assert!(out.contains("cannot take `self`"), "{out}");
    let out = error_of(
        quote!(),
        quote!(
            async fn main((a, b): (u8, u8)) {}
        ),
    );
    assert!(out.contains("must be plain names"), "{out}");
}

#[test]
fn non_function_items_are_reported_and_kept() {
    let out = expand_str(
        quote!(),
        quote!(
            struct Main;
        ),
    );
    assert!(out.contains("goes on a function"), "{out}");
    assert!(out.contains("struct Main"), "{out}");
}
