//! What X-Ray's OTLP endpoint means when it refuses an export, and what to do about it, in one
//! line.
//!
//! The endpoint answers an OTLP/HTTP error with a `google.rpc.Status` protobuf body (the
//! collector prints it as `HTTP Status Code 403, Message=..., Details=[]`); AWS's front end
//! may answer with a JSON `{"message": ...}` instead. The messages matched here are those of
//! CloudWatch's "Troubleshooting the OTLP endpoint" page (`The security token included in the
//! request is invalid.`, `The OTLP API is supported with CloudWatch Logs as a Trace Segment
//! Destination.`, `Missing Authentication Token`) and AWS's common SigV4 errors
//! (`SignatureDoesNotMatch`, `ExpiredToken`, `AccessDenied: ... is not authorized to perform:
//! <action>`). The X-Ray developer guide says the OTLP traces endpoint is authorized as
//! `xray:PutTraceSegments`.

/// The IAM action the OTLP traces endpoint authorizes (X-Ray developer guide, "Setting up
/// bearer token authentication for traces").
pub(crate) const OTLP_IAM_ACTION: &str = "xray:PutTraceSegments";

/// The longest message quoted from a response.
const MAX_MESSAGE: usize = 300;

/// One line naming the cause and the fix of a refused export, or `None` for statuses that
/// are not the caller's to fix (2xx, 408, 429, 5xx: retried or transient).
pub(crate) fn diagnose(status: u16, body: &[u8], region: &str) -> Option<String> {
    if !(400..500).contains(&status) || status == 408 || status == 429 {
        return None;
    }
    let message = message(body);
    let lower = message.to_ascii_lowercase();
    let quoted = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} \"{message}\"")
    };
    let line = if lower.contains("trace segment destination") {
        format!(
            "X-Ray refused the spans ({quoted}): CloudWatch Transaction Search is not enabled in \
             {region}. Enable it once per account and region (CloudWatch console, Application \
             Signals > Transaction Search, or `aws xray update-trace-segment-destination \
             --destination CloudWatchLogs --region {region}`)"
        )
    } else if lower.contains("not authorized to perform") || lower.contains("accessdenied") {
        let action = denied_action(&message).unwrap_or(OTLP_IAM_ACTION);
        format!(
            "X-Ray refused the spans ({quoted}): the role whose credentials sign the exports \
             lacks the IAM action {action}. Allow {action} on resource \"*\" in that role's \
             policy (on ECS, the task role)"
        )
    } else if lower.contains("security token included in the request is invalid")
        || lower.contains("unrecognizedclient")
        || lower.contains("invalidclienttokenid")
    {
        format!(
            "X-Ray refused the spans ({quoted}): the AWS credentials are not valid (unknown \
             access key id or session token). Check where the credentials come from (on ECS the \
             task role; else AWS_ACCESS_KEY_ID / AWS_SESSION_TOKEN or the profile) and that the \
             key is active"
        )
    } else if lower.contains("expired") {
        format!(
            "X-Ray refused the spans ({quoted}): the AWS credentials or the signature have \
             expired. Check the credential source refreshes (on ECS the task role) and that the \
             clock is right"
        )
    } else if lower.contains("signature we calculated does not match")
        || lower.contains("signaturedoesnotmatch")
        || lower.contains("invalidsignature")
    {
        format!(
            "X-Ray refused the spans ({quoted}): the SigV4 signature does not match. The secret \
             access key does not belong to the access key id, or something between the service \
             and X-Ray changes the request (a proxy rewriting the path, Host, body or \
             headers); behind a proxy or VPC endpoint set APPRUNNER_OTLP_SIGV4 to the region \
             and keep the request as sent"
        )
    } else if lower.contains("missing authentication token") {
        format!(
            "X-Ray refused the spans ({quoted}): the request arrived unsigned. Set \
             APPRUNNER_OTLP_SIGV4=<region> when the endpoint is not xray.<region>.amazonaws.com, \
             and make sure no proxy drops the Authorization header"
        )
    } else if status == 403 {
        format!(
            "X-Ray refused the spans ({quoted}): check the signing credentials (on ECS the task \
             role) and that their policy allows {OTLP_IAM_ACTION}"
        )
    } else {
        format!("the OTLP endpoint refused the spans ({quoted})")
    };
    Some(line)
}

/// The action named by `... is not authorized to perform: xray:PutTraceSegments on ...`.
fn denied_action(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("perform: ")?;
    let action = rest
        .split(|c: char| c.is_whitespace() || c == ',' || c == '"')
        .next()?
        .trim_end_matches('.');
    (action.contains(':') && action.len() < 100).then_some(action)
}

