//! Resource attributes of an ECS task (Fargate, EC2, ECS Express Mode), read from the task
//! metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`), as `opentelemetry-aws`'s ECS
//! detector reads them, so that CloudWatch links the service's traces to its log group
//! (`aws.log.group.names`).
//!
//! The kit does its own two requests instead of using that detector: it would add a second
//! HTTP stack (ureq) and, on the EC2 launch type, IMDS calls of a second each. Both requests
//! (container and task) run together and are given [`DEADLINE`] in all: start-up is never
//! delayed by more than that, and a slow or broken endpoint only costs the attributes.

use std::time::Duration;

use opentelemetry::{Array, KeyValue, StringValue, Value};
use serde_json::Value as Json;

/// The most detection may add to start-up.
pub(crate) const DEADLINE: Duration = Duration::from_millis(1000);

/// The attributes for the task whose metadata endpoint is `uri`; empty when it does not
/// answer within [`DEADLINE`] (logged at debug level only: telemetry is not up yet).
pub(crate) fn detect(uri: &str) -> Vec<KeyValue> {
    let uri = uri.trim_end_matches('/').to_owned();
    // A thread of its own: `init` may run inside the application's runtime, where a second
    // runtime cannot block.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                runtime.block_on(async {
                    let client = reqwest::Client::builder()
                        .no_proxy()
                        .timeout(DEADLINE)
                        .build()
                        .ok()?;
                    let get = |url: String| {
                        let client = client.clone();
                        async move {
                            let response = client.get(url).send().await.ok()?;
                            if !response.status().is_success() {
                                return None;
                            }
                            serde_json::from_slice(&response.bytes().await.ok()?).ok()
                        }
                    };
                    let both = async { tokio::join!(get(uri.clone()), get(format!("{uri}/task"))) };
                    let (container, task) = tokio::time::timeout(DEADLINE, both).await.ok()?;
                    Some(attributes(&task?, container.as_ref()))
                })
            })
            .join()
            .ok()
            .flatten()
            .unwrap_or_default()
    })
}

/// The parts of `arn:partition:service:region:account:resource`.
struct Arn<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
    resource: &'a str,
}

fn parse_arn(arn: &str) -> Option<Arn<'_>> {
    let mut parts = arn.splitn(6, ':');
    (parts.next()? == "arn").then_some(())?;
    let partition = parts.next()?;
    let _service = parts.next()?;
    Some(Arn {
        partition,
        region: parts.next()?,
        account: parts.next()?,
        resource: parts.next()?,
    })
}

fn strings(values: Vec<String>) -> Value {
    Value::Array(Array::String(
        values.into_iter().map(StringValue::from).collect(),
    ))
}

