//! The users API on ECS (Express Mode or a plain Fargate service), exporting straight to
//! X-Ray's OTLP endpoint: started with only the environment ECS gives a task (the database
//! secret injected as `DB_SECRET` JSON and the JWT key as `JWT_SECRET`, as ECS `secrets`
//! `valueFrom` injects them; the traces endpoint with `APPRUNNER_OTLP_SIGV4`; the container
//! credentials and task metadata endpoints), it serves requests, drains on SIGTERM, and its
//! traces arrive SigV4-signed at the verifying receiver (`apprunner_kit_tests::XrayOtlpPeer`).

mod support;

use std::time::Duration;

use apprunner_kit_tests::{PEER_REGION, Postgres, XrayOtlpPeer};
use serde_json::{Value, json};
use support::{Call, Http, Service, TraceHeader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_of_a_run_on_ecs_arrive_signed_at_xray() {
    let pg = Postgres::start();
    let db_url = url::Url::parse(&pg.create_database("users_ecs")).unwrap();
    let password = db_url
        .password()
        .unwrap_or("unused-by-a-trusting-cluster")
        .to_owned();
    let peer = XrayOtlpPeer::start(Duration::from_secs(3600));
    let db_secret = json!({
        "username": db_url.username(),
        "password": password,
        "host": pg.host(),
        "port": pg.port(),
        "dbname": db_url.path().trim_start_matches('/'),
        "engine": "postgres",
    });
    let mut env: Vec<(String, String)> = peer
        .ecs_env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push(("DB_SECRET".into(), db_secret.to_string()));
    env.push(("JWT_SECRET".into(), "e".repeat(64)));
    let dir = tempfile::tempdir().unwrap();
    let mut service = tokio::task::block_in_place(|| Service::start(dir.path(), &env));

    let http = Http::new();
    let base = service.url("");
    let ada = json!({"email": "ada@example.com", "password": "ada's long password"});
    let mut sent = Vec::new();
    for (call, name, status) in [
        (Call::new("POST", "/signup").json(&ada), "POST /signup", 201),
        (Call::new("POST", "/login").json(&ada), "POST /login", 200),
        (Call::new("GET", "/users"), "GET /users", 200),
    ] {
        let trace = TraceHeader::new();
        let reply = http.send(&base, &call, Some(&trace)).await;
        assert_eq!(reply.status, status, "{name}");
        sent.push((trace.trace_id, name));
    }
    service.sigterm();
    let status = tokio::task::block_in_place(|| service.wait_exit());
    assert!(status.success(), "{status}\n{}", service.output());

    let requests = peer.requests();
    assert!(!requests.is_empty(), "{}", service.output());
    for r in &requests {
        assert_eq!(r["status"], 200, "refused: {r}\n{}", service.output());
        assert_eq!(r["service"], "xray");
        assert_eq!(r["region"], PEER_REGION);
    }
    let spans: Vec<&Value> = requests
        .iter()
        .flat_map(|r| r["spans"].as_array().unwrap())
        .collect();
    for (trace_id, name) in &sent {
        assert!(
            spans
                .iter()
                .any(|s| s["trace_id"] == trace_id.as_str() && s["name"] == *name),
            "no {name} span in trace {trace_id}: {spans:#?}"
        );
    }
    let resource = &spans[0]["resource"];
    assert_eq!(resource["cloud.platform"], "aws_ecs");
    assert_eq!(resource["aws.log.group.names"], json!(["/ecs/users-api"]));
    assert_eq!(resource["service.name"], "users-api");
}
