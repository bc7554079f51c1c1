//! A batch of orders gives one confirmation per order and one notice per order with an agent;
//! the same events, a replay under new event ids and a republished AMQP copy give nothing more.

use notifications::email::{message_id, Kind};
use notifications::render::Renderer;
use orderflow_testkit::metric;

use crate::common::{by_message_id, expected_ids, orders, World};

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_sends_one_confirmation_per_order_and_one_notice_per_agent() {
    let world = World::new().await;
    let batch = orders(12);
    let consumer = world.start_consumer();
    let mailer = world.start_mailer();
    world.produce(&batch).await;

    let expected = expected_ids(&batch);
    assert_eq!(expected.len(), 18);
    world.wait_for_emails(expected.len()).await;
    world.settle().await;
    let received = world.sink.messages();
    assert_eq!(by_message_id(&received), expected);

    for o in &batch {
        let customer = message_id(&o.order_id, Kind::Customer).unwrap();
        let m = received
            .iter()
            .find(|m| m.message_id.as_deref() == Some(customer.as_str()))
            .unwrap();
        assert_eq!(m.rcpt_to, vec![o.customer.email.clone()]);
        assert_eq!(m.mail_from, "orders@shop.example");
        if let Some(agent) = &o.sales_agent {
            let id = message_id(&o.order_id, Kind::Agent).unwrap();
            let m = received
                .iter()
                .find(|m| m.message_id.as_deref() == Some(id.as_str()))
                .unwrap();
            assert_eq!(m.rcpt_to, vec![agent.email.clone()]);
        }
    }
    assert_eq!(world.count("sent_emails WHERE state = 'sent'").await, 18);
    assert_eq!(
        world
            .count("sent_emails WHERE attempts <> 1 OR interrupted <> 0")
            .await,
        0
    );
    assert_eq!(world.count("queued_emails").await, 18);
    assert_eq!(world.count("processed_events").await, 12);
    // The mailer ran in this process, so its metrics are in this process's registry.
    let metrics = orderflow_core::observe::metrics::render(&[]).await;
    let queue = world.queue.as_str();
    let count = |name: &str, label: (&str, &str)| {
        metric(&metrics, name, &[("queue", queue), label]).unwrap_or(0.0)
    };
    assert_eq!(
        count("orderflow_emails_total", ("outcome", "sent")),
        18.0,
        "{metrics}"
    );
    assert_eq!(
        count("orderflow_smtp_attempts_total", ("result", "accepted")),
        18.0
    );
    assert_eq!(
        count("orderflow_smtp_attempts_total", ("result", "temporary")),
        0.0
    );
    assert_eq!(
        metric(
            &metrics,
            "orderflow_smtp_send_duration_seconds_count",
            &[("queue", queue)]
        ),
        Some(18.0)
    );

    consumer.stop().await;
    mailer.stop().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_replayed_and_republished_orders_send_nothing_twice() {
    let world = World::new().await;
    let batch = orders(6);
    let consumer = world.start_consumer();
    let mailer = world.start_mailer();
    world.produce(&batch).await;
    let expected = expected_ids(&batch);
    world.wait_for_emails(expected.len()).await;

    // The same events again (a redelivery), the same orders under new event ids (a replay from
    // checkout), and AMQP copies of the rendered e-mails (a consumer that crashed between the
    // broker's confirm and its commit, and published again).
    world.produce(&batch).await;
    let replays: Vec<_> = batch
        .iter()
        .map(|o| {
            let mut again = o.clone();
            again.event_id = uuid::Uuid::new_v4().to_string();
            again
        })
        .collect();
    world.produce(&replays).await;
    let renderer = Renderer::new("Test Shop <orders@shop.example>".parse().unwrap()).unwrap();
    for o in &batch {
        for r in renderer.order_emails(o).unwrap() {
            world
                .publish_raw(&r.email.raw, r.email.properties(Vec::new()))
                .await;
        }
    }

    let processed = orderflow_testkit::eventually(crate::common::WAIT, || async {
        world.count("processed_events").await == 12
    })
    .await;
    assert!(processed, "the replayed events were not processed");
    world.settle().await;
    assert_eq!(by_message_id(&world.sink.messages()), expected);
    assert_eq!(world.count("queued_emails").await, expected.len() as i64);
    assert_eq!(world.count("sent_emails WHERE attempts <> 1").await, 0);

    consumer.stop().await;
    mailer.stop().await;
    world.cleanup().await;
}
