//! The `aws` scenario: AWS SDK calls through traced clients against the emulator at
//! `PROBE_AWS_ENDPOINT` (moto, every service on one port; region `us-east-1`).
//!
//! Inside a SERVER span `request`:
//! - Secrets Manager (`AwsTracing` attached by hand): `GetSecretValue` of `PROBE_SECRET_ID`,
//!   then of a secret that does not exist;
//! - S3 (by hand too, for path-style addressing): `CreateBucket`, `PutObject` of
//!   `PROBE_PAYLOAD` under a key naming a person, `GetObject`;
//! - SQS, SNS and DynamoDB (clients from `apprunner::aws_client!`): `CreateQueue`,
//!   `SendMessage` of `PROBE_PAYLOAD`, `ReceiveMessage`; `CreateTopic`, `Publish`;
//!   `CreateTable`, `PutItem` with `PROBE_PAYLOAD` in an attribute;
//! - when `PROBE_FLAKY_ENDPOINT` is set, one `GetSecretValue` of `PROBE_SECRET_ID` through it
//!   (a proxy failing the first attempt: the SDK retries).
//!
//! Outside any span: one `ListQueues` (the service's own call at start-up, say).
//!
//! Prints `PROBE_AWS {"found", "missing_error", "sqs_message_id", "sns_message_id",
//! "flaky_found"}`.

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType,
};
use aws_sdk_secretsmanager::config::Credentials;
use tracing::Instrument as _;

/// The emulator's configuration: static test credentials, `us-east-1`, `endpoint`.
fn sdk_config(endpoint: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "probe",
            )),
        )
        .build()
}

/// A Secrets Manager client with the interceptor attached by hand.
fn secrets_client(config: &SdkConfig) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        aws_sdk_secretsmanager::config::Builder::from(config)
            .interceptor(apprunner::client::AwsTracing::default())
            .build(),
    )
}

pub(crate) fn calls() {
    let endpoint = std::env::var("PROBE_AWS_ENDPOINT").expect("PROBE_AWS_ENDPOINT");
    let secret_id = std::env::var("PROBE_SECRET_ID").expect("PROBE_SECRET_ID");
    let payload = std::env::var("PROBE_PAYLOAD").unwrap_or_else(|_| "payload".into());
    let flaky = std::env::var("PROBE_FLAKY_ENDPOINT").ok();
    let config = sdk_config(&endpoint);
    let secrets = secrets_client(&config);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .interceptor(apprunner::client::AwsTracing::default())
            .build(),
    );
    let sqs = apprunner::aws_client!(aws_sdk_sqs, &config);
    let sns = apprunner::aws_client!(aws_sdk_sns, &config);
    let dynamodb = apprunner::aws_client!(aws_sdk_dynamodb, &config);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = tracing::info_span!("request", otel.kind = "server");
    let outcome = runtime.block_on(
        async {
            let found = secrets
                .get_secret_value()
                .secret_id(&secret_id)
                .send()
                .await
                .is_ok();
            let missing = secrets
                .get_secret_value()
                .secret_id("no/such/secret")
                .send()
                .await
                .map_err(|e| aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string())
                .err()
                .unwrap_or_default();

            s3.create_bucket()
                .bucket("probe-bucket")
                .send()
                .await
                .expect("CreateBucket");
            s3.put_object()
                .bucket("probe-bucket")
                .key("users/alice@example.com.json")
                .body(payload.clone().into_bytes().into())
                .send()
                .await
                .expect("PutObject");
            let object = s3
                .get_object()
                .bucket("probe-bucket")
                .key("users/alice@example.com.json")
                .send()
                .await
                .expect("GetObject");
            let read = object.body.collect().await.expect("the object's body");
            assert_eq!(read.into_bytes().as_ref(), payload.as_bytes());

            let queue_url = sqs
                .create_queue()
                .queue_name("probe-jobs")
                .send()
                .await
                .expect("CreateQueue")
                .queue_url
                .expect("a queue URL");
            let sqs_message_id = sqs
                .send_message()
                .queue_url(&queue_url)
                .message_body(&payload)
                .send()
                .await
                .expect("SendMessage")
                .message_id
                .expect("a message id");
            let received = sqs
                .receive_message()
                .queue_url(&queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("ReceiveMessage");
            assert_eq!(received.messages().len(), 1);

            let topic_arn = sns
                .create_topic()
                .name("probe-topic")
                .send()
                .await
                .expect("CreateTopic")
                .topic_arn
                .expect("a topic ARN");
            let sns_message_id = sns
                .publish()
                .topic_arn(&topic_arn)
                .message(&payload)
                .send()
                .await
                .expect("Publish")
                .message_id
                .expect("a message id");

            dynamodb
                .create_table()
                .table_name("probe-users")
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name("id")
                        .key_type(KeyType::Hash)
                        .build()
                        .unwrap(),
                )
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name("id")
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .unwrap(),
                )
                .billing_mode(BillingMode::PayPerRequest)
                .send()
                .await
                .expect("CreateTable");
            dynamodb
                .put_item()
                .table_name("probe-users")
                .item("id", AttributeValue::S("alice".into()))
                .item("note", AttributeValue::S(payload.clone()))
                .send()
                .await
                .expect("PutItem");

            let flaky_found = match &flaky {
                Some(flaky) => secrets_client(&sdk_config(flaky))
                    .get_secret_value()
                    .secret_id(&secret_id)
                    .send()
                    .await
                    .is_ok(),
                None => false,
            };
            serde_json::json!({
                "found": found,
                "missing_error": missing,
                "sqs_message_id": sqs_message_id,
                "sns_message_id": sns_message_id,
                "flaky_found": flaky_found,
            })
        }
        .instrument(request),
    );
    // Outside any span.
    runtime
        .block_on(sqs.list_queues().send())
        .expect("ListQueues");
    println!("PROBE_AWS {outcome}");
}
