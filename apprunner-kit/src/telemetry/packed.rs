//! A span's name and attributes kept in one text buffer, for the kit's per-request spans.
//!
//! The HTTP layer gives every SERVER span up to a dozen attributes, half of them strings taken
//! from the request (path, route, host, client, user agent). As OpenTelemetry `KeyValue`s that
//! is one allocation per string, plus the vector, plus the name. [`PackedAttributes`] copies the
//! strings into one buffer instead; the kit's native spans encode them straight from it, and
//! the buffers are recycled per thread, so a steady load allocates nothing for them. Spans of
//! other tracers get ordinary `KeyValue`s ([`PackedAttributes::to_key_values`]).
#![cfg_attr(
    not(feature = "http"),
    allow(
        dead_code,
        reason = "the HTTP layer packs attributes; the database pools only span names"
    )
)]

use std::cell::RefCell;
use std::ops::Range;

use opentelemetry::{KeyValue, Value};

/// One attribute value of a [`PackedAttributes`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum PackedValue<'a> {
    Str(&'a str),
    I64(i64),
}

#[derive(Debug, Clone)]
enum Stored {
    Text(Range<u32>),
    Static(&'static str),
    I64(i64),
}

/// A span name and attributes whose strings share one buffer. See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct PackedAttributes {
    text: String,
    name: Option<Range<u32>>,
    entries: Vec<(&'static str, Stored)>,
}

thread_local! {
    /// Emptied buffers, reused by [`PackedAttributes::new`].
    #[allow(clippy::vec_box, reason = "the boxes themselves are reused, not only their contents")]
    static SPARE: RefCell<Vec<Box<PackedAttributes>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers kept per thread, and the largest text kept (a huge user agent does not stay pinned).
const SPARE_PER_THREAD: usize = 64;
const SPARE_MAX_TEXT: usize = 4096;

impl PackedAttributes {
    /// An empty set, reusing a buffer this thread recycled when there is one.
    pub(crate) fn new() -> Box<Self> {
        SPARE
            .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()))
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Empties `packed` and keeps it for this thread's next [`new`](Self::new).
    pub(crate) fn recycle(mut packed: Box<Self>) {
        if packed.text.capacity() > SPARE_MAX_TEXT {
            return;
        }
        packed.text.clear();
        packed.name = None;
        packed.entries.clear();
        let _ = SPARE.try_with(|spare| {
            if let Ok(mut spare) = spare.try_borrow_mut()
                && spare.len() < SPARE_PER_THREAD
            {
                spare.push(packed);
            }
        });
    }

    fn push_text(&mut self, parts: &[&str]) -> Range<u32> {
        let start = self.text.len();
        for part in parts {
            self.text.push_str(part);
        }
        let end = self.text.len();
        // Offsets are `u32`: past 4 GiB of text (never, for one request) the value is cut.
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        clamp(start)..clamp(end).max(clamp(start))
    }

    /// Sets the span name, the concatenation of `parts`.
    pub(crate) fn set_name(&mut self, parts: &[&str]) {
        self.name = Some(self.push_text(parts));
    }

    /// Adds a string attribute, copied into the buffer.
    pub(crate) fn string(&mut self, key: &'static str, value: &str) {
        let range = self.push_text(&[value]);
        self.entries.push((key, Stored::Text(range)));
    }

    /// Adds a string attribute whose value is static (not copied).
    pub(crate) fn static_str(&mut self, key: &'static str, value: &'static str) {
        self.entries.push((key, Stored::Static(value)));
    }

    /// Adds an integer attribute.
    pub(crate) fn int(&mut self, key: &'static str, value: i64) {
        self.entries.push((key, Stored::I64(value)));
    }

    fn text(&self, range: &Range<u32>) -> &str {
        self.text
            .get(range.start as usize..range.end as usize)
            .unwrap_or_default()
    }

    /// The name set with [`set_name`](Self::set_name).
    pub(crate) fn name(&self) -> Option<&str> {
        self.name.as_ref().map(|range| self.text(range))
    }

    /// How many attributes there are.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The attributes, in the order they were added.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&'static str, PackedValue<'_>)> {
        self.entries.iter().map(|(key, stored)| {
            let value = match stored {
                Stored::Text(range) => PackedValue::Str(self.text(range)),
                Stored::Static(text) => PackedValue::Str(text),
                Stored::I64(v) => PackedValue::I64(*v),
            };
            (*key, value)
        })
    }

    /// The attributes as OpenTelemetry key-values (for spans of other tracers).
    pub(crate) fn to_key_values(&self) -> impl Iterator<Item = KeyValue> + '_ {
        self.entries.iter().map(|(key, stored)| {
            let value = match stored {
                Stored::Text(range) => Value::from(self.text(range).to_owned()),
                Stored::Static(text) => Value::from(*text),
                Stored::I64(v) => Value::I64(*v),
            };
            KeyValue::new(*key, value)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_share_one_buffer_and_read_back_in_order() {
        let mut packed = PackedAttributes::new();
        packed.set_name(&["GET", " ", "/users/{id}"]);
        packed.static_str("http.request.method", "GET");
        packed.string("url.path", "/users/7");
        packed.int("server.port", 8080);
        packed.string("user_agent.original", "");
        assert_eq!(packed.name(), Some("GET /users/{id}"));
        assert_eq!(packed.len(), 4);
        let read: Vec<_> = packed.iter().collect();
        assert_eq!(
            read,
            [
                ("http.request.method", PackedValue::Str("GET")),
                ("url.path", PackedValue::Str("/users/7")),
                ("server.port", PackedValue::I64(8080)),
                ("user_agent.original", PackedValue::Str("")),
            ]
        );
        let key_values: Vec<KeyValue> = packed.to_key_values().collect();
        assert_eq!(key_values[1], KeyValue::new("url.path", "/users/7"));
        assert_eq!(key_values[2], KeyValue::new("server.port", 8080_i64));
    }

    #[test]
    fn recycled_buffers_come_back_empty() {
        let mut packed = PackedAttributes::new();
        packed.set_name(&["POST"]);
        packed.string("url.path", "/login");
        let text_at = packed.text.as_ptr();
        PackedAttributes::recycle(packed);
        let again = PackedAttributes::new();
        assert_eq!(again.text.as_ptr(), text_at, "the buffer is reused");
        assert_eq!((again.name(), again.len()), (None, 0));
        let mut huge = PackedAttributes::new();
        huge.string("user_agent.original", &"x".repeat(SPARE_MAX_TEXT + 1));
        let huge_at = huge.text.as_ptr();
        PackedAttributes::recycle(huge);
        assert_ne!(PackedAttributes::new().text.as_ptr(), huge_at);
    }
}