/// The attributes of a task document (`{uri}/task`) and the container's own document (`{uri}`).
pub(crate) fn attributes(task: &Json, container: Option<&Json>) -> Vec<KeyValue> {
    let text = |doc: &Json, key: &str| {
        doc.get(key)
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let mut out = vec![
        KeyValue::new("cloud.provider", "aws"),
        KeyValue::new("cloud.platform", "aws_ecs"),
    ];
    let task_arn = text(task, "TaskARN");
    let arn = task_arn.as_deref().and_then(parse_arn);
    if let Some(arn) = &arn {
        out.push(KeyValue::new("cloud.region", arn.region.to_owned()));
        out.push(KeyValue::new("cloud.account.id", arn.account.to_owned()));
        if let Some(id) = arn.resource.rsplit('/').next() {
            out.push(KeyValue::new("aws.ecs.task.id", id.to_owned()));
        }
    }
    if let Some(task_arn) = &task_arn {
        out.push(KeyValue::new("aws.ecs.task.arn", task_arn.clone()));
    }
    if let Some(cluster) = text(task, "Cluster") {
        let cluster_arn = match &arn {
            Some(arn) if !cluster.starts_with("arn:") => format!(
                "arn:{}:ecs:{}:{}:cluster/{cluster}",
                arn.partition, arn.region, arn.account
            ),
            _ => cluster,
        };
        out.push(KeyValue::new("aws.ecs.cluster.arn", cluster_arn));
    }
    if let Some(launch_type) = text(task, "LaunchType") {
        out.push(KeyValue::new(
            "aws.ecs.launchtype",
            launch_type.to_ascii_lowercase(),
        ));
    }
    if let Some(family) = text(task, "Family") {
        out.push(KeyValue::new("aws.ecs.task.family", family));
    }
    if let Some(revision) = text(task, "Revision") {
        out.push(KeyValue::new("aws.ecs.task.revision", revision));
    }
    if let Some(zone) = text(task, "AvailabilityZone") {
        out.push(KeyValue::new("cloud.availability_zone", zone));
    }
    let Some(container) = container else {
        return out;
    };
    if let Some(container_arn) = text(container, "ContainerARN") {
        out.push(KeyValue::new("aws.ecs.container.arn", container_arn));
    }
    if let Some(name) = text(container, "Name") {
        out.push(KeyValue::new("container.name", name));
    }
    if let Some(id) = text(container, "DockerId") {
        out.push(KeyValue::new("container.id", id));
    }
    if text(container, "LogDriver").as_deref() == Some("awslogs")
        && let Some(options) = container.get("LogOptions")
        && let Some(group) = text(options, "awslogs-group")
    {
        let stream = text(options, "awslogs-stream");
        out.push(KeyValue::new(
            "aws.log.group.names",
            strings(vec![group.clone()]),
        ));
        if let Some(stream) = &stream {
            out.push(KeyValue::new(
                "aws.log.stream.names",
                strings(vec![stream.clone()]),
            ));
        }
        if let Some(arn) = &arn {
            let region = text(options, "awslogs-region").unwrap_or_else(|| arn.region.to_owned());
            let group_arn = format!(
                "arn:{}:logs:{region}:{}:log-group:{group}",
                arn.partition, arn.account
            );
            if let Some(stream) = &stream {
                out.push(KeyValue::new(
                    "aws.log.stream.arns",
                    strings(vec![format!("{group_arn}:log-stream:{stream}")]),
                ));
            }
            out.push(KeyValue::new(
                "aws.log.group.arns",
                strings(vec![group_arn]),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(attrs: &[KeyValue], key: &str) -> Option<String> {
        attrs
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn a_fargate_task_with_awslogs() {
        let task = serde_json::json!({
            "Cluster": "users",
            "TaskARN": "arn:aws:ecs:eu-west-1:111122223333:task/users/158d1c8083dd49d6b527399fd6414f5c",
            "Family": "users-api",
            "Revision": "7",
            "LaunchType": "FARGATE",
            "AvailabilityZone": "eu-west-1a"
        });
        let container = serde_json::json!({
            "DockerId": "158d1c8083dd49d6b527399fd6414f5c-1234567890",
            "Name": "app",
            "ContainerARN": "arn:aws:ecs:eu-west-1:111122223333:container/users/158d/abc",
            "LogDriver": "awslogs",
            "LogOptions": {
                "awslogs-group": "/ecs/users-api",
                "awslogs-region": "eu-west-1",
                "awslogs-stream": "ecs/app/158d1c8083dd49d6b527399fd6414f5c"
            }
        });
        let attrs = attributes(&task, Some(&container));
        let g = |k| get(&attrs, k);
        assert_eq!(g("cloud.platform").as_deref(), Some("aws_ecs"));
        assert_eq!(g("cloud.region").as_deref(), Some("eu-west-1"));
        assert_eq!(g("cloud.account.id").as_deref(), Some("111122223333"));
        assert_eq!(
            g("aws.ecs.cluster.arn").as_deref(),
            Some("arn:aws:ecs:eu-west-1:111122223333:cluster/users")
        );
        assert_eq!(g("aws.ecs.launchtype").as_deref(), Some("fargate"));
        assert_eq!(
            g("aws.ecs.task.id").as_deref(),
            Some("158d1c8083dd49d6b527399fd6414f5c")
        );
        assert_eq!(
            g("aws.log.group.names").as_deref(),
            Some("[\"/ecs/users-api\"]")
        );
        assert_eq!(
            g("aws.log.group.arns").as_deref(),
            Some("[\"arn:aws:logs:eu-west-1:111122223333:log-group:/ecs/users-api\"]")
        );
        assert!(g("aws.log.stream.names").unwrap().contains("ecs/app/158d"));
    }

    #[test]
    fn an_endpoint_that_does_not_answer_costs_at_most_the_deadline() {
        // A listener that accepts and never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let uri = format!("http://{}/v4/abc", listener.local_addr().unwrap());
        let started = std::time::Instant::now();
        assert!(detect(&uri).is_empty());
        assert!(started.elapsed() < DEADLINE + Duration::from_millis(500));
        drop(listener);
    }
}
