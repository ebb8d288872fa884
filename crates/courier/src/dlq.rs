//! The dead letter queue: records that failed for good are written to a topic of their
//! own, with what happened, instead of only being reported.
//!
//! A record whose outcome is "possibly persisted" may already be in its topic, so it is
//! never dead-lettered as if it were lost: it goes to the application only, or, with
//! `dlq.possibly.persisted=dead-letter`, to the queue marked `possibly-persisted`. That
//! is the same rule that keeps the producer from reusing a possibly-written sequence
//! (franz-go #1217): a record of unknown fate is not handed on as a failure.
//!
//! Such records are rare: a record that may be in the log when `delivery.timeout.ms`
//! runs out is resent with its sequence until the broker says where it is
//! (`delivery.resolution.timeout.ms`), and then it is delivered, never dead-lettered.

use bytes::Bytes;

use crate::config::DlqPossiblyPersisted;
use crate::error::{Persistence, ProducerError};
use crate::producer::ProducerRecord;

/// Header names on a dead-lettered record.
pub mod headers {
    /// The topic the record was meant for.
    pub const TOPIC: &str = "courier.dlq.topic";
    /// Its partition, or -1 if it failed before it was partitioned.
    pub const PARTITION: &str = "courier.dlq.partition";
    /// The error's name (`RECORD_TOO_LARGE`, `TOPIC_AUTHORIZATION_FAILED`, ...).
    pub const ERROR_NAME: &str = "courier.dlq.error.name";
    /// The Kafka error code, when the broker sent one.
    pub const ERROR_CODE: &str = "courier.dlq.error.code";
    /// The error message.
    pub const ERROR_MESSAGE: &str = "courier.dlq.error.message";
    /// `not-persisted` or `possibly-persisted`.
    pub const PERSISTENCE: &str = "courier.dlq.persistence";
}

/// What the driver keeps of a record so it can be dead-lettered.
#[derive(Debug, Clone)]
pub(crate) struct Original {
    pub(crate) key: Option<Bytes>,
    pub(crate) value: Option<Bytes>,
    pub(crate) headers: Vec<(String, Option<Bytes>)>,
}

/// Whether a failed record goes to the dead letter queue.
pub(crate) fn should_dead_letter(err: &ProducerError, policy: DlqPossiblyPersisted) -> bool {
    match err.persistence() {
        Persistence::PossiblyPersisted => policy == DlqPossiblyPersisted::DeadLetter,
        Persistence::Persisted => false,
        // Failed for good because of the record itself or its destination; transient
        // causes (timeouts, a full buffer, closing) are the application's to retry. A record
        // over max.request.size is not among them: its dead letter, carrying the whole
        // value, would be over the same limit, so it goes back to the application.
        Persistence::NotPersisted => {
            matches!(
                err,
                ProducerError::TopicAuthorizationFailed { .. }
                    | ProducerError::RecordRejectedAsTooLarge { .. }
                    | ProducerError::InvalidRecord { .. }
                    | ProducerError::UnknownTopic { .. }
                    | ProducerError::UnknownPartition { .. }
            ) || matches!(err, ProducerError::Broker { .. } if !err.is_retriable())
        }
    }
}

fn persistence_name(p: Persistence) -> &'static str {
    match p {
        Persistence::Persisted => "persisted",
        Persistence::PossiblyPersisted => "possibly-persisted",
        Persistence::NotPersisted => "not-persisted",
    }
}

/// The record written to `dlq_topic` for a record of `topic`/`partition` that failed
/// with `err`: the original key, metadata in headers, and a JSON body with everything
/// (original key, value and headers, UTF-8 where they are, base64 otherwise).
pub(crate) fn dead_letter_record(
    dlq_topic: &str,
    topic: &str,
    partition: i32,
    timestamp_ms: i64,
    original: &Original,
    err: &ProducerError,
) -> ProducerRecord {
    let persistence = persistence_name(err.persistence());
    let code = err.code().map(|c| c.code());
    let message = err.to_string();
    let mut body = String::with_capacity(256);
    body.push('{');
    json_field(&mut body, "topic", &json_str(topic));
    json_field(&mut body, "partition", &partition.to_string());
    json_field(&mut body, "timestamp", &timestamp_ms.to_string());
    json_bytes_field(&mut body, "key", original.key.as_deref());
    json_bytes_field(&mut body, "value", original.value.as_deref());
    let hs: Vec<String> = original
        .headers
        .iter()
        .map(|(k, v)| {
            let mut h = String::from("{");
            json_field(&mut h, "name", &json_str(k));
            json_bytes_field(&mut h, "value", v.as_deref());
            h.pop(); // trailing comma
            h.push('}');
            h
        })
        .collect();
    json_field(&mut body, "headers", &format!("[{}]", hs.join(",")));
    let mut e = String::from("{");
    json_field(&mut e, "name", &json_str(err.name()));
    json_field(
        &mut e,
        "code",
        &code.map_or("null".to_string(), |c| c.to_string()),
    );
    json_field(&mut e, "message", &json_str(&message));
    e.pop();
    e.push('}');
    json_field(&mut body, "error", &e);
    json_field(&mut body, "persistence", &json_str(persistence));
    body.pop();
    body.push('}');

    let mut headers = original.headers.clone();
    let mut add = |k: &str, v: String| headers.push((k.to_string(), Some(Bytes::from(v))));
    add(headers::TOPIC, topic.to_string());
    add(headers::PARTITION, partition.to_string());
    add(headers::ERROR_NAME, err.name().to_string());
    if let Some(c) = code {
        add(headers::ERROR_CODE, c.to_string());
    }
    add(headers::ERROR_MESSAGE, message);
    add(headers::PERSISTENCE, persistence.to_string());
    ProducerRecord {
        topic: dlq_topic.into(),
        partition: None,
        key: original.key.clone(),
        value: Some(Bytes::from(body)),
        headers,
        timestamp_ms: Some(timestamp_ms),
    }
}

