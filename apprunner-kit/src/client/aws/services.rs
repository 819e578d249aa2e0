//! Service-specific attributes of AWS calls, read from the operation's typed input and output
//! (never its payload): each service needs its SDK crate, so each is a feature
//! (`aws-s3`, `aws-sqs`, `aws-sns`, `aws-dynamodb`); Secrets Manager comes with `secrets`.
//!
//! | service | attributes |
//! |---|---|
//! | S3 | `aws.s3.bucket` |
//! | SQS | `messaging.system=aws_sqs`, `messaging.destination.name` (the queue), `messaging.operation.type`, `messaging.operation.name`, `messaging.message.id` (sent), `messaging.batch.message_count` |
//! | SNS | `messaging.system=aws_sns`, `messaging.destination.name` (the topic), `aws.sns.topic.arn`, `messaging.operation.type`, `messaging.operation.name`, `messaging.message.id` (published), `messaging.batch.message_count` |
//! | DynamoDB | `aws.dynamodb.table_names` |
//! | Secrets Manager | `aws.secretsmanager.secret_id`, `aws.secretsmanager.version_stage` (`GetSecretValue`) |
//!
//! An S3 object key, an SQS message body, a DynamoDB item, a secret value: none of them is read.

use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
use aws_smithy_types::config_bag::ConfigBag;
use opentelemetry::KeyValue;

/// Attributes known from the operation's input (before it is sent: the sampler sees them).
#[cfg_attr(
    not(any(
        feature = "aws-sqs",
        feature = "aws-sns",
        feature = "aws-dynamodb",
        feature = "secrets"
    )),
    allow(unused_variables)
)]
#[cfg_attr(
    not(any(feature = "aws-sqs", feature = "aws-sns")),
    allow(unused_variables)
)]
pub(super) fn from_input(
    service: &str,
    method: &str,
    input: &Input,
    attributes: &mut Vec<KeyValue>,
) {
    match service {
        #[cfg(feature = "aws-sqs")]
        "SQS" => sqs::from_input(method, input, attributes),
        #[cfg(feature = "aws-sns")]
        "SNS" => sns::from_input(method, input, attributes),
        #[cfg(feature = "aws-dynamodb")]
        "DynamoDB" => dynamodb::from_input(input, attributes),
        #[cfg(feature = "secrets")]
        "SecretsManager" => secretsmanager::from_input(input, attributes),
        _ => {}
    }
}

/// Attributes known from the operation's endpoint parameters (resolved from its input).
#[cfg_attr(
    not(feature = "aws-s3"),
    allow(
        unused_variables,
        clippy::ptr_arg,
        reason = "it pushes only with the service's feature"
    )
)]
pub(super) fn from_endpoint_params(service: &str, cfg: &ConfigBag, attributes: &mut Vec<KeyValue>) {
    #[cfg(feature = "aws-s3")]
    if service == "S3"
        && let Some(params) =
            cfg.load::<aws_smithy_runtime_api::client::endpoint::EndpointResolverParams>()
        && let Some(params) = params.get::<aws_sdk_s3::config::endpoint::Params>()
        && let Some(bucket) = params.bucket()
    {
        attributes.push(KeyValue::new("aws.s3.bucket", bucket.to_owned()));
    }
}

/// Attributes known from the operation's output, once it succeeded.
#[cfg_attr(
    not(any(feature = "aws-sqs", feature = "aws-sns")),
    allow(
        unused_variables,
        clippy::ptr_arg,
        reason = "it pushes only with the services' features"
    )
)]
pub(super) fn from_output(service: &str, output: &Output, attributes: &mut Vec<KeyValue>) {
    match service {
        #[cfg(feature = "aws-sqs")]
        "SQS" => sqs::from_output(output, attributes),
        #[cfg(feature = "aws-sns")]
        "SNS" => sns::from_output(output, attributes),
        _ => {}
    }
}

/// The `messaging.operation.type` of an operation that sends messages.
#[cfg(any(feature = "aws-sqs", feature = "aws-sns"))]
const SEND: &str = "send";

/// Pushes `messaging.message.id` when a send returned one.
#[cfg(any(feature = "aws-sqs", feature = "aws-sns"))]
fn message_id(id: Option<&str>, attributes: &mut Vec<KeyValue>) {
    if let Some(id) = id {
        attributes.push(KeyValue::new("messaging.message.id", id.to_owned()));
    }
}

