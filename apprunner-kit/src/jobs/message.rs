//! TEMPORARY: replaced by the verification branch's message types at merge.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::collections::HashMap;

use serde::Deserialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum MessageType {
    Notification,
    SubscriptionConfirmation,
    UnsubscribeConfirmation,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
pub struct Attribute {
    #[serde(rename = "Type")]
    pub data_type: String,
    #[serde(rename = "Value")]
    pub value: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: MessageType,
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    #[serde(rename = "SubscribeURL")]
    pub subscribe_url: Option<String>,
    pub token: Option<String>,
    #[serde(default)]
    pub message_attributes: HashMap<String, Attribute>,
}

impl SnsMessage {
    pub fn kind(&self) -> MessageType {
        self.kind
    }
    pub fn message_id(&self) -> &str {
        &self.message_id
    }
    pub fn topic_arn(&self) -> &str {
        &self.topic_arn
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn subscribe_url(&self) -> Option<&str> {
        self.subscribe_url.as_deref()
    }
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }
    pub fn string_attributes(&self) -> impl Iterator<Item = (&str, &str)> {
        self.message_attributes
            .iter()
            .filter(|(_, a)| a.data_type == "String")
            .map(|(k, a)| (k.as_str(), a.value.as_str()))
    }
}