/// The human message of an error body: a `google.rpc.Status`'s `message`, a JSON `message`,
/// or the text itself; cut to a readable length, control characters removed.
fn message(body: &[u8]) -> String {
    let raw = status_message(body)
        .or_else(|| json_message(body))
        .or_else(|| {
            std::str::from_utf8(body)
                .ok()
                .filter(|text| !text.trim().is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match clean.char_indices().nth(MAX_MESSAGE) {
        Some((cut, _)) => format!("{}...", &clean[..cut]),
        None => clean,
    }
}

fn json_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    ["message", "Message", "errorMessage"]
        .iter()
        .find_map(|key| value.get(key)?.as_str().map(str::to_owned))
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Field 2 (`message`) of a protobuf `google.rpc.Status`, when `body` is one.
fn status_message(body: &[u8]) -> Option<String> {
    let mut at = 0;
    let mut message = None;
    while at < body.len() {
        let key = varint(body, &mut at)?;
        match key & 7 {
            0 => {
                varint(body, &mut at)?;
            }
            2 => {
                let len = usize::try_from(varint(body, &mut at)?).ok()?;
                let end = at.checked_add(len).filter(|end| *end <= body.len())?;
                if key >> 3 == 2 {
                    message = Some(std::str::from_utf8(&body[at..end]).ok()?.to_owned());
                }
                at = end;
            }
            _ => return None,
        }
    }
    message.filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `google.rpc.Status { code, message }` as the endpoint sends it.
    fn status(code: u8, message: &str) -> Vec<u8> {
        let mut out = vec![0x08, code, 0x12];
        let len = message.len();
        assert!(len < 128);
        out.push(len as u8);
        out.extend_from_slice(message.as_bytes());
        out
    }

    #[test]
    fn transaction_search_names_the_fix() {
        let body = status(
            9,
            "The OTLP API is supported with CloudWatch Logs as a Trace Segment Destination.",
        );
        let line = diagnose(400, &body, "eu-west-1").unwrap();
        assert!(
            line.contains("Transaction Search is not enabled in eu-west-1"),
            "{line}"
        );
        assert!(
            line.contains("--destination CloudWatchLogs --region eu-west-1"),
            "{line}"
        );
    }

    #[test]
    fn a_missing_action_is_named_exactly() {
        let json = br#"{"message":"User: arn:aws:sts::123456789012:assumed-role/task/abc is not authorized to perform: xray:PutTraceSegments on resource: *"}"#;
        let line = diagnose(403, json, "eu-west-1").unwrap();
        assert!(
            line.contains("lacks the IAM action xray:PutTraceSegments"),
            "{line}"
        );
        let other = status(
            7,
            "User: x is not authorized to perform: xray:PutSpans because no identity-based policy allows it",
        );
        let line = diagnose(403, &other, "eu-west-1").unwrap();
        assert!(
            line.contains("lacks the IAM action xray:PutSpans"),
            "{line}"
        );
        let bare = diagnose(403, b"AccessDeniedException", "eu-west-1").unwrap();
        assert!(bare.contains(OTLP_IAM_ACTION), "{bare}");
    }

    #[test]
    fn credential_and_signature_errors_say_which() {
        let invalid = status(16, "The security token included in the request is invalid.");
        assert!(
            diagnose(403, &invalid, "r")
                .unwrap()
                .contains("credentials are not valid")
        );
        let mismatch = br#"{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}"#;
        assert!(
            diagnose(403, mismatch, "r")
                .unwrap()
                .contains("signature does not match")
        );
        let expired = status(16, "The security token included in the request is expired");
        assert!(diagnose(403, &expired, "r").unwrap().contains("expired"));
        let unsigned =
            diagnose(403, b"{\"message\":\"Missing Authentication Token\"}", "r").unwrap();
        assert!(unsigned.contains("arrived unsigned"), "{unsigned}");
    }

    #[test]
    fn unknown_client_errors_keep_status_and_message_and_others_are_not_diagnosed() {
        let line = diagnose(413, &status(3, "payload too large"), "r").unwrap();
        assert!(line.contains("HTTP 413 \"payload too large\""), "{line}");
        let long = "x".repeat(1000);
        assert!(diagnose(400, long.as_bytes(), "r").unwrap().len() < 600);
        assert_eq!(diagnose(503, b"busy", "r"), None);
        assert_eq!(diagnose(429, b"slow down", "r"), None);
        assert_eq!(diagnose(200, b"", "r"), None);
        assert_eq!(status_message(&[0x12, 0x05, b'a']), None, "truncated");
    }
}
