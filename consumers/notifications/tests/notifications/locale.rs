//! The customer reads the confirmation in their language (Spanish or English, English for any
//! other), with a plain-text and an HTML part that both show the lines, the totals and the
//! shipping address; the agent's notice is in English.

use mail_parser::{Message, MessageParser, PartType};
use notifications::email::{message_id, Kind};
use orderflow_core::OrderPlaced;
use orderflow_simulators::smtp::ReceivedMessage;

use crate::common::World;

fn find<'a>(
    messages: &'a [ReceivedMessage],
    order: &OrderPlaced,
    kind: Kind,
) -> &'a ReceivedMessage {
    let id = message_id(&order.order_id, kind).unwrap();
    messages
        .iter()
        .find(|m| m.message_id.as_deref() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no e-mail {id}"))
}

/// The plain-text and the HTML part (exactly one of each), as the receiver decodes them.
fn parts(message: &Message<'_>) -> (String, String) {
    let texts: Vec<&str> = message
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Text(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    let htmls: Vec<&str> = message
        .parts
        .iter()
        .filter_map(|p| match &p.body {
            PartType::Html(t) => Some(t.as_ref()),
            _ => None,
        })
        .collect();
    assert_eq!(
        (texts.len(), htmls.len()),
        (1, 1),
        "one text/plain and one text/html part"
    );
    (texts[0].to_string(), htmls[0].to_string())
}

fn assert_shows_all(part: &str, expected: &[&str]) {
    for e in expected {
        assert!(part.contains(e), "missing {e:?} in:\n{part}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn customers_read_their_language_and_both_parts_show_lines_totals_and_address() {
    let world = World::new().await;
    let spanish = orderflow_testkit::sample_order_placed(&orderflow_testkit::unique("es"));
    let mut french = orderflow_testkit::sample_order_placed(&orderflow_testkit::unique("fr"));
    french.customer.locale = "fr-FR".into();
    french.sales_agent = None;
    let consumer = world.start_consumer();
    let mailer = world.start_mailer();
    world.produce(&[spanish.clone(), french.clone()]).await;
    let messages = world.wait_for_emails(3).await;
    let parser = MessageParser::default();

    // Sample order: 2 × 19,99 + 1 × 12,99 = 52,97; shipping 4,95; tax 8,40 + 2,73 + 1,04 = 12,17;
    // total 70,09.
    let raw = find(&messages, &spanish, Kind::Customer);
    let es = parser.parse(&raw.data).unwrap();
    assert_eq!(
        es.subject(),
        Some(format!("Tu pedido {} está confirmado", spanish.order_id).as_str())
    );
    assert_eq!(es.header_raw("Content-Language").map(str::trim), Some("es"));
    let (text, html) = parts(&es);
    for part in [&text, &html] {
        assert_shows_all(
            part,
            &[
                "Gracias por tu pedido",
                "Product TSHIRT-ORG-M-BLK",
                "Product MUG-11OZ-WHT",
                "39,98\u{a0}€",
                "12,99\u{a0}€",
                "52,97\u{a0}€",
                "4,95\u{a0}€",
                "12,17\u{a0}€",
                "70,09\u{a0}€",
                "Calle Mayor 1",
                "28013 Madrid",
                "Happy birthday!",
            ],
        );
    }
    assert_shows_all(&text, &["Dirección de envío:", "Total: 70,09\u{a0}€"]);

    let raw = find(&messages, &french, Kind::Customer);
    let fr = parser.parse(&raw.data).unwrap();
    assert_eq!(
        fr.subject(),
        Some(format!("Your order {} is confirmed", french.order_id).as_str())
    );
    let (text, html) = parts(&fr);
    for part in [&text, &html] {
        assert_shows_all(
            part,
            &[
                "Thank you for your order",
                "Product MUG-11OZ-WHT",
                "€39.98",
                "€52.97",
                "€70.09",
                "Calle Mayor 1",
                "28013 Madrid",
            ],
        );
    }
    assert_shows_all(&text, &["Shipping address:", "Total: €70.09"]);

    let raw = find(&messages, &spanish, Kind::Agent);
    let agent = parser.parse(&raw.data).unwrap();
    assert_eq!(
        agent.subject(),
        Some(format!("New order {} from Ana García (€70.09)", spanish.order_id).as_str())
    );
    assert_eq!(
        agent
            .reply_to()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some("ana@example.com")
    );
    let (text, html) = parts(&agent);
    for part in [&text, &html] {
        assert_shows_all(
            part,
            &[
                "Hi Sam Agent",
                "Ana García",
                "€70.09",
                "Calle Mayor 1",
                "es-ES",
            ],
        );
    }

    consumer.stop().await;
    mailer.stop().await;
    world.cleanup().await;
}
