//! `APPRUNNER_OTLP_SIGV4`: whether OTLP/HTTP exports are signed with SigV4 for X-Ray's OTLP
//! endpoint (`https://xray.<region>.amazonaws.com/v1/traces`), and for which region.

use super::{OtlpProtocol, TelemetryConfig};
use crate::telemetry::error::TelemetryError;

/// The variable of the explicit switch.
pub(crate) const SIGV4_VAR: &str = "APPRUNNER_OTLP_SIGV4";

/// What `APPRUNNER_OTLP_SIGV4` (or the builder) asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum SigningSetting {
    /// Unset: sign when the endpoint's host is `xray.<region>.amazonaws.com[.cn]`.
    #[default]
    Auto,
    /// `false`: never sign.
    Off,
    /// `true` (region from the endpoint's host, else `AWS_REGION` / `AWS_DEFAULT_REGION`) or a
    /// region name.
    On(Option<String>),
}

impl SigningSetting {
    pub(crate) fn from_value(value: Option<&str>) -> Result<Self, TelemetryError> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Self::Auto);
        };
        if value.eq_ignore_ascii_case("true") {
            Ok(Self::On(None))
        } else if value.eq_ignore_ascii_case("false") {
            Ok(Self::Off)
        } else if is_region(value) {
            Ok(Self::On(Some(value.to_ascii_lowercase())))
        } else {
            Err(TelemetryError::InvalidVar {
                var: SIGV4_VAR,
                value: value.to_owned(),
                expected: "true, false or an AWS region such as eu-west-1",
            })
        }
    }
}

/// Whether `s` looks like an AWS region name (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
pub(crate) fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()) && p.is_ascii())
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// The region of an X-Ray endpoint URL: `https://xray.eu-west-1.amazonaws.com/v1/traces` gives
/// `eu-west-1` (also `.amazonaws.com.cn`); any other host gives `None`.
pub(crate) fn xray_region(endpoint: &str) -> Option<String> {
    let after_scheme = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = after_scheme.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .split(':')
        .next()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let rest = host.strip_prefix("xray.")?;
    let region = rest
        .strip_suffix(".amazonaws.com")
        .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))?;
    is_region(region).then(|| region.to_owned())
}

/// The X-Ray OTLP traces URL of `region`.
pub(crate) fn xray_endpoint(region: &str) -> String {
    let domain = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://xray.{region}.{domain}/v1/traces")
}

/// SigV4 settings resolved against the endpoint: what the exporter is built with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Signing {
    /// The region of the credential scope.
    pub(crate) region: String,
}

impl TelemetryConfig {
    /// The endpoint configured in code or the environment, before defaults.
    fn configured_endpoint(&self) -> Option<&str> {
        self.endpoint
            .as_deref()
            .or(self.otlp_env.endpoint.as_ref().map(|(e, _)| e.as_str()))
    }

    /// Whether and for which region exports are signed; an error when signing is asked for and
    /// no region can be found, or when the protocol was set to gRPC.
    pub(crate) fn signing(&self) -> Result<Option<Signing>, TelemetryError> {
        let host_region = self.configured_endpoint().and_then(xray_region);
        let region = match &self.sigv4 {
            SigningSetting::Off => return Ok(None),
            SigningSetting::Auto => match host_region {
                Some(region) => region,
                None => return Ok(None),
            },
            SigningSetting::On(Some(region)) => region.clone(),
            SigningSetting::On(None) => host_region.or_else(|| self.region.clone()).ok_or(
                TelemetryError::InvalidVar {
                    var: SIGV4_VAR,
                    value: "true".to_owned(),
                    expected: "a region (APPRUNNER_OTLP_SIGV4=eu-west-1), or AWS_REGION set, or \
                               an xray.<region>.amazonaws.com endpoint",
                },
            )?,
        };
        if let Some(var) = self.protocol_source
            && self.protocol == OtlpProtocol::Grpc
        {
            return Err(TelemetryError::InvalidVar {
                var,
                value: "grpc".to_owned(),
                expected: "http/protobuf: X-Ray's OTLP endpoint takes SigV4-signed OTLP/HTTP \
                           only (unset the variable, or set APPRUNNER_OTLP_SIGV4=false to export \
                           unsigned)",
            });
        }
        Ok(Some(Signing { region }))
    }

    /// The transport in effect: http/protobuf whenever exports are signed.
    pub(crate) fn effective_protocol(&self) -> OtlpProtocol {
        match self.signing() {
            Ok(Some(_)) => OtlpProtocol::HttpProtobuf,
            _ => self.protocol,
        }
    }

    /// The endpoint in effect when none is configured: X-Ray's own when signing with a region.
    pub(crate) fn default_signed_endpoint(&self) -> Option<String> {
        if self.configured_endpoint().is_some() {
            return None;
        }
        match &self.sigv4 {
            SigningSetting::On(Some(region)) => Some(xray_endpoint(region)),
            SigningSetting::On(None) => self.region.as_deref().map(xray_endpoint),
            _ => None,
        }
    }

    /// Signs every OTLP/HTTP export with SigV4 for X-Ray (service `xray`) in `region`, whatever
    /// the endpoint's host: for X-Ray's OTLP endpoint behind a proxy or a VPC endpoint. Wins
    /// over `APPRUNNER_OTLP_SIGV4`. Without an endpoint, spans go to
    /// `https://xray.<region>.amazonaws.com/v1/traces`.
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config
    ///     .otlp_endpoint("https://vpce-0123.xray.eu-west-1.vpce.amazonaws.com/v1/traces")
    ///     .otlp_sigv4_region("eu-west-1");
    /// assert_eq!(config.otlp_protocol(), apprunner::telemetry::OtlpProtocol::HttpProtobuf);
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn otlp_sigv4_region(mut self, region: impl Into<String>) -> Self {
        self.sigv4 = SigningSetting::On(Some(region.into()));
        self
    }

