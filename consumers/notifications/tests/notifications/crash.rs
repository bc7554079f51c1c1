//! Killing either process (SIGKILL) in the middle of a batch and starting it again loses no
//! e-mail and sends none twice; an attempt cut short is sent again only when the provider's
//! message lookup says it never arrived.

use std::time::{Duration, Instant};

use notifications::email::{message_id, Kind};

use crate::common::{by_message_id, expected_ids, orders, World, WAIT};

/// Polls `check` every 10 ms until it holds, for at most `WAIT`.
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_consumer_mid_batch_loses_and_duplicates_nothing() {
    let world = World::new().await;
    let batch = orders(80);
    let expected = expected_ids(&batch);
    let mailer = world.start_mailer();
    world.produce(&batch).await;
    // Runs of two orders on one lane, so the batch takes long enough to be cut in the middle.
    let slow = [
        ("ORDERFLOW_CONSUMER_CONCURRENCY", "1"),
        ("ORDERFLOW_CONSUMER_BATCH_SIZE", "2"),
    ];
    let consumer = world.spawn_consumer_process(&slow);
    until("the consumer queued some e-mails", || async {
        world.count("queued_emails").await >= 10
    })
    .await;
    consumer.kill();
    let queued_at_kill = world.count("queued_emails").await;
    assert!(
        queued_at_kill < expected.len() as i64,
        "the consumer finished the batch before it was killed"
    );

    let consumer = world.spawn_consumer_process(&slow);
    world.wait_for_emails(expected.len()).await;
    world.settle().await;
    assert_eq!(by_message_id(&world.sink.messages()), expected);
    assert_eq!(world.count("queued_emails").await, expected.len() as i64);
    assert_eq!(world.count("processed_events").await, batch.len() as i64);

    assert!(
        consumer.terminate(),
        "the consumer stops cleanly on SIGTERM"
    );
    mailer.stop().await;
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_mailer_mid_batch_loses_and_duplicates_nothing() {
    let world = World::new().await;
    let batch = orders(30);
    let expected = expected_ids(&batch);
    let consumer = world.start_consumer();
    let parallel = [("ORDERFLOW_MAILER_CONCURRENCY", "4")];
    let mailer = world.spawn_mailer_process(&parallel);
    world.produce(&batch).await;
    until("some e-mails arrived", || async {
        world.sink.messages().len() >= 8
    })
    .await;

    // Stop new SMTP conversations at MAIL FROM, then kill the mailer while some of its
    // attempts hang there: they were claimed and started but the server has no message.
    // Conversations already past MAIL FROM finish, and the kill waits until each of them is
    // recorded as sent, so every interrupted attempt is one the server never got: the
    // lookup says so and the e-mail goes out. (A kill anywhere is the next test.)
    world.sink.hold();
    until(
        "the mailer hangs at MAIL FROM with every accepted e-mail recorded",
        || async {
            world.sink.held() >= 1
                && world.sink.open_transactions() == 0
                && world.count("sent_emails WHERE state = 'sent'").await
                    == world.sink.messages().len() as i64
        },
    )
    .await;
    let delivered_at_kill = world.sink.messages().len();
    mailer.kill();
    world.sink.release();
    assert!(
        delivered_at_kill < expected.len(),
        "the mailer finished before it was killed"
    );

    let mailer = world.spawn_mailer_process(&parallel);
    world.wait_for_emails(expected.len()).await;
    world.settle().await;
    assert_eq!(by_message_id(&world.sink.messages()), expected);
    // The attempts cut short by the kill were taken up again, and counted as interrupted.
    assert!(world.count("sent_emails WHERE interrupted > 0").await >= 1);
    assert_eq!(
        world.count("sent_emails WHERE state = 'sent'").await,
        expected.len() as i64
    );

    consumer.stop().await;
    assert!(mailer.terminate(), "the mailer stops cleanly on SIGTERM");
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_mailer_anywhere_sends_each_email_once() {
    let world = World::new().await;
    let batch = orders(40);
    let expected = expected_ids(&batch);
    let consumer = world.start_consumer();
    let parallel = [("ORDERFLOW_MAILER_CONCURRENCY", "8")];
    let mailer = world.spawn_mailer_process(&parallel);
    world.produce(&batch).await;
    // No hold this time: the kill lands wherever the conversations are, including between a
    // 250 and its record.
    until("a quarter of the e-mails arrived", || async {
        world.sink.messages().len() >= expected.len() / 4
    })
    .await;
    mailer.kill();
    let in_flight = world.count("sent_emails WHERE state = 'sending'").await;

    let mailer = world.spawn_mailer_process(&parallel);
    world.wait_for_emails(expected.len()).await;
    world.settle().await;
    assert_eq!(
        by_message_id(&world.sink.messages()),
        expected,
        "each e-mail once ({in_flight} attempts were cut short by the kill)"
    );

    consumer.stop().await;
    assert!(mailer.terminate());
    world.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_attempt_is_sent_again_only_if_the_provider_never_got_it() {
    let world = World::new().await;
    let batch = orders(2);
    let consumer = world.start_consumer();
    world.produce(&batch).await;
    until("both orders' e-mails are queued", || async {
        world.ready_messages(&world.queue).await as usize == expected_ids(&batch).len()
    })
    .await;
    consumer.stop().await;
    let queued = world.drain(&world.queue).await;
    let delivered = queued
        .iter()
        .find(|m| {
            m.properties.message_id().as_ref().map(|id| id.as_str())
                == Some(
                    message_id(&batch[0].order_id, Kind::Customer)
                        .unwrap()
                        .as_str(),
                )
        })
        .expect("the first order's customer e-mail");
    let never_arrived = queued
        .iter()
        .find(|m| {
            m.properties.message_id().as_ref().map(|id| id.as_str())
                == Some(
                    message_id(&batch[1].order_id, Kind::Customer)
                        .unwrap()
                        .as_str(),
                )
        })
        .expect("the second order's customer e-mail");

    // The first e-mail is sent, then its record is put back to `sending`: what a mailer that
    // died between the server's 250 and its record leaves behind.
    let mailer = world.start_mailer();
    world
        .publish_raw(&delivered.data, delivered.properties.clone())
        .await;
    world.wait_for_emails(1).await;
    world.settle().await;
    mailer.stop().await;
    let first = message_id(&batch[0].order_id, Kind::Customer).unwrap();
    sqlx::query("UPDATE sent_emails SET state = 'sending' WHERE message_id = $1")
        .bind(&first)
        .execute(&world.pool)
        .await
        .unwrap();
    // The second was claimed and cut short before the server had it.
    let second = message_id(&batch[1].order_id, Kind::Customer).unwrap();
    sqlx::query(
        "INSERT INTO sent_emails (message_id, order_id, kind, recipients, state, attempts)
         VALUES ($1, $2, 'customer', ARRAY['x@example.com'], 'sending', 1)",
    )
    .bind(&second)
    .bind(&batch[1].order_id)
    .execute(&world.pool)
    .await
    .unwrap();

    // Both are redelivered.
    let mailer = world.start_mailer();
    for m in [delivered, never_arrived] {
        world.publish_raw(&m.data, m.properties.clone()).await;
    }
    world.wait_for_emails(2).await;
    world.settle().await;
    let received = by_message_id(&world.sink.messages());
    assert_eq!(
        received.get(&first),
        Some(&1),
        "the accepted one is not sent again"
    );
    assert_eq!(received.get(&second), Some(&1), "the lost one is sent once");
    let states: Vec<(String, String, i32)> = sqlx::query_as(
        "SELECT message_id, state, interrupted FROM sent_emails ORDER BY message_id",
    )
    .fetch_all(&world.pool)
    .await
    .unwrap();
    for (id, state, interrupted) in &states {
        assert_eq!((state.as_str(), *interrupted), ("sent", 1), "{id}");
    }
    assert_eq!(states.len(), 2);

    mailer.stop().await;
    world.cleanup().await;
}
