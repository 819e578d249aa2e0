//! `apprunner::jobs::Jobs`'s route with signature verification on, served over HTTP, against
//! messages signed by a test key whose certificate a local HTTPS server serves (the verifier
//! trusts that host through its explicit test setting): what the endpoint answers, and whether
//! the job ran, for genuine v1 and v2 notifications, a flipped byte, a certificate on another
//! host, an old timestamp, and confirmations for an unknown topic.

#[path = "sns_common/mod.rs"]
mod sns_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use apprunner::jobs::Jobs;
use serde_json::{Value, json};
use sns_common::{CertServer, Signer, resign, timestamp};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:jobs";
const CERT_PATH: &str = "/SimpleNotificationService-endpoint.pem";

struct Served {
    base: String,
    runs: Arc<AtomicUsize>,
    http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(server: &CertServer) -> Served {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&runs);
    let router = Jobs::new()
        .topic(TOPIC)
        .verifier(server.verifier())
        .handle("count", move |(): ()| {
            let runs = Arc::clone(&counted);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::io::Error>(())
            }
        })
        .router()
        .await
        .expect("the jobs router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}{}", listener.local_addr().unwrap(), Jobs::PATH);
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Served {
        base,
        runs,
        http: reqwest::Client::new(),
        task,
    }
}

impl Served {
    async fn post(&self, message: &Value) -> u16 {
        self.http
            .post(&self.base)
            .header(
                "x-amz-sns-message-type",
                message["Type"].as_str().unwrap_or_default(),
            )
            .body(message.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
}

/// A signed notification of job `count`, message id `id`.
fn notification(signer: &Signer, version: &str, cert_url: &str, id: &str) -> Value {
    let mut message = json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": TOPIC,
        "Message": json!({"job": "count", "payload": null}).to_string(),
        "Timestamp": timestamp(time::Duration::ZERO),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    });
    resign(signer, &mut message);
    message
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_genuine_messages_run_jobs() {
    let signer = Signer::new();
    let server = CertServer::start(vec![(CERT_PATH, signer.cert_pem.clone())]).await;
    let cert_url = server.url(CERT_PATH);
    let served = serve(&server).await;

    // Genuine v1 (SHA1withRSA) and v2 (SHA256withRSA): run.
    assert_eq!(
        served
            .post(&notification(&signer, "1", &cert_url, "m-v1"))
            .await,
        200
    );
    assert_eq!(
        served
            .post(&notification(&signer, "2", &cert_url, "m-v2"))
            .await,
        200
    );
    assert_eq!(served.runs(), 2);

    // A flipped byte in the body SNS signed: refused, not run.
    let mut flipped = notification(&signer, "2", &cert_url, "m-flipped");
    flipped["Message"] = json!(
        json!({"job": "count", "payload": null})
            .to_string()
            .replace("count", "counu")
    );
    assert_eq!(served.post(&flipped).await, 400);
    // A flipped byte in the signature itself.
    let mut bad_signature = notification(&signer, "2", &cert_url, "m-badsig");
    let signature = bad_signature["Signature"].as_str().unwrap().to_owned();
    let flipped_char = if signature.starts_with('A') { "B" } else { "A" };
    bad_signature["Signature"] = json!(format!("{flipped_char}{}", &signature[1..]));
    assert_eq!(served.post(&bad_signature).await, 400);

    // A certificate on a host that is not SNS: refused before any fetch.
    let before = server.requests();
    let elsewhere = notification(
        &signer,
        "2",
        "https://sns.us-east-1.amazonaws.com.evil.example/SimpleNotificationService-x.pem",
        "m-elsewhere",
    );
    assert_eq!(served.post(&elsewhere).await, 403);
    assert_eq!(server.requests(), before);

    // Two hours old: stale.
    let mut stale = notification(&signer, "2", &cert_url, "m-stale");
    stale["Timestamp"] = json!(timestamp(-time::Duration::hours(2)));
    resign(&signer, &mut stale);
    assert_eq!(served.post(&stale).await, 400);
    assert_eq!(served.runs(), 2, "a refused message ran a job");

    // A genuine confirmation for a topic the service does not name: refused (nothing fetched).
    let mut foreign = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "c-foreign",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d9",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:someone-elses",
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=2336412f",
        "Timestamp": timestamp(time::Duration::ZERO),
        "SignatureVersion": "2",
        "SigningCertURL": cert_url,
    });
    resign(&signer, &mut foreign);
    assert_eq!(served.post(&foreign).await, 403);

    // The certificate was fetched once for everything above.
    assert_eq!(server.requests(), 1);
}
