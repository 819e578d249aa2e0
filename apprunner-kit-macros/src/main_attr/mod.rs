//! `#[apprunner::main]`: parse, check, generate. Never panics; on error it re-emits the user's
//! function unchanged next to the error so IDEs keep working.

mod args;
mod codegen;

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn, Pat};

pub(crate) use args::Config;

/// Expands the attribute. `args` are the tokens inside `#[apprunner::main(...)]`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(f) => f,
        Err(e) => {
            let err = syn::Error::new(
                e.span(),
                "#[apprunner::main] goes on a function: `async fn main() { ... }`",
            )
            .into_compile_error();
            // Not a function we could rewrite: re-emit it as is.
            let mut out = err;
            out.extend(item);
            return out;
        }
    };
    let config = match Config::parse(args) {
        Ok(c) => c,
        Err(e) => return with_error(&func, e),
    };
    if let Err(e) = check(&func) {
        return with_error(&func, e);
    }
    codegen::generate(&config, func)
}

/// The original function plus the error, so the only error shown is the real one.
///
/// An `async fn main` cannot be re-emitted as is (rustc would add "`main` function is not
/// allowed to be `async`"), so it is kept under another name, body intact for IDEs, next to
/// an empty `fn main() {}`.
fn with_error(func: &ItemFn, error: syn::Error) -> TokenStream {
    let error = error.into_compile_error();
    if func.sig.asyncness.is_none() {
        return quote!(#error #func);
    }
    let mut kept = func.clone();
    let name = kept.sig.ident.clone();
    kept.sig.ident = syn::Ident::new("__apprunner_main", name.span());
    let vis = &func.vis;
    quote! {
        #error
        #[allow(dead_code)]
        #kept
        #vis fn #name() {}
    }
}

/// Rejects every shape the runtime cannot drive, with a span on the culprit.
fn check(func: &ItemFn) -> syn::Result<()> {
    let sig = &func.sig;
    let mut errors: Vec<syn::Error> = Vec::new();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span(),
            "the `async` keyword is missing from the function declaration",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "#[apprunner::main] functions cannot be generic: their parameters are provided by the runtime",
        ));
    }
    if let Some(c) = &sig.constness {
        errors.push(syn::Error::new(
            c.span(),
            "#[apprunner::main] functions cannot be `const`",
        ));
    }
    if let Some(u) = &sig.unsafety {
        errors.push(syn::Error::new(
            u.span(),
            "#[apprunner::main] functions cannot be `unsafe`",
        ));
    }
    if let Some(v) = &sig.variadic {
        errors.push(syn::Error::new(
            v.span(),
            "#[apprunner::main] functions cannot be variadic",
        ));
    }
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => errors.push(syn::Error::new(
                r.span(),
                "#[apprunner::main] functions cannot take `self`",
            )),
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if pi.by_ref.is_none() && pi.subpat.is_none() => {}
                Pat::Wild(_) => {}
                other => errors.push(syn::Error::new(
                    other.span(),
                    "parameters of #[apprunner::main] must be plain names, e.g. `db: apprunner::db::Pool<Postgres>`",
                )),
            },
        }
    }
    let mut iter = errors.into_iter();
    match iter.next() {
        None => Ok(()),
        Some(mut first) => {
            for e in iter {
                first.combine(e);
            }
            Err(first)
        }
    }
}

#[cfg(test)]
mod tests;
