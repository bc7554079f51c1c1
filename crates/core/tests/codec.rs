//! The Avro single-object codec: round trips, schema evolution and rejection of bad bytes.

use apache_avro::types::Value;
use orderflow_core::codec::{self, DecodeError, SchemaVersion, MAGIC};
use orderflow_core::event::ORDER_PLACED_SCHEMAS;
use orderflow_core::{Event, OrderPlaced};
use orderflow_testkit::sample_order_placed;

#[test]
fn round_trip_keeps_every_field() {
    let order = sample_order_placed("o-1");
    let bytes = order.encode().unwrap();
    assert_eq!(bytes[..2], MAGIC);
    assert_eq!(bytes[2..10], ORDER_PLACED_SCHEMAS.latest().fingerprint);
    assert_eq!(OrderPlaced::decode(&bytes).unwrap(), order);
}

#[test]
fn optional_fields_round_trip_empty() {
    let mut order = sample_order_placed("o-2");
    order.sales_agent = None;
    order.gift_message = None;
    order.shipping_address.region = None;
    order.lines[0].product.attributes.clear();
    assert_eq!(
        OrderPlaced::decode(&order.encode().unwrap()).unwrap(),
        order
    );
}

#[test]
fn every_version_reads_the_previous_one() {
    ORDER_PLACED_SCHEMAS.check_backward_compatible().unwrap();
    let versions = ORDER_PLACED_SCHEMAS.versions();
    assert!(versions.len() >= 2);
    // Data written with each older version decodes into today's type, new fields defaulted.
    for old in &versions[..versions.len() - 1] {
        let mut order = sample_order_placed("o-3");
        order.gift_message = None; // v1 has no gift message: it must read as the default
        let bytes = written_with(old, &order);
        assert_eq!(bytes[2..10], old.fingerprint);
        assert_eq!(
            OrderPlaced::decode(&bytes).unwrap(),
            order,
            "reading v{}",
            old.version
        );
    }
}

/// `order` as a producer still on `old` writes it (`old` has no gift message).
fn written_with(old: &SchemaVersion, order: &OrderPlaced) -> Vec<u8> {
    let Value::Record(fields) = apache_avro::to_value(order).unwrap() else {
        panic!("an event is a record");
    };
    let old_fields: Vec<_> = fields
        .into_iter()
        .filter(|(name, _)| name != "gift_message")
        .collect();
    codec::encode_value("OrderPlaced", old, Value::Record(old_fields)).unwrap()
}

#[test]
fn unknown_fingerprint_is_rejected() {
    let mut bytes = sample_order_placed("o-4").encode().unwrap();
    bytes[2] ^= 0xFF;
    let err = OrderPlaced::decode(&bytes).unwrap_err();
    assert!(
        matches!(err, DecodeError::UnknownFingerprint { .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("not a known OrderPlaced schema version"));
}

#[test]
fn bad_magic_and_short_input_are_rejected() {
    assert!(matches!(
        OrderPlaced::decode(b"{\"order_id\":\"x\"}").unwrap_err(),
        DecodeError::BadMagic(b'{', b'"')
    ));
    assert!(matches!(
        OrderPlaced::decode(&[0xC3, 0x01, 1]).unwrap_err(),
        DecodeError::TooShort(3)
    ));
}

#[test]
fn truncated_and_padded_bodies_are_malformed() {
    let bytes = sample_order_placed("o-5").encode().unwrap();
    for cut in [bytes.len() / 2, bytes.len() - 7] {
        let err = OrderPlaced::decode(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, DecodeError::Malformed { .. }),
            "cut at {cut}: {err}"
        );
    }
    // Cut exactly before the trailing optional gift message.
    let mut order = sample_order_placed("o-6");
    order.gift_message = None;
    let bytes = order.encode().unwrap();
    let err = OrderPlaced::decode(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0, 0, 0]);
    let err = OrderPlaced::decode(&padded).unwrap_err();
    assert!(err.to_string().contains("3 trailing bytes"), "{err}");
}

/// Older versions are read another way (resolved into the newest), and are held to the same.
#[test]
fn truncated_and_padded_bodies_of_an_older_version_are_malformed() {
    let v1 = &ORDER_PLACED_SCHEMAS.versions()[0];
    let bytes = written_with(v1, &sample_order_placed("o-7"));
    let err = OrderPlaced::decode(&bytes[..bytes.len() - 1]).unwrap_err();
    assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("v1 body"), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let mut padded = bytes.clone();
    padded.extend_from_slice(&[0, 0]);
    let err = OrderPlaced::decode(&padded).unwrap_err();
    assert!(err.to_string().contains("2 trailing bytes"), "{err}");
}
