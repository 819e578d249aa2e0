//! What a sampling rule is matched against: the service (from the resource) and the request
//! (from the attributes a span starts with), and X-Ray's wildcard patterns.

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;

/// X-Ray's wildcard match, as the console documents it: `*` is any run of characters (none
/// included), `?` exactly one; letters compare without regard to case.
pub(crate) fn wildcard_match(pattern: &str, text: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.is_ascii() && text.is_ascii() {
        // The common case (methods, paths, host names): no allocation.
        return glob(pattern.as_bytes(), text.as_bytes(), |p, t| {
            p.eq_ignore_ascii_case(t)
        });
    }
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    glob(&p, &t, |p, t| p == t)
}

/// `*` / `?` matching of `t` by `p`: greedy, backtracking to the last `*` only, so linear in
/// practice and without recursion.
fn glob<C: Copy + PartialEq + From<u8>>(p: &[C], t: &[C], eq: impl Fn(&C, &C) -> bool) -> bool {
    let (star, any) = (C::from(b'*'), C::from(b'?'));
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != star && (p[pi] == any || eq(&p[pi], &t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == star {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = backtrack {
            pi = sp + 1;
            ti = st + 1;
            backtrack = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == star)
}

/// A rule field against a value the span may lack: `*` matches anything, even nothing; any
/// other pattern needs the value.
pub(crate) fn field_match(pattern: &str, value: Option<&str>) -> bool {
    match value {
        Some(v) => wildcard_match(pattern, v),
        None => pattern == "*",
    }
}

/// The X-Ray `ServiceType` (segment origin) of an OpenTelemetry `cloud.platform`, as the X-Ray
/// exporters and ADOT's samplers map it.
pub(crate) fn service_type(cloud_platform: &str) -> Option<&'static str> {
    Some(match cloud_platform {
        "aws_ec2" => "AWS::EC2::Instance",
        "aws_ecs" => "AWS::ECS::Container",
        "aws_eks" => "AWS::EKS::Container",
        "aws_elastic_beanstalk" => "AWS::ElasticBeanstalk::Environment",
        "aws_lambda" => "AWS::Lambda::Function",
        "aws_app_runner" => "AWS::AppRunner::Service",
        _ => return None,
    })
}

/// What rules match about the service itself; read once from the resource.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ServiceFacts {
    pub(crate) name: Option<String>,
    pub(crate) service_type: Option<&'static str>,
    pub(crate) resource_arn: Option<String>,
}

impl ServiceFacts {
    pub(crate) fn from_resource(resource: &Resource) -> Self {
        let get = |key: &'static str| {
            resource
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|v| v.as_str().into_owned())
        };
        Self {
            name: get("service.name"),
            service_type: get("cloud.platform").as_deref().and_then(service_type),
            resource_arn: get("aws.ecs.container.arn").or_else(|| get("cloud.resource_id")),
        }
    }
}

/// What rules match about one request, from the attributes its span starts with (current
/// HTTP semantic conventions first, then the older names).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) method: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) path: Option<&'a str>,
}

fn str_value(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The path of `url.full` / `http.url` (`https://host/p?q` gives `/p`).
fn path_of_url(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let start = rest.find('/')?;
    let path = &rest[start..];
    Some(path.split(['?', '#']).next().unwrap_or(path))
}

impl<'a> RequestFacts<'a> {
    pub(crate) fn from_attributes(attributes: &'a [KeyValue]) -> Self {
        let mut facts = Self::default();
        let mut target = None;
        let mut url = None;
        for kv in attributes {
            let Some(v) = str_value(&kv.value) else {
                continue;
            };
            match kv.key.as_str() {
                "http.request.method" => facts.method = Some(v),
                "http.method" => {
                    facts.method.get_or_insert(v);
                }
                "server.address" => facts.host = Some(v),
                "http.host" | "net.host.name" => {
                    facts.host.get_or_insert(v);
                }
                "url.path" => facts.path = Some(v),
                "http.target" => target = Some(v.split(['?', '#']).next().unwrap_or(v)),
                "url.full" | "http.url" => url = path_of_url(v),
                _ => {}
            }
        }
        facts.path = facts.path.or(target).or(url);
        facts
    }
}

/// Whether every one of a rule's attribute patterns matches a string attribute of the span.
pub(crate) fn attributes_match(rule: &[(String, String)], attributes: &[KeyValue]) -> bool {
    rule.iter().all(|(key, pattern)| {
        attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .is_some_and(|kv| wildcard_match(pattern, &kv.value.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        let cases = [
            ("*", "", true),
            ("*", "/anything", true),
            ("/api/*", "/api/users/7", true),
            ("/api/*", "/api", false),
            ("/api*", "/api", true),
            ("/users/?", "/users/7", true),
            ("/users/?", "/users/42", false),
            ("GET", "get", true),
            ("*.example.com", "shop.EXAMPLE.com", true),
            ("*.example.com", "example.com", false),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("a?c*", "abc", true),
            ("", "", true),
            ("", "x", false),
            ("**", "", true),
            ("é*", "É-x", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(
                wildcard_match(pattern, text),
                want,
                "{pattern:?} ~ {text:?}"
            );
        }
    }

    #[test]
    fn missing_values_match_only_star() {
        assert!(field_match("*", None));
        assert!(!field_match("/x", None));
        assert!(!field_match("?", None));
    }

    #[test]
    fn request_facts_prefer_current_conventions() {
        let attrs = [
            KeyValue::new("http.method", "POST"),
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("net.host.name", "old.example"),
            KeyValue::new("server.address", "api.example"),
            KeyValue::new("http.target", "/old?x=1"),
        ];
        let f = RequestFacts::from_attributes(&attrs);
        assert_eq!(f.method, Some("GET"));
        assert_eq!(f.host, Some("api.example"));
        assert_eq!(f.path, Some("/old"));
        let attrs = [KeyValue::new("url.full", "https://h.example:8443/a/b?q=1")];
        assert_eq!(RequestFacts::from_attributes(&attrs).path, Some("/a/b"));
        assert_eq!(RequestFacts::from_attributes(&[]), RequestFacts::default());
    }

    #[test]
    fn service_facts_from_the_resource() {
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "users-api"),
                KeyValue::new("cloud.platform", "aws_ecs"),
                KeyValue::new(
                    "aws.ecs.container.arn",
                    "arn:aws:ecs:eu-west-1:123456789012:container/c/1",
                ),
            ])
            .build();
        let f = ServiceFacts::from_resource(&resource);
        assert_eq!(f.name.as_deref(), Some("users-api"));
        assert_eq!(f.service_type, Some("AWS::ECS::Container"));
        assert!(f.resource_arn.unwrap().starts_with("arn:aws:ecs"));
        assert_eq!(service_type("gcp_cloud_run"), None);
    }

    #[test]
    fn rule_attributes_all_have_to_match() {
        let span = [
            KeyValue::new("tenant", "acme"),
            KeyValue::new("retries", 2_i64),
        ];
        let rule = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(attributes_match(&rule(&[]), &span));
        assert!(attributes_match(&rule(&[("tenant", "ac*")]), &span));
        assert!(attributes_match(&rule(&[("retries", "2")]), &span));
        assert!(!attributes_match(
            &rule(&[("tenant", "acme"), ("region", "*")]),
            &span
        ));
    }
}
