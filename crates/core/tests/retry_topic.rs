//! Non-blocking retries through the group's retry topic, against the real broker (and Postgres
//! for reprocessing): parking, rounds, redrives, waiting for a retry's time, shutdown while
//! waiting, and reprocessing. Each test has its own topics and consumer group.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use orderflow_core::headers::{
    ATTEMPTS, GROUP, OPERATOR_ACTION, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, REASON,
    REPROCESS, RETRY_ATTEMPTS, RETRY_NOT_BEFORE, RETRY_REASON, RETRY_ROUND,
};
use orderflow_core::idempotency::IdempotencyStore;
use orderflow_core::runtime::{self, ConsumerSettings, RuntimeError};
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_core::{Delivery, Handler, HandlerError, OrderPlaced};
use orderflow_testkit::{self as kit, produce_with_headers as produce, sample_order_placed};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;

const WAIT: Duration = Duration::from_secs(40);

struct Setup {
    topic: String,
    group: String,
    dlq: String,
    retry: String,
}

/// One-partition topics, so offsets are known and one key's copies keep their order.
async fn setup() -> Setup {
    kit::init_telemetry();
    let topic = kit::topic("retry", 1).await;
    let group = kit::unique("group");
    let dlq = dead_letter_topic(&topic, &group);
    let retry = retry_topic(&topic, &group);
    kit::create_topic(&dlq, 1).await;
    kit::create_topic(&retry, 1).await;
    Setup {
        topic,
        group,
        dlq,
        retry,
    }
}

/// Two quick in-process attempts per delivery, then rounds of `delay` on the retry topic.
fn settings(s: &Setup, rounds: usize, delay: Duration) -> ConsumerSettings {
    let mut settings = ConsumerSettings::new(&s.group, &s.topic);
    settings.retry_min_delay = Duration::from_millis(10);
    settings.retry_max_delay = Duration::from_millis(50);
    settings.retry_max_attempts = 2;
    settings.retry_rounds = rounds;
    settings.retry_topic_delay = delay;
    settings.commit_interval = Duration::from_millis(100);
    settings.session_timeout = Duration::from_secs(6);
    settings
}

fn order(id: &str) -> Vec<u8> {
    sample_order_placed(id).encode().unwrap()
}

fn key_of(m: &OwnedMessage) -> String {
    String::from_utf8(m.key().unwrap().to_vec()).unwrap()
}

fn header_count(m: &OwnedMessage, name: &str) -> usize {
    m.headers()
        .map(|h| h.iter().filter(|h| h.key == name).count())
        .unwrap_or(0)
}

fn time_header(m: &OwnedMessage, name: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&kit::header(m, name).unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn produced_at(m: &OwnedMessage) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(m.timestamp().to_millis().unwrap()).unwrap()
}

#[derive(Clone, Copy)]
enum Script {
    /// Fails retryably on this many attempts (over all deliveries), then succeeds.
    FailTimes(u32),
    Refuse,
}

#[derive(Debug, Clone)]
struct Handled {
    order_id: String,
    topic: String,
    prior_attempts: u32,
    at: DateTime<Utc>,
}

/// Fails as scripted per order id and records what it handled, where from and when.
#[derive(Clone, Default)]
struct Scripted {
    script: Arc<HashMap<String, Script>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    handled: Arc<Mutex<Vec<Handled>>>,
}

impl Scripted {
    fn new(script: &[(&str, Script)]) -> Self {
        Self {
            script: Arc::new(script.iter().map(|(id, s)| (id.to_string(), *s)).collect()),
            ..Default::default()
        }
    }

    fn handled(&self, order_id: &str) -> Vec<Handled> {
        self.handled
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.order_id == order_id)
            .cloned()
            .collect()
    }

    fn attempts(&self, order_id: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(order_id)
            .copied()
            .unwrap_or(0)
    }

    async fn wait_handled(&self, order_id: &str) -> bool {
        kit::eventually(WAIT, || async { !self.handled(order_id).is_empty() }).await
    }
}

