//! The JSON document Amazon SNS POSTs to an HTTP(S) subscription, and the string SNS signs.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::VerifyError;

/// What an SNS message is: its `Type` field.
///
/// ```
/// use apprunner::jobs::MessageType;
///
/// let kind: MessageType = serde_json::from_str(r#""SubscriptionConfirmation""#).unwrap();
/// assert_eq!(kind, MessageType::SubscriptionConfirmation);
/// assert_eq!(kind.as_str(), "SubscriptionConfirmation");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MessageType {
    /// A message published to the topic: the job.
    Notification,
    /// Sent once when the endpoint is subscribed: visit `SubscribeURL` to confirm.
    SubscriptionConfirmation,
    /// Sent when the subscription is deleted.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The `Type` value SNS sends.
    ///
    /// ```
    /// assert_eq!(apprunner::jobs::MessageType::Notification.as_str(), "Notification");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Notification => "Notification",
            Self::SubscriptionConfirmation => "SubscriptionConfirmation",
            Self::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        match value {
            "Notification" => Some(Self::Notification),
            "SubscriptionConfirmation" => Some(Self::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(Self::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of `MessageAttributes`: SNS sends `{"Type": "String", "Value": "…"}` (binary
/// values arrive base64-encoded in `Value`). Attributes are not covered by the signature.
///
/// ```
/// let attr: apprunner::jobs::MessageAttribute =
///     serde_json::from_str(r#"{"Type":"String","Value":"resize-image"}"#).unwrap();
/// assert_eq!(attr.value, "resize-image");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAttribute {
    /// `String`, `String.Array`, `Number` or `Binary`.
    #[serde(rename = "Type")]
    pub data_type: String,
    /// The value, as SNS sends it.
    #[serde(rename = "Value")]
    pub value: String,
}

/// The JSON document SNS POSTs to an HTTP(S) endpoint: a notification or a
/// (un)subscription confirmation.
///
/// Parse a request body with [`SnsMessage::from_json`] (its errors name the faulty field and
/// never quote the body), then verify it with [`Verifier`](super::Verifier) before trusting
/// any field. `Debug` leaves out `Message` (a job's payload) and `Token`.
///
/// ```
/// use apprunner::jobs::{MessageType, SnsMessage};
///
/// let body = br#"{
///   "Type": "Notification",
///   "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
///   "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
///   "Subject": "My First Message",
///   "Message": "Hello world!",
///   "Timestamp": "2012-05-02T00:54:06.655Z",
///   "SignatureVersion": "1",
///   "Signature": "EXAMPLE==",
///   "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
///   "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe"
/// }"#;
/// let msg = SnsMessage::from_json(body)?;
/// assert_eq!(msg.kind, MessageType::Notification);
/// assert!(!format!("{msg:?}").contains("Hello world!"));
/// # Ok::<(), apprunner::jobs::VerifyError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SnsMessage {
    /// `Type`.
    #[serde(rename = "Type")]
    pub kind: MessageType,
    /// `MessageId`: the same on every retry of one delivery (the key to deduplicate on).
    pub message_id: String,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject`, when the publisher set one (notifications only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `Message`: the payload. Never log it.
    pub message: String,
    /// `Timestamp`, exactly as sent (it is part of the signed string): ISO 8601 in UTC, the
    /// time of the *first* delivery attempt, kept on retries.
    pub timestamp: String,
    /// `SignatureVersion`: `1` (SHA1withRSA) or `2` (SHA256withRSA).
    pub signature_version: String,
    /// `Signature`: base64 of the RSA signature of [`string_to_sign`](Self::string_to_sign).
    pub signature: String,
    /// `SigningCertURL`: where the signing certificate is.
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    /// `SubscribeURL` (confirmations): GET it to confirm the subscription.
    #[serde(
        rename = "SubscribeURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub subscribe_url: Option<String>,
    /// `Token` (confirmations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `UnsubscribeURL` (notifications).
    #[serde(
        rename = "UnsubscribeURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub unsubscribe_url: Option<String>,
    /// `MessageAttributes` (notifications, when the publisher set some; not signed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_attributes: Option<BTreeMap<String, MessageAttribute>>,
}

impl fmt::Debug for SnsMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnsMessage")
            .field("kind", &self.kind)
            .field("message_id", &self.message_id)
            .field("topic_arn", &self.topic_arn)
            .field("subject", &self.subject)
            .field("message", &format_args!("<{} bytes>", self.message.len()))
            .field("timestamp", &self.timestamp)
            .field("signature_version", &self.signature_version)
            .field("signing_cert_url", &self.signing_cert_url)
            .field("subscribe_url", &self.subscribe_url)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("unsubscribe_url", &self.unsubscribe_url)
            .field("message_attributes", &self.message_attributes)
            .finish_non_exhaustive()
    }
}

/// The string fields of a message, in the order they are checked.
const REQUIRED: [&str; 8] = [
    "Type",
    "MessageId",
    "TopicArn",
    "Message",
    "Timestamp",
    "SignatureVersion",
    "Signature",
    "SigningCertURL",
];
const OPTIONAL: [&str; 4] = ["Subject", "SubscribeURL", "Token", "UnsubscribeURL"];

impl SnsMessage {
    /// Parses the body SNS POSTs. Checks the shape only (every field SNS always sends is
    /// there and is a string, `Type` is known): it does **not** verify the signature.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] naming the field (`body` when the body is not a JSON
    /// object). The error never contains the body.
    ///
    /// ```
    /// use apprunner::jobs::{SnsMessage, VerifyError};
    ///
    /// let err = SnsMessage::from_json(br#"{"Type":"Notification"}"#).unwrap_err();
    /// assert!(matches!(err, VerifyError::Malformed { field: "MessageId", .. }));
    /// ```
    pub fn from_json(body: &[u8]) -> Result<Self, VerifyError> {
        let object: Map<String, Value> = serde_json::from_slice(body).map_err(|_| {
            VerifyError::malformed(
                "body",
                "is not a JSON object (is this an SNS HTTP(S) POST?)",
            )
        })?;
        for field in REQUIRED {
            match object.get(field) {
                Some(Value::String(_)) => {}
                Some(_) => return Err(VerifyError::malformed(field, "is not a string")),
                None => return Err(VerifyError::malformed(field, "is missing")),
            }
        }
        for field in OPTIONAL {
            if let Some(value) = object.get(field)
                && !value.is_string()
                && !value.is_null()
            {
                return Err(VerifyError::malformed(field, "is not a string"));
            }
        }
        if let Some(Value::String(kind)) = object.get("Type")
            && MessageType::parse(kind).is_none()
        {
            return Err(VerifyError::malformed(
                "Type",
                "is not Notification, SubscriptionConfirmation or UnsubscribeConfirmation",
            ));
        }
        serde_json::from_value(Value::Object(object)).map_err(|_| {
            VerifyError::malformed(
                "MessageAttributes",
                "is not a map of {\"Type\", \"Value\"} objects",
            )
        })
    }

    /// The exact string SNS signed for this message: `name\nvalue\n` pairs in byte order of
    /// the names, with
    ///
    /// - `Notification`: `Message`, `MessageId`, `Subject` (only when present), `Timestamp`,
    ///   `TopicArn`, `Type`;
    /// - `SubscriptionConfirmation` and `UnsubscribeConfirmation`: `Message`, `MessageId`,
    ///   `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type`.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] when a confirmation lacks `SubscribeURL` or `Token`.
    ///
    /// ```
    /// # let msg = apprunner::jobs::SnsMessage::from_json(br#"{"Type":"Notification",
    /// #   "MessageId":"id-1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"hi",
    /// #   "Timestamp":"2026-01-01T00:00:00.000Z","SignatureVersion":"2","Signature":"",
    /// #   "SigningCertURL":"https://sns.us-east-1.amazonaws.com/x.pem"}"#)?;
    /// assert_eq!(
    ///     msg.string_to_sign()?,
    ///     "Message\nhi\nMessageId\nid-1\nTimestamp\n2026-01-01T00:00:00.000Z\n\
    ///      TopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n",
    /// );
    /// # Ok::<(), apprunner::jobs::VerifyError>(())
    /// ```
    pub fn string_to_sign(&self) -> Result<String, VerifyError> {
        let mut out = String::with_capacity(self.message.len() + 512);
        let mut pair = |name: &str, value: &str| {
            out.push_str(name);
            out.push('\n');
            out.push_str(value);
            out.push('\n');
        };
        pair("Message", &self.message);
        pair("MessageId", &self.message_id);
        match self.kind {
            MessageType::Notification => {
                if let Some(subject) = &self.subject {
                    pair("Subject", subject);
                }
                pair("Timestamp", &self.timestamp);
            }
            MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
                let subscribe_url = self.subscribe_url.as_deref().ok_or_else(|| {
                    VerifyError::malformed("SubscribeURL", "is missing from a confirmation")
                })?;
                let token = self.token.as_deref().ok_or_else(|| {
                    VerifyError::malformed("Token", "is missing from a confirmation")
                })?;
                pair("SubscribeURL", subscribe_url);
                pair("Timestamp", &self.timestamp);
                pair("Token", token);
            }
        }
        pair("TopicArn", &self.topic_arn);
        pair("Type", self.kind.as_str());
        Ok(out)
    }

    /// `Timestamp` as a point in time.
    ///
    /// # Errors
    ///
    /// [`VerifyError::Malformed`] when it is not an RFC 3339 / ISO 8601 date-time.
    ///
    /// ```
    /// # let msg = apprunner::jobs::SnsMessage::from_json(br#"{"Type":"Notification",
    /// #   "MessageId":"id-1","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"hi",
    /// #   "Timestamp":"1970-01-01T00:01:40.500Z","SignatureVersion":"2","Signature":"",
    /// #   "SigningCertURL":"https://sns.us-east-1.amazonaws.com/x.pem"}"#)?;
    /// use std::time::{Duration, UNIX_EPOCH};
    /// assert_eq!(msg.sent_at()?, UNIX_EPOCH + Duration::from_millis(100_500));
    /// # Ok::<(), apprunner::jobs::VerifyError>(())
    /// ```
    pub fn sent_at(&self) -> Result<SystemTime, VerifyError> {
        time::OffsetDateTime::parse(
            &self.timestamp,
            &time::format_description::well_known::Rfc3339,
        )
        .map(SystemTime::from)
        .map_err(|_| VerifyError::malformed("Timestamp", "is not an ISO 8601 date-time"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(kind: &str, extra: &str) -> Vec<u8> {
        format!(
            r#"{{"Type":"{kind}","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:jobs",
            "Message":"line 1\nline 2","Timestamp":"2026-12-07T02:40:45.123Z","SignatureVersion":"2",
            "Signature":"c2ln","SigningCertURL":"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem"{extra}}}"#
        )
        .into_bytes()
    }

    #[test]
    fn notification_without_subject() {
        let msg = SnsMessage::from_json(&body("Notification", "")).unwrap();
        assert_eq!(
            msg.string_to_sign().unwrap(),
            "Message\nline 1\nline 2\nMessageId\nm-1\nTimestamp\n2026-12-07T02:40:45.123Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:jobs\nType\nNotification\n"
        );
    }

    #[test]
    fn notification_with_subject_and_attributes() {
        let msg = SnsMessage::from_json(&body(
            "Notification",
            r#","Subject":"resize","UnsubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
               "MessageAttributes":{"job":{"Type":"String","Value":"resize-image"}}"#,
        ))
        .unwrap();
        assert_eq!(
            msg.string_to_sign().unwrap(),
            "Message\nline 1\nline 2\nMessageId\nm-1\nSubject\nresize\n\
             Timestamp\n2026-12-07T02:40:45.123Z\n\
             TopicArn\narn:aws:sns:us-east-1:123456789012:jobs\nType\nNotification\n"
        );
        assert_eq!(msg.message_attributes.unwrap()["job"].value, "resize-image");
    }

    #[test]
    fn confirmations_sign_subscribe_url_and_token() {
        let extra = r#","SubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok","Token":"tok""#;
        for kind in ["SubscriptionConfirmation", "UnsubscribeConfirmation"] {
            let msg = SnsMessage::from_json(&body(kind, extra)).unwrap();
            assert_eq!(
                msg.string_to_sign().unwrap(),
                format!(
                    "Message\nline 1\nline 2\nMessageId\nm-1\n\
                     SubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=tok\n\
                     Timestamp\n2026-12-07T02:40:45.123Z\nToken\ntok\n\
                     TopicArn\narn:aws:sns:us-east-1:123456789012:jobs\nType\n{kind}\n"
                )
            );
        }
        // a Subject on a confirmation is not signed
        let msg = SnsMessage::from_json(&body(
            "SubscriptionConfirmation",
            &format!("{extra},\"Subject\":\"x\""),
        ))
        .unwrap();
        assert!(!msg.string_to_sign().unwrap().contains("Subject"));
    }

    #[test]
    fn confirmation_without_token_is_malformed() {
        let msg = SnsMessage::from_json(&body(
            "SubscriptionConfirmation",
            r#","SubscribeURL":"https://sns.us-east-1.amazonaws.com/""#,
        ))
        .unwrap();
        assert!(matches!(
            msg.string_to_sign(),
            Err(VerifyError::Malformed { field: "Token", .. })
        ));
    }

    #[test]
    fn malformed_bodies_name_the_field_and_never_quote_the_body() {
        let secret = "s3cret-payload";
        let cases: [(Vec<u8>, &str); 5] = [
            (format!("not json {secret}").into_bytes(), "body"),
            (format!(r#"["{secret}"]"#).into_bytes(), "body"),
            (body("Delete", ""), "Type"),
            (
                format!(r#"{{"Type":"Notification","MessageId":1,"Message":"{secret}"}}"#)
                    .into_bytes(),
                "MessageId",
            ),
            (
                body(
                    "Notification",
                    &format!(r#","MessageAttributes":"{secret}""#),
                ),
                "MessageAttributes",
            ),
        ];
        for (input, field) in cases {
            let err = SnsMessage::from_json(&input).unwrap_err();
            assert!(
                matches!(err, VerifyError::Malformed { field: f, .. } if f == field),
                "{err:?}"
            );
            assert!(!err.to_string().contains(secret));
            assert_eq!(err.status(), 400);
        }
    }

    #[test]
    fn timestamp_parses_and_bad_timestamp_is_malformed() {
        let mut msg = SnsMessage::from_json(&body("Notification", "")).unwrap();
        let at = msg.sent_at().unwrap();
        let secs = at.duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(secs.as_millis() % 1000, 123);
        msg.timestamp = "yesterday".to_owned();
        assert!(matches!(
            msg.sent_at(),
            Err(VerifyError::Malformed {
                field: "Timestamp",
                ..
            })
        ));
    }
}
