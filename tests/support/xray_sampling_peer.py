"""The X-Ray side of the centralized sampling tests, on 127.0.0.1: run by
tests/support/xray_sampling.rs with the test virtualenv's Python.

It answers the two calls of X-Ray centralized sampling as the X-Ray API (or a sampling proxy
in front of it) does, and holds both directions to botocore's X-Ray service model (the
`xray` model shipped with botocore):

- `POST /GetSamplingRules` and `POST /SamplingTargets` (the model's `requestUri`s): the method
  and path must be the operation's, the body JSON, every member known to the input shape, of
  the right type and within the model's bounds (botocore's ParamValidator), timestamps in the
  rest-json protocol's epoch seconds. A request that breaks the model is answered 400 with an
  AWS error body and recorded as a violation.
- Every answer is built from what the test set, validated against the output shape, then
  parsed back with botocore's rest-json parser before it is sent. An answer that breaks the
  model is answered 500 instead, and recorded as a violation.
- `GetSamplingRules` pages through the rules (`page_size`, `NextToken`) as the API does.
- `GetSamplingTargets` records the statistics documents received (with the time they came)
  and answers with the targets the test set for the rules reported.

- With `sigv4` set (standing in for the X-Ray API rather than a proxy), every call must carry
  a SigV4 signature for service `xray` that botocore's signer recomputes from the request as
  received (the given access key, secret and region); otherwise it is answered 403 like the
  API and counted in `signature_failures`.

Control (JSON): `POST /control` sets any of `rules` (SamplingRule objects, the API's field
names; `Version` defaults to 1), `targets` (rule name -> {FixedRate, ReservoirQuota,
ReservoirQuotaTTL: seconds from now, Interval}), `page_size`, `last_rule_modification`
(`"now"`: the rules changed now), `sigv4` ({access_key, secret, region}), `delay` (seconds
every sampling call is held before its answer: a slow endpoint; the call is recorded on
arrival). `GET /records`
gives the calls seen, the violations, `unsigned` (no call carried `Authorization`),
`signed_ok` and `signature_failures`.

Writes `port` into `--dir/port` once it listens.
"""

import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.parsers import create_parser
from botocore.validate import ParamValidator

MODEL = botocore.session.get_session().get_service_model("xray")
OPERATIONS = {
    MODEL.operation_model(name).http["requestUri"]: MODEL.operation_model(name)
    for name in ("GetSamplingRules", "GetSamplingTargets")
}

LOCK = threading.Lock()
STATE = {
    "rules": [],
    "targets": {},
    "page_size": 100,
    "last_rule_modification": None,
    "sigv4": None,
    "delay": 0.0,
}
RECORDS = {
    "rules_calls": [], "targets_calls": [], "violations": [], "unsigned": True,
    "signed_ok": 0, "signature_failures": [],
}


def signature_problem(expect, method, path, headers, body):
    """Why the request's SigV4 signature does not verify (None: it does)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 Authorization header"
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    key, _date, region, service, _ = fields["Credential"].split("/")
    if key != expect["access_key"] or region != expect["region"] or service != "xray":
        return f"credential scope {fields['Credential']}: expected {expect['access_key']}/<date>/{expect['region']}/xray"
    sha = headers.get("x-amz-content-sha256")
    if sha is not None and sha != hashlib.sha256(body).hexdigest():
        return "x-amz-content-sha256 is not the body's"
    names = fields["SignedHeaders"].split(";")
    if "host" not in names or "x-amz-date" not in names:
        return f"host and x-amz-date must be signed: {names}"
    request = AWSRequest(method=method, url=f"http://{headers.get('host')}{path}",
                         headers={h: headers.get(h, "") for h in names}, data=body)
    request.context["timestamp"] = headers.get("x-amz-date", "")
    signer = SigV4Auth(Credentials(expect["access_key"], expect["secret"]), "xray", expect["region"])
    expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
    if not hmac.compare_digest(expected, fields["Signature"]):
        return "the signature does not match"
    return None


def epoch(dt):
    return dt.timestamp()


def timestamp_members(shape, value, path, found):
    """Every timestamp in `value` (per `shape`), with its path: rest-json sends epoch seconds."""
    if value is None:
        return
    if shape.type_name == "timestamp":
        found.append((path, value))
    elif shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                timestamp_members(member, value[name], f"{path}.{name}", found)
    elif shape.type_name == "list" and isinstance(value, list):
        for i, item in enumerate(value):
            timestamp_members(shape.member, item, f"{path}[{i}]", found)


def check_request(op, body):
    """The problems of a request body against `op`'s input shape (empty: none)."""
    problems = []
    try:
        params = json.loads(body or b"{}")
    except ValueError as e:
        return [f"body is not JSON: {e}"], None
    if not isinstance(params, dict):
        return ["body is not a JSON object"], None
    report = ParamValidator().validate(params, op.input_shape)
    if report.has_errors():
        problems.append(report.generate_report())
    stamps = []
    timestamp_members(op.input_shape, params, "input", stamps)
    for path, value in stamps:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{path}: rest-json timestamps are epoch seconds, got {value!r}")
    return problems, params