impl Handler for Scripted {
    type Event = OrderPlaced;

    async fn handle(&self, event: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(event.order_id.clone()).or_default();
            *n += 1;
            *n
        };
        match self.script.get(&event.order_id) {
            Some(Script::Refuse) => {
                return Err(HandlerError::permanent(format!(
                    "order {} is refused",
                    event.order_id
                )))
            }
            Some(Script::FailTimes(n)) if attempt <= *n => {
                return Err(HandlerError::retryable("supplier timed out"))
            }
            _ => {}
        }
        self.handled.lock().unwrap().push(Handled {
            order_id: event.order_id.clone(),
            topic: delivery.topic.clone(),
            prior_attempts: delivery.prior_attempts,
            at: Utc::now(),
        });
        Ok(())
    }
}

async fn committed(s: &Setup, topic: &str) -> Option<i64> {
    kit::committed_offset(&s.group, topic, 0).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_event_is_parked_on_the_retry_topic_while_its_partition_moves_on() {
    let s = setup().await;
    let delay = Duration::from_secs(5);
    let stuck = order("stuck");
    // Stale runtime headers on the source topic are neither believed nor copied.
    produce(
        &s.topic,
        "stuck",
        &stuck,
        &[
            ("x-test-note", "kept"),
            (RETRY_ROUND, "9"),
            (REASON, "stale"),
        ],
    )
    .await;
    produce(&s.topic, "later", &order("later"), &[]).await;
    let handler = Scripted::new(&[("stuck", Script::FailTimes(2))]);
    let (stop, task) = kit::spawn_runtime(settings(&s, 3, delay), handler.clone());

    let parked = kit::read_topic(&s.retry, 1, WAIT).await;
    assert_eq!(parked.len(), 1);
    let parked = &parked[0];
    assert_eq!(key_of(parked), "stuck");
    assert_eq!(parked.payload().unwrap(), stuck, "the original bytes");
    assert_eq!(kit::header(parked, "x-test-note").as_deref(), Some("kept"));
    assert_eq!(kit::header(parked, ORIGIN_TOPIC).unwrap(), s.topic);
    assert_eq!(kit::header(parked, ORIGIN_PARTITION).unwrap(), "0");
    assert_eq!(kit::header(parked, ORIGIN_OFFSET).unwrap(), "0");
    assert_eq!(kit::header(parked, RETRY_ATTEMPTS).unwrap(), "2");
    assert_eq!(kit::header(parked, RETRY_ROUND).unwrap(), "1");
    assert_eq!(header_count(parked, RETRY_ROUND), 1);
    assert_eq!(header_count(parked, REASON), 0);
    assert!(kit::header(parked, RETRY_REASON)
        .unwrap()
        .contains("supplier timed out"));
    let not_before = time_header(parked, RETRY_NOT_BEFORE);
    let waits = (not_before - produced_at(parked)).to_std().unwrap();
    assert!(
        waits.abs_diff(delay) < Duration::from_secs(1),
        "the first round waits the configured delay ({waits:?})"
    );

    // The source partition is done with both events while "stuck" still waits.
    assert!(
        kit::eventually(WAIT, || async { committed(&s, &s.topic).await == Some(2) }).await,
        "the source partition is committed past the parked event"
    );
    assert!(Utc::now() < not_before, "checked while it is parked");
    assert!(handler.handled("stuck").is_empty());
    assert_eq!(handler.handled("later").len(), 1);

    assert!(handler.wait_handled("stuck").await);
    assert!(kit::eventually(WAIT, || async { committed(&s, &s.retry).await == Some(1) }).await);
    stop.send(()).unwrap();
    task.await.unwrap();
    let handled = handler.handled("stuck");
    assert_eq!(handled.len(), 1, "handled once");
    assert_eq!(handled[0].topic, s.retry);
    assert_eq!(handled[0].prior_attempts, 2);
    assert!(handled[0].at >= not_before, "not before its time");
    assert_eq!(handler.attempts("stuck"), 3);
    assert!(kit::read_topic(&s.dlq, 1, Duration::from_secs(2))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_event_out_of_rounds_is_dead_lettered_with_all_its_attempts() {
    let s = setup().await;
    produce(&s.topic, "doomed", &order("doomed"), &[]).await;
    let handler = Scripted::new(&[("doomed", Script::FailTimes(u32::MAX))]);
    let (stop, task) =
        kit::spawn_runtime(settings(&s, 2, Duration::from_millis(200)), handler.clone());
    let dead = kit::read_topic(&s.dlq, 1, WAIT).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    assert_eq!(dead.len(), 1);
    let dead = &dead[0];
    assert_eq!(key_of(dead), "doomed");
    assert_eq!(
        kit::header(dead, ATTEMPTS).unwrap(),
        "6",
        "two attempts in each of three deliveries"
    );
    assert_eq!(kit::header(dead, ORIGIN_TOPIC).unwrap(), s.topic);
    assert_eq!(kit::header(dead, ORIGIN_PARTITION).unwrap(), "0");
    assert_eq!(kit::header(dead, ORIGIN_OFFSET).unwrap(), "0");
    assert_eq!(kit::header(dead, GROUP).unwrap(), s.group);
    assert!(kit::header(dead, REASON)
        .unwrap()
        .starts_with("retries exhausted: retryable: supplier timed out"));
    assert_eq!(header_count(dead, RETRY_ROUND), 0);
    assert_eq!(handler.attempts("doomed"), 6);

    let rounds = kit::read_topic(&s.retry, 3, Duration::from_secs(5)).await;
    assert_eq!(rounds.len(), 2, "two rounds on the retry topic");
    for (n, parked) in rounds.iter().enumerate() {
        assert_eq!(
            kit::header(parked, RETRY_ROUND).unwrap(),
            (n + 1).to_string()
        );
        assert_eq!(
            kit::header(parked, RETRY_ATTEMPTS).unwrap(),
            (2 * (n + 1)).to_string()
        );
        assert_eq!(kit::header(parked, ORIGIN_TOPIC).unwrap(), s.topic);
        assert_eq!(kit::header(parked, ORIGIN_OFFSET).unwrap(), "0");
    }
    let second_wait = time_header(&rounds[1], RETRY_NOT_BEFORE) - produced_at(&rounds[1]);
    assert!(
        second_wait.num_milliseconds() >= 350,
        "the second round waits twice as long ({second_wait})"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redriven_event_that_fails_again_counts_its_earlier_attempts() {
    let s = setup().await;
    let redrive = "redrive 2026-11-22T04:00:00Z";
    let origin = [
        (ORIGIN_TOPIC, s.topic.as_str()),
        (ORIGIN_PARTITION, "0"),
        (ORIGIN_OFFSET, "7"),
    ];
    let mut headers = vec![(RETRY_ATTEMPTS, "5"), (OPERATOR_ACTION, redrive)];
    headers.extend(origin);
    produce(&s.retry, "refused", &order("refused"), &headers).await;
    produce(&s.retry, "flaky", &order("flaky"), &headers).await;
    // A redrive without its origin: the retry topic is where the group first read it.
    produce(&s.retry, "garbage", b"not avro", &[(RETRY_ATTEMPTS, "3")]).await;
    let handler = Scripted::new(&[
        ("refused", Script::Refuse),
        ("flaky", Script::FailTimes(u32::MAX)),
    ]);
    let (stop, task) =
        kit::spawn_runtime(settings(&s, 1, Duration::from_millis(100)), handler.clone());
    let dead = kit::read_topic(&s.dlq, 3, WAIT).await;
    stop.send(()).unwrap();
    task.await.unwrap();

    let dead: HashMap<String, &OwnedMessage> = dead.iter().map(|m| (key_of(m), m)).collect();
    assert_eq!(dead.len(), 3);
    let refused = dead["refused"];
    assert_eq!(
        kit::header(refused, REASON).unwrap(),
        "permanent: order refused is refused"
    );
    assert_eq!(
        kit::header(refused, ATTEMPTS).unwrap(),
        "6",
        "5 before, 1 now"
    );
    assert_eq!(kit::header(refused, ORIGIN_TOPIC).unwrap(), s.topic);
    assert_eq!(kit::header(refused, ORIGIN_OFFSET).unwrap(), "7");
    assert_eq!(kit::header(refused, OPERATOR_ACTION).unwrap(), redrive);

    // A redrive gets the whole schedule again: one round here, then the dead letters.
    let flaky = dead["flaky"];
    assert_eq!(
        kit::header(flaky, ATTEMPTS).unwrap(),
        "9",
        "5, then 2 and 2"
    );
    assert_eq!(kit::header(flaky, ORIGIN_OFFSET).unwrap(), "7");
    let parked: Vec<OwnedMessage> = kit::read_topic(&s.retry, 4, Duration::from_secs(5))
        .await
        .into_iter()
        .filter(|m| kit::header(m, RETRY_ROUND).is_some())
        .collect();
    assert_eq!(parked.len(), 1);
    assert_eq!(kit::header(&parked[0], RETRY_ATTEMPTS).unwrap(), "7");
    assert_eq!(kit::header(&parked[0], ORIGIN_OFFSET).unwrap(), "7");

    let garbage = dead["garbage"];
    assert!(kit::header(garbage, REASON)
        .unwrap()
        .starts_with("poison: "));
    // Its 3 earlier attempts, and this delivery's decode.
    assert_eq!(kit::header(garbage, ATTEMPTS).unwrap(), "4");
    assert_eq!(kit::header(garbage, ORIGIN_TOPIC).unwrap(), s.retry);
    assert_eq!(kit::header(garbage, ORIGIN_OFFSET).unwrap(), "2");
    assert_eq!(handler.attempts("refused"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retry_waits_for_its_time_without_holding_up_other_events() {
    let s = setup().await;
    let not_before = Utc::now() + chrono::Duration::seconds(4);
    let not_before_header = not_before.to_rfc3339();
    produce(
        &s.retry,
        "early",
        &order("early"),
        &[(RETRY_NOT_BEFORE, &not_before_header)],
    )
    .await;
    produce(&s.retry, "other", &order("other"), &[]).await;
    produce(&s.topic, "fresh", &order("fresh"), &[]).await;
    let handler = Scripted::default();
    let (stop, task) =
        kit::spawn_runtime(settings(&s, 3, Duration::from_millis(100)), handler.clone());
    assert!(handler.wait_handled("other").await);
    assert!(handler.wait_handled("fresh").await);
    assert!(
        handler.handled("early").is_empty(),
        "events behind a waiting retry and on the source topic go on"
    );
    // Commits of the retry partition stop at the waiting message.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(Utc::now() < not_before, "checked while it waits");
    assert_eq!(committed(&s, &s.retry).await.unwrap_or(0), 0);

    assert!(handler.wait_handled("early").await);
    assert!(kit::eventually(WAIT, || async { committed(&s, &s.retry).await == Some(2) }).await);
    stop.send(()).unwrap();
    task.await.unwrap();
    let early = handler.handled("early");
    assert_eq!(early.len(), 1);
    assert!(
        early[0].at >= not_before,
        "handled at {} before its time {not_before}",
        early[0].at
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shutdown_does_not_wait_for_a_retry_and_leaves_it_to_be_read_again() {
    let s = setup().await;
    let in_an_hour = (Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    produce(&s.retry, "before", &order("before"), &[]).await;
    produce(
        &s.retry,
        "parked",
        &order("parked"),
        &[(RETRY_NOT_BEFORE, &in_an_hour)],
    )
    .await;
    produce(&s.retry, "after", &order("after"), &[]).await;
    let handler = Scripted::default();
    let mut settings = settings(&s, 3, Duration::from_millis(100));
    settings.drain_timeout = Duration::from_secs(20);
    let (stop, task) = kit::spawn_runtime(settings, handler.clone());
    assert!(handler.wait_handled("before").await);
    assert!(handler.wait_handled("after").await);
    assert!(kit::eventually(WAIT, || async { committed(&s, &s.retry).await == Some(1) }).await);

    let stopping = Instant::now();
    stop.send(()).unwrap();
    task.await.unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the shutdown did not wait out the drain timeout ({:?})",
        stopping.elapsed()
    );
    assert!(handler.handled("parked").is_empty());
    assert_eq!(
        committed(&s, &s.retry).await,
        Some(1),
        "the waiting message stays uncommitted, so the next run reads it again"
    );
}

/// Claims each event in the idempotency store and records the claims it got.
#[derive(Clone)]
struct Once {
    store: IdempotencyStore,
    claims: Arc<Mutex<Vec<(String, i64, bool)>>>,
}

impl Handler for Once {
    type Event = OrderPlaced;

    async fn handle(&self, event: &OrderPlaced, delivery: &Delivery) -> Result<(), HandlerError> {
        let Some(tx) = self.store.claim(&event.event_id, delivery).await? else {
            return Ok(());
        };
        tx.commit().await?;
        self.claims.lock().unwrap().push((
            delivery.topic.clone(),
            delivery.offset,
            delivery.reprocess,
        ));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reprocess_runs_an_event_the_group_already_processed_again() {
    let s = setup().await;
    let pool = kit::database().await;
    let handler = Once {
        store: IdempotencyStore::new(pool, &s.group).await.unwrap(),
        claims: Arc::default(),
    };
    let event = order("again");
    produce(&s.topic, "again", &event, &[]).await;
    let (stop, task) =
        kit::spawn_runtime(settings(&s, 3, Duration::from_millis(100)), handler.clone());
    assert!(kit::eventually(WAIT, || async { handler.claims.lock().unwrap().len() == 1 }).await);
    let origin = [
        (ORIGIN_TOPIC, s.topic.as_str()),
        (ORIGIN_PARTITION, "0"),
        (ORIGIN_OFFSET, "0"),
    ];
    let mut reprocess = vec![(REPROCESS, "true"), (OPERATOR_ACTION, "replay")];
    reprocess.extend(origin);
    // Replayed copies of the same event, on one key, run in order.
    produce(&s.retry, "again", &event, &origin).await;
    produce(&s.retry, "again", &event, &reprocess).await;
    produce(&s.retry, "again", &event, &origin).await;
    assert!(kit::eventually(WAIT, || async { committed(&s, &s.retry).await == Some(3) }).await);
    assert!(kit::eventually(WAIT, || async { committed(&s, &s.topic).await == Some(1) }).await);
    stop.send(()).unwrap();
    task.await.unwrap();
    assert_eq!(
        *handler.claims.lock().unwrap(),
        vec![(s.topic.clone(), 0, false), (s.retry.clone(), 1, true)],
        "the source event once, the plain copies skipped, the reprocess run again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_refuses_to_start_without_its_retry_topic() {
    kit::init_telemetry();
    let topic = kit::topic("retry", 1).await;
    let group = kit::unique("group");
    kit::create_topic(&dead_letter_topic(&topic, &group), 1).await;
    let settings = ConsumerSettings::new(&group, &topic);
    let result = runtime::run(
        &kit::kafka(),
        settings,
        Scripted::default(),
        std::future::pending(),
    )
    .await;
    match result {
        Err(RuntimeError::MissingTopic(missing)) => {
            assert_eq!(missing, retry_topic(&topic, &group))
        }
        other => panic!("expected a missing retry topic, got {other:?}"),
    }
}