    /// Turns SigV4 signing of OTLP/HTTP exports on (`true`: region from the endpoint's host,
    /// else `AWS_REGION`) or off (`false`: never sign, even for an `xray.<region>.amazonaws.com`
    /// endpoint). Wins over `APPRUNNER_OTLP_SIGV4`.
    ///
    /// ```
    /// # let config = apprunner::telemetry::TelemetryConfig::from_lookup(|_| None)?;
    /// let config = config
    ///     .otlp_endpoint("https://xray.eu-west-1.amazonaws.com/v1/traces")
    ///     .otlp_sigv4(false);
    /// # let _ = config;
    /// # Ok::<(), apprunner::telemetry::TelemetryError>(())
    /// ```
    pub fn otlp_sigv4(mut self, on: bool) -> Self {
        self.sigv4 = if on {
            SigningSetting::On(None)
        } else {
            SigningSetting::Off
        };
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<TelemetryConfig, TelemetryError> {
        TelemetryConfig::from_lookup(|key| {
            vars.iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn the_region_comes_from_the_xray_host() {
        assert_eq!(
            xray_region("https://xray.eu-west-1.amazonaws.com/v1/traces").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            xray_region("https://xray.cn-north-1.amazonaws.com.cn").as_deref(),
            Some("cn-north-1")
        );
        assert_eq!(
            xray_region("xray.us-gov-west-1.amazonaws.com:443/v1/traces").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            xray_region("https://XRAY.US-EAST-2.AMAZONAWS.COM").as_deref(),
            Some("us-east-2")
        );
        for other in [
            "http://localhost:4318",
            "https://logs.eu-west-1.amazonaws.com/v1/logs",
            "https://xray.eu-west-1.amazonaws.com.evil.example/v1/traces",
            "https://xray.amazonaws.com/v1/traces",
            "https://proxy.example/xray.eu-west-1.amazonaws.com",
        ] {
            assert_eq!(xray_region(other), None, "{other}");
        }
        assert_eq!(
            xray_endpoint("cn-northwest-1"),
            "https://xray.cn-northwest-1.amazonaws.com.cn/v1/traces"
        );
    }

    #[test]
    fn an_xray_endpoint_turns_signing_and_http_protobuf_on() {
        let c = config(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "https://xray.eu-west-1.amazonaws.com/v1/traces",
        )])
        .unwrap();
        assert_eq!(
            c.signing().unwrap(),
            Some(Signing {
                region: "eu-west-1".into()
            })
        );
        assert_eq!(c.otlp_protocol(), OtlpProtocol::HttpProtobuf);
        let plain = config(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]).unwrap();
        assert_eq!(plain.signing().unwrap(), None);
        assert_eq!(plain.otlp_protocol(), OtlpProtocol::Grpc);
    }

    #[test]
    fn grpc_set_explicitly_is_a_start_up_error_naming_the_variable() {
        let c = config(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://xray.eu-west-1.amazonaws.com",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        ])
        .unwrap();
        let err = c.signing().unwrap_err().to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"), "{err}");
        assert!(err.contains("http/protobuf"), "{err}");
        let http = config(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://xray.eu-west-1.amazonaws.com",
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ])
        .unwrap();
        assert!(http.signing().unwrap().is_some());
    }

    #[test]
    fn the_switch_signs_any_endpoint_with_the_region_it_names_or_aws_region() {
        let named = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318"),
            ("APPRUNNER_OTLP_SIGV4", "ap-southeast-2"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(named.signing().unwrap().unwrap().region, "ap-southeast-2");
        let from_env = config(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318"),
            ("APPRUNNER_OTLP_SIGV4", "TRUE"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(from_env.signing().unwrap().unwrap().region, "eu-west-1");
        let no_region = config(&[("APPRUNNER_OTLP_SIGV4", "true")]).unwrap();
        let err = no_region.signing().unwrap_err().to_string();
        assert!(err.contains("APPRUNNER_OTLP_SIGV4"), "{err}");
        let off = config(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "https://xray.eu-west-1.amazonaws.com",
            ),
            ("APPRUNNER_OTLP_SIGV4", "false"),
        ])
        .unwrap();
        assert_eq!(off.signing().unwrap(), None);
        let bad = config(&[("APPRUNNER_OTLP_SIGV4", "yes")]).unwrap_err();
        assert!(bad.to_string().contains("APPRUNNER_OTLP_SIGV4"), "{bad}");
    }

    #[test]
    fn a_region_without_endpoint_exports_to_xray() {
        let c = config(&[("APPRUNNER_OTLP_SIGV4", "eu-central-1")]).unwrap();
        assert_eq!(
            c.default_signed_endpoint().as_deref(),
            Some("https://xray.eu-central-1.amazonaws.com/v1/traces")
        );
        let code = config(&[])
            .unwrap()
            .otlp_endpoint("https://proxy.internal/v1/traces")
            .otlp_sigv4_region("eu-west-3");
        assert_eq!(code.default_signed_endpoint(), None);
        assert_eq!(code.signing().unwrap().unwrap().region, "eu-west-3");
    }
}
