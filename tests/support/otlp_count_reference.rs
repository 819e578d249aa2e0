//! The first counting walker of [`otlp_count`](crate::otlp_count) (one closure per message,
//! called through `dyn FnMut` for every field), kept for its tests only: they check that the
//! decoder rejects everything this walker rejects. This walker skips three fields of the
//! schema as unknown (`Resource.entity_refs`, `KeyValue.key_strindex`,
//! `AnyValue.string_value_strindex`), accepts keys beyond 32 bits, and has no nesting limit
//! (deep nesting exhausts its stack: the tests give it none).

use prost::encoding::decode_varint;

/// The old `count_spans`.
pub(crate) fn count_spans(request: &[u8]) -> Result<u64, String> {
    let mut spans = 0;
    walk(request, &mut |field, value| match (field, value) {
        (1, Field::Len(resource_spans)) => {
            walk(resource_spans, &mut |field, value| match (field, value) {
                (1, Field::Len(resource)) => {
                    walk(resource, &mut |field, value| match (field, value) {
                        (1, Field::Len(kv)) => key_value(kv),
                        (2, Field::Varint) => Ok(()),
                        other => unexpected("Resource", 1..=2, other),
                    })
                }
                (2, Field::Len(scope_spans)) => {
                    walk(scope_spans, &mut |field, value| match (field, value) {
                        (1, Field::Len(scope)) => {
                            walk(scope, &mut |field, value| match (field, value) {
                                (1 | 2, Field::Len(text)) => utf8(text),
                                (3, Field::Len(kv)) => key_value(kv),
                                (4, Field::Varint) => Ok(()),
                                other => unexpected("InstrumentationScope", 1..=4, other),
                            })
                        }
                        (2, Field::Len(span_bytes)) => {
                            span(span_bytes)?;
                            spans += 1;
                            Ok(())
                        }
                        (3, Field::Len(text)) => utf8(text),
                        other => unexpected("ScopeSpans", 1..=3, other),
                    })
                }
                (3, Field::Len(text)) => utf8(text),
                other => unexpected("ResourceSpans", 1..=3, other),
            })
        }
        other => unexpected("ExportTraceServiceRequest", 1..=1, other),
    })?;
    Ok(spans)
}

fn span(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, &mut |field, value| match (field, value) {
        (1, Field::Len(id)) => id_len("trace_id", id, 16),
        (2 | 4, Field::Len(id)) => id_len("span_id", id, 8),
        (3 | 5, Field::Len(text)) => utf8(text),
        (6 | 10 | 12 | 14, Field::Varint) => Ok(()),
        (7 | 8, Field::Fixed64) | (16, Field::Fixed32) => Ok(()),
        (9, Field::Len(kv)) => key_value(kv),
        (11, Field::Len(event)) => walk(event, &mut |field, value| match (field, value) {
            (1, Field::Fixed64) | (4, Field::Varint) => Ok(()),
            (2, Field::Len(text)) => utf8(text),
            (3, Field::Len(kv)) => key_value(kv),
            other => unexpected("Span.Event", 1..=4, other),
        }),
        (13, Field::Len(link)) => walk(link, &mut |field, value| match (field, value) {
            (1, Field::Len(id)) => id_len("trace_id", id, 16),
            (2, Field::Len(id)) => id_len("span_id", id, 8),
            (3, Field::Len(text)) => utf8(text),
            (4, Field::Len(kv)) => key_value(kv),
            (5, Field::Varint) | (6, Field::Fixed32) => Ok(()),
            other => unexpected("Span.Link", 1..=6, other),
        }),
        (15, Field::Len(status)) => walk(status, &mut |field, value| match (field, value) {
            (2, Field::Len(text)) => utf8(text),
            (3, Field::Varint) => Ok(()),
            other => unexpected("Status", 2..=3, other),
        }),
        other => unexpected("Span", 1..=16, other),
    })
}

fn key_value(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, &mut |field, value| match (field, value) {
        (1, Field::Len(text)) => utf8(text),
        (2, Field::Len(any)) => any_value(any),
        other => unexpected("KeyValue", 1..=2, other),
    })
}

fn any_value(bytes: &[u8]) -> Result<(), String> {
    walk(bytes, &mut |field, value| match (field, value) {
        (1, Field::Len(text)) => utf8(text),
        (2 | 3, Field::Varint) | (4, Field::Fixed64) | (7, Field::Len(_)) => Ok(()),
        (5, Field::Len(array)) => walk(array, &mut |field, value| match (field, value) {
            (1, Field::Len(any)) => any_value(any),
            other => unexpected("ArrayValue", 1..=1, other),
        }),
        (6, Field::Len(list)) => walk(list, &mut |field, value| match (field, value) {
            (1, Field::Len(kv)) => key_value(kv),
            other => unexpected("KeyValueList", 1..=1, other),
        }),
        other => unexpected("AnyValue", 1..=7, other),
    })
}

/// One field of a message, as its wire type delivers it.
#[derive(Debug)]
enum Field<'a> {
    Varint,
    Fixed64,
    Fixed32,
    Len(&'a [u8]),
}

/// Walks the fields of one message, calling `visit` with each known field number.
fn walk<'a>(
    mut bytes: &'a [u8],
    visit: &mut dyn FnMut(u32, Field<'a>) -> Result<(), String>,
) -> Result<(), String> {
    while !bytes.is_empty() {
        let key = decode_varint(&mut bytes).map_err(|e| format!("field key: {e}"))?;
        let field = u32::try_from(key >> 3).map_err(|_| "field number out of range".to_owned())?;
        if field == 0 {
            return Err("field number 0".to_owned());
        }
        let value = match key & 7 {
            0 => {
                decode_varint(&mut bytes).map_err(|e| format!("varint: {e}"))?;
                Field::Varint
            }
            1 => {
                take(&mut bytes, 8)?;
                Field::Fixed64
            }
            5 => {
                take(&mut bytes, 4)?;
                Field::Fixed32
            }
            2 => {
                let len = decode_varint(&mut bytes).map_err(|e| format!("length: {e}"))?;
                let len = usize::try_from(len).map_err(|_| "length out of range".to_owned())?;
                Field::Len(take(&mut bytes, len)?)
            }
            wire => return Err(format!("field {field}: unsupported wire type {wire}")),
        };
        visit(field, value)?;
    }
    Ok(())
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Result<&'a [u8], String> {
    if bytes.len() < len {
        return Err(format!(
            "truncated: {len} bytes announced, {} left",
            bytes.len()
        ));
    }
    let (head, tail) = bytes.split_at(len);
    *bytes = tail;
    Ok(head)
}

fn utf8(bytes: &[u8]) -> Result<(), String> {
    std::str::from_utf8(bytes)
        .map(drop)
        .map_err(|e| format!("string field is not UTF-8: {e}"))
}

fn id_len(what: &str, id: &[u8], len: usize) -> Result<(), String> {
    if id.is_empty() || id.len() == len {
        Ok(())
    } else {
        Err(format!("{what} of {} bytes (expected {len})", id.len()))
    }
}

/// A field no arm of `message`'s visitor matched: an error when `message` defines the field
/// number (`known`), so the wire type was wrong; skipped otherwise (a newer schema's field).
fn unexpected(
    message: &str,
    known: std::ops::RangeInclusive<u32>,
    (field, value): (u32, Field<'_>),
) -> Result<(), String> {
    if known.contains(&field) {
        Err(format!(
            "{message}: field {field} with unexpected wire type ({value:?})"
        ))
    } else {
        Ok(())
    }
}
