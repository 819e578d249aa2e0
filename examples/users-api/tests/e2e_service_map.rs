//! The X-Ray service map of a whole run of the users API, replayed: the service starts the way
//! App Runner runs it (secrets from the Secrets Manager emulator, a real PostgreSQL, spans to
//! an OTLP receiver), serves a realistic set of requests, drains on SIGTERM; then every span the
//! receiver got goes through the collector X-Ray exporter's naming rules
//! (`apprunner_kit_tests::xray`).
//!
//! The map must show the service once, and nothing else as a service (no start-up span named
//! after itself, no database endpoint as the service), exactly one node for the database and
//! `SecretsManager` for the AWS calls.

mod support;

use std::collections::BTreeSet;

use apprunner_kit_tests::Postgres;
use apprunner_kit_tests::xray::{self, SegmentKind};
use serde_json::json;
use support::{AppRunnerPeers, Call, Http, Service, TraceHeader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_draws_one_service_one_database_and_secrets_manager() {
    let pg = Postgres::start();
    let db_url = url::Url::parse(&pg.create_database("users_map")).unwrap();
    let db_name = db_url.path().trim_start_matches('/').to_owned();
    let password = db_url
        .password()
        .unwrap_or("unused-by-a-trusting-cluster")
        .to_owned();
    let AppRunnerPeers {
        moto: _moto,
        receiver,
        env,
        ..
    } = AppRunnerPeers::start(&pg, &db_url, &password, &"k".repeat(64)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));

    // Requests as App Runner forwards them (with X-Amzn-Trace-Id) and as a direct caller
    // would send them (without: the SERVER span is then a root).
    let http = Http::new();
    let base = service.url("");
    let send = async |call: Call, traced: bool| {
        let trace = TraceHeader::new();
        http.send(&base, &call, traced.then_some(&trace)).await
    };
    let ada = json!({"email": "ada@example.com", "password": "ada's long password"});
    let bob = json!({"email": "bob@example.com", "password": "bob's long password"});
    assert_eq!(
        send(Call::new("POST", "/signup").json(&ada), true)
            .await
            .status,
        201
    );
    assert_eq!(
        send(Call::new("POST", "/signup").json(&ada), false)
            .await
            .status,
        409
    );
    let login = send(Call::new("POST", "/login").json(&ada), true).await;
    assert_eq!(login.status, 200);
    let cookie = login.session_cookie();
    let created = send(Call::new("POST", "/users").json(&bob).cookie(&cookie), true).await;
    assert_eq!(created.status, 201);
    let bob_id = created.json()["data"]["id"].as_str().unwrap().to_owned();
    for traced in [true, false] {
        assert_eq!(send(Call::new("GET", "/users"), traced).await.status, 200);
    }
    let one = Call::new("GET", format!("/users/{bob_id}"));
    assert_eq!(send(one, true).await.status, 200);
    // A user may change only themselves: bob logs in.
    let login = send(Call::new("POST", "/login").json(&bob), true).await;
    assert_eq!(login.status, 200);
    let cookie = login.session_cookie();
    let renamed = json!({"email": "robert@example.com", "password": "robert's long password"});
    let update = Call::new("PUT", format!("/users/{bob_id}"))
        .json(&renamed)
        .cookie(&cookie);
    assert_eq!(send(update, true).await.status, 200);
    let delete = Call::new("DELETE", format!("/users/{bob_id}")).cookie(&cookie);
    assert_eq!(send(delete, true).await.status, 200);
    let gone = Call::new("GET", format!("/users/{bob_id}"));
    assert_eq!(send(gone, true).await.status, 404);
    let docs = Call::new("GET", "/api-docs/openapi.json");
    assert_eq!(send(docs, true).await.status, 200);
    assert_eq!(send(Call::new("GET", "/healthz"), true).await.status, 200);
    let logout = Call::new("POST", "/logout").cookie(&cookie);
    assert_eq!(send(logout, true).await.status, 200);

    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(status.success(), "exit {status}:\n{}", service.output());

    let spans = receiver.spans();
    let summary = || spans.iter().map(|s| s.summary()).collect::<Vec<_>>();
    assert!(
        spans.iter().any(|s| s.name == "secrets bootstrap"),
        "the run includes the start-up trace: {:#?}",
        summary()
    );
    let map = xray::service_map(&spans);

    // One service node, named after the service.
    assert_eq!(
        map.services,
        BTreeSet::from(["users-api".to_owned()]),
        "segments not named after the service: {:?} from {:#?}",
        map.services,
        summary()
    );

    // Exactly one node per database, whatever the statement.
    let db_nodes: BTreeSet<String> = spans
        .iter()
        .filter(|s| s.attr("db.system.name").is_some())
        .flat_map(xray::segments)
        .map(|segment| {
            assert!(segment.is_remote_node(), "{segment:?}");
            segment.name
        })
        .collect();
    assert_eq!(
        db_nodes,
        BTreeSet::from([format!("{db_name}@{}", pg.host())]),
        "the database's nodes"
    );

    // The AWS calls: Secrets Manager, in the aws namespace.
    let aws: Vec<_> = spans
        .iter()
        .filter(|s| s.attr_str("rpc.system") == Some("aws-api"))
        .flat_map(xray::segments)
        .filter(|segment| segment.kind == SegmentKind::Subsegment)
        .collect();
    assert_eq!(aws.len(), 2, "the DB secret and the JWT key: {aws:#?}");
    for segment in &aws {
        assert_eq!(segment.name, "SecretsManager");
        assert_eq!(segment.namespace.as_deref(), Some("aws"));
    }

    // Nothing else downstream.
    let mut expected = db_nodes;
    expected.insert("SecretsManager".to_owned());
    assert_eq!(map.remotes, expected, "{:#?}", summary());
}
