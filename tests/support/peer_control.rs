//! Talking to the Python test peers' control endpoints (plain HTTP/1.1 on 127.0.0.1, one
//! request per connection): the SigV4 OTLP peer and the X-Ray sampling peer share it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// Sends `request` (a whole HTTP/1.1 request) to the peer on `port`; returns the raw answer.
pub(crate) fn exchange(port: u16, request: &str) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect(addr).expect("connect to the peer");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// `POST path` with the JSON `body`; the status line and the body of the answer.
pub(crate) fn post(port: u16, path: &str, body: &str) -> (String, String) {
    let response = exchange(
        port,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// `POST path` with `settings`, which the peer must take (200).
pub(crate) fn set(port: u16, path: &str, settings: &Value) {
    let (status, body) = post(port, path, &settings.to_string());
    assert!(status.starts_with("HTTP/1.1 200"), "{status}\n{body}");
}

/// `GET path`, whose answer is JSON.
pub(crate) fn get_json(port: u16, path: &str) -> Value {
    let response = exchange(
        port,
        &format!("GET {path} HTTP/1.1\r\nHost: peer\r\nConnection: close\r\n\r\n"),
    );
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .expect("an HTTP answer");
    serde_json::from_str(body).expect("the peer's JSON")
}
