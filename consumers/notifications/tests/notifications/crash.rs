//! Killing either process (SIGKILL) in the middle of a batch and starting it again loses no
//! e-mail and sends none twice.

use std::time::{Duration, Instant};

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
    // One order at a time, so the batch takes long enough to be cut in the middle.
    let slow = [("ORDERFLOW_CONSUMER_CONCURRENCY", "1")];
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
    // recorded as sent, so the kill never lands between a 250 and its record: that window
    // SMTP cannot close (see the mailer module), and would resend with the same Message-ID.
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