/// `messaging.batch.message_count`, for operations on several messages.
#[cfg(any(feature = "aws-sqs", feature = "aws-sns"))]
fn batch_count(count: usize, attributes: &mut Vec<KeyValue>) {
    attributes.push(KeyValue::new(
        "messaging.batch.message_count",
        i64::try_from(count).unwrap_or(i64::MAX),
    ));
}

#[cfg(feature = "aws-sqs")]
mod sqs {
    use aws_sdk_sqs::operation as op;
    use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
    use opentelemetry::KeyValue;

    use super::{SEND, batch_count, message_id};

    /// The queue's name: the last segment of its URL (`…/123456789012/orders` → `orders`).
    fn queue_name(url: &str) -> &str {
        url.trim_end_matches('/').rsplit('/').next().unwrap_or(url)
    }

    pub(super) fn from_input(method: &str, input: &Input, attributes: &mut Vec<KeyValue>) {
        // (operation type, queue URL, messages in the batch)
        let (kind, url, count): (Option<&str>, Option<&str>, Option<usize>) = if let Some(i) =
            input.downcast_ref::<op::send_message::SendMessageInput>()
        {
            (Some(SEND), i.queue_url(), None)
        } else if let Some(i) =
            input.downcast_ref::<op::send_message_batch::SendMessageBatchInput>()
        {
            (Some(SEND), i.queue_url(), Some(i.entries().len()))
        } else if let Some(i) = input.downcast_ref::<op::receive_message::ReceiveMessageInput>() {
            (Some("receive"), i.queue_url(), None)
        } else if let Some(i) = input.downcast_ref::<op::delete_message::DeleteMessageInput>() {
            (Some("settle"), i.queue_url(), None)
        } else if let Some(i) =
            input.downcast_ref::<op::delete_message_batch::DeleteMessageBatchInput>()
        {
            (Some("settle"), i.queue_url(), Some(i.entries().len()))
        } else if let Some(i) =
            input.downcast_ref::<op::change_message_visibility::ChangeMessageVisibilityInput>()
        {
            (Some("settle"), i.queue_url(), None)
        } else if let Some(i) =
            input.downcast_ref::<op::get_queue_attributes::GetQueueAttributesInput>()
        {
            (None, i.queue_url(), None)
        } else if let Some(i) = input.downcast_ref::<op::purge_queue::PurgeQueueInput>() {
            (None, i.queue_url(), None)
        } else if let Some(i) = input.downcast_ref::<op::delete_queue::DeleteQueueInput>() {
            (None, i.queue_url(), None)
        } else {
            return;
        };
        attributes.push(KeyValue::new("messaging.system", "aws_sqs"));
        attributes.push(KeyValue::new("messaging.operation.name", method.to_owned()));
        if let Some(url) = url {
            attributes.push(KeyValue::new(
                "messaging.destination.name",
                queue_name(url).to_owned(),
            ));
        }
        if let Some(kind) = kind {
            attributes.push(KeyValue::new("messaging.operation.type", kind));
        }
        if let Some(count) = count {
            batch_count(count, attributes);
        }
    }

    pub(super) fn from_output(output: &Output, attributes: &mut Vec<KeyValue>) {
        if let Some(o) = output.downcast_ref::<op::send_message::SendMessageOutput>() {
            message_id(o.message_id(), attributes);
        } else if let Some(o) = output.downcast_ref::<op::receive_message::ReceiveMessageOutput>() {
            batch_count(o.messages().len(), attributes);
        }
    }

    #[cfg(test)]
    #[test]
    fn queue_names_come_from_the_url() {
        assert_eq!(
            queue_name("https://sqs.eu-west-1.amazonaws.com/123456789012/orders"),
            "orders"
        );
        assert_eq!(
            queue_name("http://localhost:5000/123456789012/jobs/"),
            "jobs"
        );
    }
}

