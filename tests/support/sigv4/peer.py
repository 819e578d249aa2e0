"""The AWS side of the X-Ray OTLP tests, on 127.0.0.1: run by tests/support/sigv4.rs.

- An HTTPS OTLP/HTTP receiver (`/v1/traces`) standing in for xray.<region>.amazonaws.com: it
  verifies every request's SigV4 signature with botocore's own signer (recomputed from the
  received method, path, signed headers and body, for service `xray` and the expected region),
  decodes the protobuf body with `opentelemetry-proto` and records the spans. Refusals answer
  like the real endpoint: a `google.rpc.Status` protobuf body with the AWS message.
- An ECS container credentials endpoint (`/creds`, for AWS_CONTAINER_CREDENTIALS_FULL_URI):
  every call hands out new short-lived credentials (`--lifetime` seconds).
- An ECS task metadata endpoint v4 (`/v4/<id>` and `/v4/<id>/task`) serving recorded documents.
- `/records` (GET: every OTLP request seen, as JSON) and `/mode` (POST JSON: `mode` = `ok`,
  `tamper` (a byte of the body is changed in transit), `wrong_secret` (the receiver knows
  another secret for the key), `unknown_key`, `no_transaction_search`, `deny`; `creds_delay`
  = seconds each credentials answer after the first is held back).

Writes `ports.json` into `--dir` once both servers listen.
"""

import argparse
import gzip
import hmac
import json
import os
import secrets
import ssl
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

LOCK = threading.Lock()
STATE = {"mode": "ok", "creds_delay": 0.0}
ISSUED = {}  # access key id -> {"secret", "token", "expiration"}
RECORDS = []
CREDS_CALLS = []


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def rpc_status(code, message):
    """A google.rpc.Status {code, message}, as the OTLP endpoint answers errors."""
    m = message.encode()
    return b"\x08" + varint(code) + b"\x12" + varint(len(m)) + m


def value(v):
    d = MessageToDict(v)
    if not d:
        return None
    (kind, inner), = d.items()
    if kind == "arrayValue":
        return [value_dict(x) for x in inner.get("values", [])]
    return inner


def value_dict(d):
    if not d:
        return None
    (kind, inner), = d.items()
    return inner


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def decode(body):
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    spans = []
    for rs in req.resource_spans:
        resource = attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append({
                    "name": s.name,
                    "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(),
                    "attributes": attrs(s.attributes),
                    "resource": resource,
                })
    return spans


def parse_auth(header):
    if not header or not header.startswith("AWS4-HMAC-SHA256 "):
        return None
    fields = {}
    for part in header[len("AWS4-HMAC-SHA256 "):].split(","):
        k, _, v = part.strip().partition("=")
        fields[k] = v
    scope = fields.get("Credential", "").split("/")
    if len(scope) != 5:
        return None
    return {
        "access_key": scope[0], "date": scope[1], "region": scope[2], "service": scope[3],
        "signed_headers": fields.get("SignedHeaders", "").split(";"),
        "signature": fields.get("Signature", ""),
    }


def verify(args, method, path, headers, body, mode):
    """(status, message, details) of SigV4 verification with botocore's signer."""
    auth = parse_auth(headers.get("authorization"))
    if auth is None:
        return 403, "Missing Authentication Token", {}
    details = {k: auth[k] for k in ("access_key", "region", "service", "signed_headers")}
    details["amz_date"] = headers.get("x-amz-date")
    with LOCK:
        issued = ISSUED.get(auth["access_key"])
    if issued is None or mode == "unknown_key":
        return 403, "The security token included in the request is invalid.", details
    if headers.get("x-amz-security-token") != issued["token"]:
        return 403, "The security token included in the request is invalid.", details
    details["key_expiration"] = issued["expiration"]
    secret = issued["secret"] if mode != "wrong_secret" else "not-" + issued["secret"]
    if mode == "tamper":
        body = body[:-1] + bytes([body[-1] ^ 0x01]) if body else b"x"
    if "x-amz-content-sha256" in headers:
        import hashlib
        if headers["x-amz-content-sha256"] != hashlib.sha256(body).hexdigest():
            return 403, "The request signature we calculated does not match the signature you provided.", details
    signed = {h: headers.get(h, "") for h in auth["signed_headers"]}
    request = AWSRequest(method=method, url=f"https://{headers.get('host')}{path}",
                         headers=signed, data=body)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(auth["access_key"], secret, issued["token"]), "xray",
                       args.region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, auth["signature"]):
        return (403, "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method. Consult the "
                "service documentation for details.", details)
    return 200, "", details


class Otlp(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        received = time.time()
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            mode = STATE["mode"]
        status, message, details = verify(self.server.args, "POST", self.path, headers, body, mode)
        record = dict(details, received_at=received, path=self.path, status=status,
                      message=message, content_encoding=headers.get("content-encoding"))
        if status == 200 and mode == "no_transaction_search":
            status, message = 400, ("The OTLP API is supported with CloudWatch Logs as a Trace "
                                    "Segment Destination.")
        elif status == 200 and mode == "deny":
            status, message = 403, ("User: arn:aws:sts::111122223333:assumed-role/users-api-task/"
                                    "abc is not authorized to perform: xray:PutTraceSegments on "
                                    "resource: *")
        if status == 200:
            raw = gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body
            record["spans"] = decode(raw)
            answer = b""
        else:
            answer = rpc_status(7 if status == 403 else 9, message)
        record["status"], record["message"] = status, message
        with LOCK:
            RECORDS.append(record)
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class Control(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, doc):
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        args = self.server.args
        if self.path == "/creds":
            with LOCK:
                n = len(CREDS_CALLS)
                delay = STATE["creds_delay"] if n > 0 else 0
            if delay:
                time.sleep(delay)
            key = f"ASIATEST{n:08d}"
            expiration = datetime.now(timezone.utc) + timedelta(seconds=args.lifetime)
            creds = {"secret": secrets.token_urlsafe(30), "token": secrets.token_urlsafe(40),
                     "expiration": expiration.timestamp()}
            with LOCK:
                ISSUED[key] = creds
                CREDS_CALLS.append({"at": time.time(), "key": key,
                                    "authorization": self.headers.get("authorization")})
            return self.answer(200, {
                "AccessKeyId": key, "SecretAccessKey": creds["secret"], "Token": creds["token"],
                "Expiration": expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "RoleArn": "arn:aws:iam::111122223333:role/users-api-task",
            })
        if self.path.startswith("/v4/"):
            name = args.task if self.path.endswith("/task") else args.container
            with open(name) as f:
                return self.answer(200, json.load(f))
        if self.path == "/records":
            with LOCK:
                return self.answer(200, {"requests": RECORDS, "creds_calls": CREDS_CALLS})
        self.answer(404, {"message": "not found"})

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.path == "/mode":
            with LOCK:
                STATE.update(json.loads(body))
            return self.answer(200, STATE)
        self.answer(404, {"message": "not found"})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--region", required=True)
    p.add_argument("--lifetime", type=float, default=3600)
    p.add_argument("--task", required=True)
    p.add_argument("--container", required=True)
    args = p.parse_args()

    otlp = ThreadingHTTPServer(("127.0.0.1", 0), Otlp)
    otlp.args = args
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    otlp.socket = context.wrap_socket(otlp.socket, server_side=True)
    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    control.args = args
    for server in (otlp, control):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    ports = {"otlp": otlp.server_address[1], "control": control.server_address[1]}
    tmp = os.path.join(args.dir, "ports.json.tmp")
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, os.path.join(args.dir, "ports.json"))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
