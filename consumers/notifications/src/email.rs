//! A rendered e-mail on its way through RabbitMQ: the complete RFC 5322 message as the AMQP
//! body, and the SMTP envelope, the order and the recipient kind as headers. The AMQP
//! `message_id` is the e-mail's `Message-ID`, derived from (order, recipient kind) alone, so any
//! copy of the same e-mail, from a republish or a redelivery, carries the same id.

use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

/// Header with the order the e-mail belongs to.
pub const ORDER_ID: &str = "x-order-id";
/// Header with the recipient kind (`customer`, `agent`).
pub const KIND: &str = "x-email-kind";
/// Header with the SMTP envelope sender (`MAIL FROM`).
pub const ENVELOPE_FROM: &str = "x-envelope-from";
/// Header with the SMTP envelope recipients (`RCPT TO`), an array of strings.
pub const ENVELOPE_TO: &str = "x-envelope-to";

/// Who an e-mail is for. One e-mail per order and kind, at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The order confirmation to the customer.
    Customer,
    /// The new-order notice to the order's sales agent.
    Agent,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Agent => "agent",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "customer" => Some(Kind::Customer),
            "agent" => Some(Kind::Agent),
            _ => None,
        }
    }
}

/// The order id is too long to fit a `Message-ID` and an AMQP `message_id` (255 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("order id is too long for a Message-ID ({0} bytes once encoded)")]
pub struct OrderIdTooLong(pub usize);

/// The `Message-ID` of the e-mail of `kind` for `order_id`: `<order-{id}.{kind}@orderflow>`.
/// Bytes of the order id other than ASCII letters, digits, `-` and `_` are written `=XX`, which
/// keeps the id a valid RFC 5322 `msg-id` and distinct ids distinct.
pub fn message_id(order_id: &str, kind: Kind) -> Result<String, OrderIdTooLong> {
    let mut id = String::from("<order-");
    for b in order_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            id.push(char::from(b));
        } else {
            id.push_str(&format!("={b:02X}"));
        }
    }
    id.push('.');
    id.push_str(kind.as_str());
    id.push_str("@orderflow>");
    if id.len() > 250 {
        return Err(OrderIdTooLong(id.len()));
    }
    Ok(id)
}

/// One e-mail, ready for SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    pub message_id: String,
    pub order_id: String,
    pub kind: Kind,
    pub envelope_from: String,
    pub envelope_to: Vec<String>,
    /// The complete message (headers and MIME body), CRLF line endings.
    pub raw: Vec<u8>,
}

/// Why an AMQP message is not an e-mail we can send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed e-mail message: {0}")]
pub struct Malformed(pub String);

impl Email {
    /// Properties of the AMQP message: persistent, with the `Message-ID` as `message_id`,
    /// our headers and the caller's trace context.
    pub fn properties(
        &self,
        trace_context: impl IntoIterator<Item = (String, String)>,
    ) -> BasicProperties {
        let mut headers = FieldTable::default();
        for (name, value) in trace_context {
            headers.insert(name.into(), long_string(value));
        }
        headers.insert(ORDER_ID.into(), long_string(&self.order_id));
        headers.insert(KIND.into(), long_string(self.kind.as_str()));
        headers.insert(ENVELOPE_FROM.into(), long_string(&self.envelope_from));
        headers.insert(
            ENVELOPE_TO.into(),
            AMQPValue::FieldArray(FieldArray::from(
                self.envelope_to.iter().map(long_string).collect::<Vec<_>>(),
            )),
        );
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("message/rfc822".into())
            .with_message_id(ShortString::from(self.message_id.as_str()))
            .with_headers(headers)
    }

    /// Reads an e-mail back from an AMQP message.
    pub fn from_amqp(properties: &BasicProperties, body: &[u8]) -> Result<Self, Malformed> {
        let missing = |what: &str| Malformed(format!("no {what}"));
        let message_id = properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str().to_string())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| missing("message_id"))?;
        let headers = properties
            .headers()
            .as_ref()
            .ok_or_else(|| missing("headers"))?;
        let text = |name: &str| {
            header_text(headers, name).ok_or_else(|| missing(&format!("{name} header")))
        };
        let kind = text(KIND)?;
        let kind =
            Kind::parse(&kind).ok_or_else(|| Malformed(format!("unknown {KIND} {kind:?}")))?;
        let envelope_to = match headers.inner().get(ENVELOPE_TO) {
            Some(AMQPValue::FieldArray(values)) => values
                .as_slice()
                .iter()
                .map(value_text)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| Malformed(format!("{ENVELOPE_TO} holds a non-string")))?,
            _ => return Err(missing(&format!("{ENVELOPE_TO} header"))),
        };
        if envelope_to.is_empty() {
            return Err(Malformed("no recipients".into()));
        }
        if body.is_empty() {
            return Err(Malformed("empty body".into()));
        }
        Ok(Self {
            message_id,
            order_id: text(ORDER_ID)?,
            kind,
            envelope_from: text(ENVELOPE_FROM)?,
            envelope_to,
            raw: body.to_vec(),
        })
    }
}

fn long_string(s: impl AsRef<str>) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_ref()))
}

fn value_text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok().map(str::to_string),
        AMQPValue::ShortString(s) => Some(s.as_str().to_string()),
        _ => None,
    }
}

/// A string header of an AMQP message.
pub fn header_text(headers: &FieldTable, name: &str) -> Option<String> {
    headers.inner().get(name).and_then(value_text)
}

/// Every string header of an AMQP message, as name/value pairs (for trace context).
pub fn header_pairs(properties: &BasicProperties) -> Vec<(String, String)> {
    properties
        .headers()
        .as_ref()
        .map(|h| {
            h.inner()
                .iter()
                .filter_map(|(k, v)| value_text(v).map(|v| (k.as_str().to_string(), v)))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_depend_on_order_and_kind_only_and_stay_valid() {
        assert_eq!(
            message_id("ord-42", Kind::Customer).unwrap(),
            "<order-ord-42.customer@orderflow>"
        );
        assert_eq!(
            message_id("ord-42", Kind::Agent).unwrap(),
            "<order-ord-42.agent@orderflow>"
        );
        assert_eq!(
            message_id("a b@c>.=", Kind::Customer).unwrap(),
            "<order-a=20b=40c=3E=2E=3D.customer@orderflow>"
        );
        assert_ne!(
            message_id("a.b", Kind::Customer),
            message_id("a=2Eb", Kind::Customer)
        );
        assert!(message_id(&"x".repeat(300), Kind::Agent).is_err());
    }

    #[test]
    fn an_email_survives_the_trip_through_amqp_properties() {
        let email = Email {
            message_id: message_id("o-1", Kind::Agent).unwrap(),
            order_id: "o-1".into(),
            kind: Kind::Agent,
            envelope_from: "orders@shop.example".into(),
            envelope_to: vec!["agent@example.com".into()],
            raw: b"Subject: x\r\n\r\nbody\r\n".to_vec(),
        };
        let properties = email.properties([("traceparent".to_string(), "00-ab-cd-01".to_string())]);
        assert_eq!(properties.delivery_mode(), &Some(2));
        assert_eq!(Email::from_amqp(&properties, &email.raw), Ok(email));
        assert!(header_pairs(&properties).contains(&("traceparent".into(), "00-ab-cd-01".into())));
    }

    #[test]
    fn a_message_without_envelope_is_malformed() {
        let properties = BasicProperties::default().with_message_id("<x@y>".into());
        let err = Email::from_amqp(&properties, b"data").unwrap_err();
        assert_eq!(err.to_string(), "malformed e-mail message: no headers");
    }
}