#[cfg(feature = "aws-sns")]
mod sns {
    use aws_sdk_sns::operation as op;
    use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};
    use opentelemetry::KeyValue;

    use super::{SEND, batch_count, message_id};

    pub(super) fn from_input(method: &str, input: &Input, attributes: &mut Vec<KeyValue>) {
        let (arn, count) = if let Some(i) = input.downcast_ref::<op::publish::PublishInput>() {
            (i.topic_arn().or(i.target_arn()), None)
        } else if let Some(i) = input.downcast_ref::<op::publish_batch::PublishBatchInput>() {
            (i.topic_arn(), Some(i.publish_batch_request_entries().len()))
        } else {
            return;
        };
        attributes.push(KeyValue::new("messaging.system", "aws_sns"));
        attributes.push(KeyValue::new("messaging.operation.name", method.to_owned()));
        attributes.push(KeyValue::new("messaging.operation.type", SEND));
        if let Some(arn) = arn {
            // arn:aws:sns:region:account:topic → topic
            let topic = arn.rsplit(':').next().unwrap_or(arn);
            attributes.push(KeyValue::new(
                "messaging.destination.name",
                topic.to_owned(),
            ));
            attributes.push(KeyValue::new("aws.sns.topic.arn", arn.to_owned()));
        }
        if let Some(count) = count {
            batch_count(count, attributes);
        }
    }

    pub(super) fn from_output(output: &Output, attributes: &mut Vec<KeyValue>) {
        if let Some(o) = output.downcast_ref::<op::publish::PublishOutput>() {
            message_id(o.message_id(), attributes);
        }
    }
}

#[cfg(feature = "aws-dynamodb")]
mod dynamodb {
    use aws_sdk_dynamodb::operation as op;
    use aws_smithy_runtime_api::client::interceptors::context::Input;
    use opentelemetry::{Array, KeyValue, StringValue, Value};

    /// The tables an operation touches, in input order without repeats.
    fn tables(input: &Input) -> Vec<String> {
        macro_rules! single {
            ($($module:ident :: $input:ident),* $(,)?) => {
                $(if let Some(i) = input.downcast_ref::<op::$module::$input>() {
                    return i.table_name().map(str::to_owned).into_iter().collect();
                })*
            };
        }
        single!(
            get_item::GetItemInput,
            put_item::PutItemInput,
            update_item::UpdateItemInput,
            delete_item::DeleteItemInput,
            query::QueryInput,
            scan::ScanInput,
            create_table::CreateTableInput,
            describe_table::DescribeTableInput,
            update_table::UpdateTableInput,
            delete_table::DeleteTableInput,
        );
        let mut names: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        };
        if let Some(i) = input.downcast_ref::<op::batch_get_item::BatchGetItemInput>() {
            i.request_items()
                .into_iter()
                .flatten()
                .for_each(|(t, _)| add(t));
        } else if let Some(i) = input.downcast_ref::<op::batch_write_item::BatchWriteItemInput>() {
            i.request_items()
                .into_iter()
                .flatten()
                .for_each(|(t, _)| add(t));
        } else if let Some(i) =
            input.downcast_ref::<op::transact_get_items::TransactGetItemsInput>()
        {
            i.transact_items()
                .iter()
                .filter_map(|item| item.get())
                .for_each(|get| add(get.table_name()));
        } else if let Some(i) =
            input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>()
        {
            for item in i.transact_items() {
                let table = item
                    .put()
                    .map(|x| x.table_name())
                    .or_else(|| item.update().map(|x| x.table_name()))
                    .or_else(|| item.delete().map(|x| x.table_name()))
                    .or_else(|| item.condition_check().map(|x| x.table_name()));
                if let Some(table) = table {
                    add(table);
                }
            }
        }
        // HashMap order is random: a stable order for the span.
        names.sort();
        names
    }

    pub(super) fn from_input(input: &Input, attributes: &mut Vec<KeyValue>) {
        let names = tables(input);
        if !names.is_empty() {
            let values: Vec<StringValue> = names.into_iter().map(StringValue::from).collect();
            attributes.push(KeyValue::new(
                "aws.dynamodb.table_names",
                Value::Array(Array::String(values)),
            ));
        }
    }
}

#[cfg(feature = "secrets")]
mod secretsmanager {
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput;
    use aws_smithy_runtime_api::client::interceptors::context::Input;
    use opentelemetry::KeyValue;

    pub(super) fn from_input(input: &Input, attributes: &mut Vec<KeyValue>) {
        if let Some(i) = input.downcast_ref::<GetSecretValueInput>() {
            if let Some(id) = i.secret_id() {
                attributes.push(KeyValue::new("aws.secretsmanager.secret_id", id.to_owned()));
            }
            attributes.push(KeyValue::new(
                "aws.secretsmanager.version_stage",
                i.version_stage().unwrap_or("AWSCURRENT").to_owned(),
            ));
        }
    }
}