fn json_field(out: &mut String, name: &str, raw_value: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    out.push_str(raw_value);
    out.push(',');
}

/// `"name": "utf8"` or `"name_base64": "..."`, or `"name": null`.
fn json_bytes_field(out: &mut String, name: &str, bytes: Option<&[u8]>) {
    match bytes {
        None => json_field(out, name, "null"),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => json_field(out, name, &json_str(s)),
            Err(_) => json_field(
                out,
                &format!("{name}_base64"),
                &format!("\"{}\"", base64(b)),
            ),
        },
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(A[(n >> 18) as usize & 63] as char);
        out.push(A[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            A[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            A[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn json_strings_escape_quotes_and_controls() {
        assert_eq!(json_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn dead_letter_record_carries_metadata_in_headers_and_body() {
        let original = Original {
            key: Some(Bytes::from_static(b"order-1")),
            value: Some(Bytes::from_static(&[0xff, 0x00])),
            headers: vec![("trace".into(), None)],
        };
        let err = ProducerError::RecordRejectedAsTooLarge {
            topic: "orders".into(),
            partition: 2,
            code: ErrorCode::MESSAGE_TOO_LARGE,
        };
        let r = dead_letter_record("orders.dlq", "orders", 2, 17, &original, &err);
        assert_eq!(&*r.topic, "orders.dlq");
        assert_eq!(r.key.as_deref(), Some(&b"order-1"[..]));
        let h: std::collections::HashMap<_, _> = r.headers.iter().cloned().collect();
        assert_eq!(
            h[headers::ERROR_NAME].as_deref(),
            Some(&b"MESSAGE_TOO_LARGE"[..])
        );
        assert_eq!(h[headers::ERROR_CODE].as_deref(), Some(&b"10"[..]));
        assert_eq!(
            h[headers::PERSISTENCE].as_deref(),
            Some(&b"not-persisted"[..])
        );
        assert_eq!(h["trace"], None, "original headers kept");
        let body = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        assert!(body.starts_with("{\"topic\":\"orders\",\"partition\":2,\"timestamp\":17,\"key\":\"order-1\",\"value_base64\":\"/wA=\""), "{body}");
        assert!(
            body.contains("\"error\":{\"name\":\"MESSAGE_TOO_LARGE\",\"code\":10,"),
            "{body}"
        );
        assert!(
            body.ends_with("\"persistence\":\"not-persisted\"}"),
            "{body}"
        );
    }

    #[test]
    fn only_final_failures_are_dead_lettered_and_possibly_persisted_by_choice() {
        let rejected = ProducerError::RecordRejectedAsTooLarge {
            topic: "t".into(),
            partition: 0,
            code: crate::ErrorCode::MESSAGE_TOO_LARGE,
        };
        assert!(should_dead_letter(
            &rejected,
            DlqPossiblyPersisted::Application
        ));
        // Over max.request.size: its dead letter could never be sent either.
        let too_large = ProducerError::RecordTooLarge {
            size: 10,
            max_request_size: 1,
        };
        assert!(!should_dead_letter(
            &too_large,
            DlqPossiblyPersisted::Application
        ));
        let timeout = |persistence| ProducerError::DeliveryTimeout {
            topic: "t".into(),
            partition: 0,
            timeout: std::time::Duration::from_secs(1),
            last_error: None,
            last_cause: None,
            persistence,
        };
        let not_written = timeout(Persistence::NotPersisted);
        assert!(!should_dead_letter(
            &not_written,
            DlqPossiblyPersisted::Application
        ));
        let possibly = timeout(Persistence::PossiblyPersisted);
        assert!(!should_dead_letter(
            &possibly,
            DlqPossiblyPersisted::Application
        ));
        assert!(should_dead_letter(
            &possibly,
            DlqPossiblyPersisted::DeadLetter
        ));
        assert!(!should_dead_letter(
            &ProducerError::Closed,
            DlqPossiblyPersisted::DeadLetter
        ));
    }
}