def to_wire(value):
    if isinstance(value, datetime):
        return epoch(value)
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return value


def check_response(op, output):
    """`output` as bytes after validating it, or the problems."""
    report = ParamValidator().validate(output, op.output_shape)
    if report.has_errors():
        return None, [report.generate_report()]
    body = json.dumps(to_wire(output)).encode()
    parsed = create_parser("rest-json").parse(
        {"status_code": 200, "headers": {"content-type": "application/json"}, "body": body},
        op.output_shape,
    )
    if "Error" in parsed and parsed["Error"].get("Code"):
        return None, [f"botocore cannot parse the answer: {parsed['Error']}"]
    return body, []


def rule_record(rule):
    rule = dict(rule)
    rule.setdefault("Version", 1)
    rule.setdefault("RuleARN", f"arn:aws:xray:eu-west-1:123456789012:sampling-rule/{rule['RuleName']}")
    now = datetime.now(timezone.utc)
    return {"SamplingRule": rule, "CreatedAt": now, "ModifiedAt": now}


def get_sampling_rules(params):
    with LOCK:
        rules = list(STATE["rules"])
        size = STATE["page_size"]
        RECORDS["rules_calls"].append({"at": time.time(), "params": params})
    start = int(params.get("NextToken") or 0)
    page = rules[start:start + size]
    out = {"SamplingRuleRecords": [rule_record(r) for r in page]}
    if start + size < len(rules):
        out["NextToken"] = str(start + size)
    return out


def get_sampling_targets(params):
    now = datetime.now(timezone.utc)
    with LOCK:
        RECORDS["targets_calls"].append({"at": time.time(), "params": params})
        targets = dict(STATE["targets"])
        modified = STATE["last_rule_modification"]
    docs = []
    for stat in params.get("SamplingStatisticsDocuments", []):
        target = targets.get(stat["RuleName"])
        if target is None:
            continue
        doc = {"RuleName": stat["RuleName"], "FixedRate": float(target.get("FixedRate", 0.0))}
        if "ReservoirQuota" in target:
            doc["ReservoirQuota"] = int(target["ReservoirQuota"])
            ttl = float(target.get("ReservoirQuotaTTL", 60))
            doc["ReservoirQuotaTTL"] = datetime.fromtimestamp(now.timestamp() + ttl, timezone.utc)
        if "Interval" in target:
            doc["Interval"] = int(target["Interval"])
        docs.append(doc)
    out = {"SamplingTargetDocuments": docs, "UnprocessedStatistics": []}
    if modified is not None:
        out["LastRuleModification"] = datetime.fromtimestamp(modified, timezone.utc)
    return out


HANDLERS = {"GetSamplingRules": get_sampling_rules, "GetSamplingTargets": get_sampling_targets}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)

    def send(self, status, body, content_type="application/json", headers=()):
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def violation(self, where, problems, status):
        with LOCK:
            RECORDS["violations"].append({"where": where, "problems": problems})
        print(f"VIOLATION {where}: {problems}", flush=True)
        kind = "InvalidRequestException" if status == 400 else "InternalFailure"
        self.send(status, json.dumps({"message": "; ".join(problems)}).encode(),
                  headers=[("x-amzn-errortype", kind)])

    def do_GET(self):
        if self.path == "/records":
            with LOCK:
                body = json.dumps(RECORDS).encode()
            self.send(200, body)
        else:
            self.send(404, b"{}")

    def do_POST(self):
        body = self.body()
        if self.path == "/control":
            update = json.loads(body)
            with LOCK:
                for key in ("rules", "targets", "page_size", "sigv4", "delay"):
                    if key in update:
                        STATE[key] = update[key]
                if update.get("last_rule_modification") == "now":
                    STATE["last_rule_modification"] = time.time()
            self.send(200, b"{}")
            return
        op = OPERATIONS.get(self.path)
        if op is None or op.http["method"] != "POST":
            self.violation(f"{self.command} {self.path}", ["no X-Ray sampling operation here"], 400)
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        with LOCK:
            expect = STATE["sigv4"]
            if "authorization" in headers:
                RECORDS["unsigned"] = False
        if expect is not None:
            problem = signature_problem(expect, self.command, self.path, headers, body)
            with LOCK:
                if problem is None:
                    RECORDS["signed_ok"] += 1
                else:
                    RECORDS["signature_failures"].append({"path": self.path, "problem": problem})
            if problem is not None:
                print(f"SIGNATURE {self.path}: {problem}", flush=True)
                self.send(403, json.dumps({"message": problem}).encode(),
                          headers=[("x-amzn-errortype", "InvalidSignatureException")])
                return
        problems, params = check_request(op, body)
        if problems:
            self.violation(f"{op.name} request", problems, 400)
            return
        answer = HANDLERS[op.name](params)
        with LOCK:
            delay = float(STATE["delay"])
        if delay > 0:
            time.sleep(delay)
        out, problems = check_response(op, answer)
        if problems:
            self.violation(f"{op.name} response", problems, 500)
            return
        self.send(200, out)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    tmp = os.path.join(args.dir, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(tmp, os.path.join(args.dir, "port"))
    server.serve_forever()


if __name__ == "__main__":
    main()
