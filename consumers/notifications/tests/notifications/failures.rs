//! What cannot be sent now is sent later, once; what can never be sent ends up in a dead-letter
//! queue with the reason: SMTP refusals in the AMQP one, inconsistent orders in Kafka's.

use std::net::SocketAddr;
use std::time::Duration;

use lapin::BasicProperties;
use notifications::email::{self, message_id, Kind};
use notifications::mailer::{DLQ_REASON, DLQ_SMTP_CODE};
use orderflow_core::runtime::REASON;
use orderflow_simulators::smtp::SmtpSink;
use rdkafka::Message;

use crate::common::{by_message_id, expected_ids, orders, World, WAIT};

#[tokio::test(flavor = "multi_thread")]
async fn temporary_smtp_refusals_are_retried_until_the_email_is_sent_once() {
    let world = World::new().await;
    let batch = orders(2);
    let order = batch[1].clone();
    assert!(order.sales_agent.is_none());
    // Three attempts per delivery: the first delivery uses them up and requeues the e-mail,
    // the redelivery meets one more 451 and then gets through.
    world.sink.fail_next(4, 451);
    let consumer = world.start_consumer();
    let mailer = world.start_mailer();
    world.produce(std::slice::from_ref(&order)).await;

    world.wait_for_emails(1).await;
    world.settle().await;
    assert_eq!(
        by_message_id(&world.sink.messages()),
        expected_ids(std::slice::from_ref(&order))
    );
    assert_eq!(world.sink.transactions(), 5);
    let id = message_id(&order.order_id, Kind::Customer).unwrap();
    let (state, attempts, interrupted, error): (String, i32, i32, Option<String>) = sqlx::query_as(
        "SELECT state, attempts, interrupted, last_error FROM sent_emails WHERE message_id = $1",
    )
    .bind(&id)
    .fetch_one(&world.pool)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), attempts, interrupted, error),
        ("sent", 5, 0, None)
    );
    let metrics = orderflow_core::observe::metrics::render(&[]).await;
    let count = |name: &str, label: (&str, &str)| {
        orderflow_testkit::metric(&metrics, name, &[("queue", world.queue.as_str()), label])
    };
    assert_eq!(
        count("orderflow_smtp_attempts_total", ("result", "temporary")),
        Some(4.0),
        "{metrics}"
    );
    assert_eq!(
        count("orderflow_smtp_attempts_total", ("result", "accepted")),
        Some(1.0)
    );
    assert_eq!(
        count("orderflow_emails_total", ("outcome", "requeued")),
        Some(1.0)
    );
    assert_eq!(
        count("orderflow_emails_total", ("outcome", "sent")),
        Some(1.0)
    );

    consumer.stop().await;
    mailer.stop().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_smtp_server_delays_the_email_until_it_is_back() {
    let world = World::new().await;
    // A port nobody listens on yet: connections are refused until the server comes up there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut env = world.env();
    env.retain(|(k, _)| *k != "ORDERFLOW_SMTP_URL");
    env.push(("ORDERFLOW_SMTP_URL", format!("smtp://127.0.0.1:{port}")));
    let batch = orders(1);
    let mailer = orderflow_testkit::Service::spawn(env!("CARGO_BIN_EXE_mailer"), &env);
    let consumer = world.start_consumer();
    world.produce(&batch).await;
    let queued = orderflow_testkit::eventually(WAIT, || async {
        world.count("sent_emails WHERE state = 'retrying'").await >= 1
    })
    .await;
    assert!(queued, "the mailer never met the refused connection");

    let late = SmtpSink::spawn(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let arrived =
        orderflow_testkit::eventually(WAIT, || async { late.messages().len() == 2 }).await;
    assert!(arrived, "the e-mails did not arrive once the server was up");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(by_message_id(&late.messages()), expected_ids(&batch));

    consumer.stop().await;
    assert!(mailer.terminate(), "the mailer stops cleanly on SIGTERM");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn permanent_refusals_and_unsendable_messages_go_to_the_dead_letter_queue() {
    let world = World::new().await;
    let batch = orders(2);
    let order = batch[1].clone();
    world.sink.fail_next(1, 550);
    let consumer = world.start_consumer();
    let mailer = world.start_mailer();
    world.produce(std::slice::from_ref(&order)).await;
    // Not an e-mail at all: no Message-ID, no envelope.
    world
        .publish_raw(b"hello", BasicProperties::default().with_delivery_mode(2))
        .await;

    let dead_letter_queue = format!("{}.dlq", world.queue);
    let both = orderflow_testkit::eventually(WAIT, || async {
        world.ready_messages(&dead_letter_queue).await == 2
    })
    .await;
    assert!(both, "expected two dead letters");
    world.settle().await;
    assert!(world.sink.messages().is_empty());
    assert_eq!(
        world.sink.transactions(),
        1,
        "a permanent refusal is not retried"
    );

    let dead = world.drain(&dead_letter_queue).await;
    let id = message_id(&order.order_id, Kind::Customer).unwrap();
    let refused = dead
        .iter()
        .find(|m| {
            m.delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str())
                == Some(id.as_str())
        })
        .expect("the refused e-mail is dead-lettered");
    let headers = refused.delivery.properties.headers().clone().unwrap();
    let reason = email::header_text(&headers, DLQ_REASON).unwrap();
    assert!(reason.contains("550"), "{reason}");
    assert_eq!(
        email::header_text(&headers, DLQ_SMTP_CODE).as_deref(),
        Some("550")
    );
    // The dead letter is the e-mail itself, ready to be inspected or moved back.
    let original =
        email::Email::from_amqp(&refused.delivery.properties, &refused.delivery.data).unwrap();
    assert_eq!(original.envelope_to, vec![order.customer.email.clone()]);

    let garbage = dead
        .iter()
        .find(|m| m.delivery.data == b"hello")
        .expect("the malformed message is dead-lettered");
    let headers = garbage.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        email::header_text(&headers, DLQ_REASON).as_deref(),
        Some("malformed e-mail message: no message_id")
    );

    let state: String = sqlx::query_scalar("SELECT state FROM sent_emails WHERE message_id = $1")
        .bind(&id)
        .fetch_one(&world.pool)
        .await
        .unwrap();
    assert_eq!(state, "failed");

    consumer.stop().await;
    mailer.stop().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn inconsistent_orders_and_bad_addresses_are_dead_lettered_in_kafka_with_the_reason() {
    let world = World::new().await;
    let batch = orders(3);
    let mut inconsistent = batch[0].clone();
    inconsistent.totals.total_minor += 1;
    let mut bad_address = batch[1].clone();
    bad_address.customer.email = "ana at example".into();
    let good = batch[2].clone();
    let consumer = world.start_consumer();
    let mailer = world.start_mailer();
    world
        .produce(&[inconsistent.clone(), bad_address.clone(), good.clone()])
        .await;

    let dead = orderflow_testkit::read_topic(&world.dead_letter_topic, 2, WAIT).await;
    assert_eq!(dead.len(), 2);
    let reason_of = |order_id: &str| {
        let m = dead
            .iter()
            .find(|m| m.key() == Some(order_id.as_bytes()))
            .unwrap_or_else(|| panic!("{order_id} not dead-lettered"));
        orderflow_testkit::header(m, REASON).unwrap()
    };
    let reason = reason_of(&inconsistent.order_id);
    assert!(
        reason.contains("inconsistent order: totals.total_minor"),
        "{reason}"
    );
    let reason = reason_of(&bad_address.order_id);
    assert!(
        reason.contains("customer e-mail address \"ana at example\" is invalid"),
        "{reason}"
    );

    world.wait_for_emails(2).await;
    world.settle().await;
    let expected = expected_ids(&[good]);
    assert_eq!(by_message_id(&world.sink.messages()), expected);
    assert_eq!(world.count("queued_emails").await, expected.len() as i64);

    consumer.stop().await;
    mailer.stop().await;
    world.cleanup().await;
}
