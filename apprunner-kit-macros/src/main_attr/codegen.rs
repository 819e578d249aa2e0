//! The code `#[apprunner::main]` expands to: a synchronous `main` that hands the user's async
//! function to `App::run`, which provides each parameter through `FromContext` and handles
//! the return value through `IntoOutcome` (trait dispatch in the runtime crate; the macro
//! never looks at type names).

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned as _;
use syn::{FnArg, ItemFn, ReturnType};

use super::Config;

pub(crate) fn generate(config: &Config, func: ItemFn) -> TokenStream {
    let krate = config.krate();
    let private = quote!(#krate::__private);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    let name = &sig.ident;
    let inputs = &sig.inputs;
    let output = &sig.output;

    let mut provide = Vec::new();
    let mut names = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        if let FnArg::Typed(pt) = input {
            let var = format_ident!("__apprunner_arg{}", i);
            let ty = &pt.ty;
            provide.push(quote_spanned! {ty.span()=>
                let #var = <#ty as #private::FromContext>::from_context(&__apprunner_cx).await?;
            });
            names.push(var);
        }
    }
    let output_span = match output {
        ReturnType::Default => name.span(),
        ReturnType::Type(_, ty) => ty.span(),
    };
    let finish = quote_spanned! {output_span=>
        #private::outcome(__apprunner_main(#(#names),*).await, &__apprunner_cx).await
    };

    let service = config.service.iter().map(|s| quote!(.service_name(#s)));
    let secrets = config.secrets.iter().map(|s| quote!(.secrets(#s)));
    let telemetry = config.telemetry.iter().map(|t| quote!(.telemetry(#t)));
    let migrate = config
        .migrate
        .iter()
        .map(|m| quote!(.migrations(#private::migrate!(#m))));

    quote! {
        #(#attrs)*
        #vis fn #name() -> ::std::process::ExitCode {
            async fn __apprunner_main(#inputs) #output #block

            #private::App::new(::core::env!("CARGO_PKG_NAME"), ::core::env!("CARGO_PKG_VERSION"))
                #(#service)*
                #(#secrets)*
                #(#migrate)*
                #(#telemetry)*
                .run(|__apprunner_cx: #private::AppContext| async move {
                    #(#provide)*
                    #finish
                })
        }
    }
}
