//! Parsing of `#[apprunner::main(...)]` options.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt as _;
use syn::parse::{ParseStream, Parser as _};
use syn::{Ident, LitStr, Token};

/// The option names, in the order they are listed in error messages.
pub(crate) const KEYS: &[&str] = &["service", "secrets", "migrate", "telemetry", "crate"];

/// Parsed options. Each is set at most once.
#[derive(Default)]
pub(crate) struct Config {
    pub(crate) service: Option<LitStr>,
    pub(crate) secrets: Option<LitStr>,
    pub(crate) migrate: Option<LitStr>,
    /// A function (path or closure) adjusting the `TelemetryConfig`: `App::telemetry`.
    pub(crate) telemetry: Option<syn::Expr>,
    pub(crate) krate: Option<syn::Path>,
}

fn set_once<T>(slot: &mut Option<T>, value: T, key: &Ident) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            key.span(),
            format!("`{key}` set multiple times"),
        ));
    }
    *slot = Some(value);
    Ok(())
}

fn expect_str(input: ParseStream<'_>, key: &Ident, what: &str) -> syn::Result<LitStr> {
    input.parse::<LitStr>().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("`{key}` expects a string literal: {what}"),
        )
    })
}

impl Config {
    /// Parses `key = value, ...`; every error is spanned on the offending token.
    pub(crate) fn parse(args: TokenStream) -> syn::Result<Config> {
        let parser = |input: ParseStream<'_>| -> syn::Result<Config> {
            let mut config = Config::default();
            while !input.is_empty() {
                let key = Ident::parse_any(input)?;
                input
                    .parse::<Token![=]>()
                    .map_err(|e| syn::Error::new(e.span(), format!("expected `{key} = ...`")))?;
                match key.to_string().as_str() {
                    "service" => {
                        let v = expect_str(input, &key, "the service name, e.g. \"users-api\"")?;
                        if v.value().trim().is_empty() {
                            return Err(syn::Error::new(v.span(), "`service` must not be empty"));
                        }
                        set_once(&mut config.service, v, &key)?;
                    }
                    "secrets" => {
                        let v = expect_str(
                            input,
                            &key,
                            "secret mappings, e.g. \"JWT_SECRET=my-app/jwt#key\"",
                        )?;
                        set_once(&mut config.secrets, v, &key)?;
                    }
                    "migrate" => {
                        let v = expect_str(
                            input,
                            &key,
                            "the migrations folder relative to Cargo.toml, e.g. \"migrations\"",
                        )?;
                        set_once(&mut config.migrate, v, &key)?;
                    }
                    "telemetry" => {
                        let expr = input.parse::<syn::Expr>().map_err(|e| {
                            syn::Error::new(
                                e.span(),
                                "`telemetry` expects a function taking and returning \
                                 `apprunner::telemetry::TelemetryConfig`, e.g. \
                                 `telemetry = crate::local_console`",
                            )
                        })?;
                        set_once(&mut config.telemetry, expr, &key)?;
                    }
                    "crate" => {
                        let path = if input.peek(LitStr) {
                            let lit: LitStr = input.parse()?;
                            lit.parse_with(syn::Path::parse_mod_style).map_err(|_| {
                                syn::Error::new(
                                    lit.span(),
                                    "`crate` expects a path, e.g. `crate = ::my_apprunner`",
                                )
                            })?
                        } else {
                            input.call(syn::Path::parse_mod_style)?
                        };
                        set_once(&mut config.krate, path, &key)?;
                    }
                    "service_name" | "name" => {
                        return Err(syn::Error::new(
                            key.span(),
                            format!("unknown option `{key}`; did you mean `service`?"),
                        ));
                    }
                    "migrations" => {
                        return Err(syn::Error::new(
                            key.span(),
                            "unknown option `migrations`; did you mean `migrate`?",
                        ));
                    }
                    _ => {
                        return Err(syn::Error::new(
                            key.span(),
                            format!(
                                "unknown option `{key}`; expected one of {}",
                                KEYS.iter()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ));
                    }
                }
                if input.is_empty() {
                    break;
                }
                input.parse::<Token![,]>()?;
            }
            Ok(config)
        };
        parser.parse2(args)
    }

    /// The path of the runtime crate (`::apprunner` unless `crate = ...`).
    pub(crate) fn krate(&self) -> syn::Path {
        self.krate.clone().unwrap_or_else(|| {
            let ident = Ident::new("apprunner", Span::call_site());
            syn::parse_quote!(::#ident)
        })
    }
}
