//! The consumer runtime, written once for every consumer service: a consumer group on one topic,
//! at-least-once delivery (an offset is committed only after its handler finished), per-key order
//! with bounded concurrency, retries with backoff for retryable failures, then non-blocking
//! retries through the group's retry topic, dead letters for the rest, cooperative-sticky
//! rebalancing and graceful shutdown. A consumer whose writes batch well takes its source topic
//! in runs of events instead (`ConsumerSettings::batch_size`, see `batch`).

mod batch;
mod dead_letter;
mod keyed;
mod metrics;
mod offsets;
mod republish;
mod retry;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::OwnedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Semaphore};
use tracing::Instrument;

pub use crate::headers::{
    ATTEMPTS, FAILED_AT, GROUP, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, REASON,
};

use crate::codec::{self, DecodeError, SchemaFamily};
use crate::config::{self, ConfigError, KafkaConfig, Source};
use crate::kafka;
use crate::registry::{self, SchemaRegistry, Undecodable};
use crate::telemetry::{self, HeaderPairs};
use batch::{Lanes, Pending};
use dead_letter::DeadLetters;
use keyed::{Job, KeyedScheduler};
use metrics::{DeadLetterLabels, DeadLetterReason, Lag, TopicLabels, METRICS};
use offsets::{OffsetTracker, Partition};
use republish::Republisher;
use retry::{History, Retries};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An event type a consumer can decode from a Kafka message payload.
pub trait Event: DeserializeOwned + Sized + Send + Sync + 'static {
    /// The schema versions the event is written with.
    fn family() -> &'static SchemaFamily;
    /// The id consumers deduplicate on.
    fn event_id(&self) -> &str;
    /// Decodes a single-object encoded message.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        codec::decode(Self::family(), bytes)
    }
}

/// Where an event came from: the message actually read, which is on the group's retry topic
/// when the event is retried, redriven or replayed.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    /// An operator asked the group to process the event again even if it did already
    /// (`x-orderflow-reprocess: true` on a retry-topic message): the idempotency store lets it
    /// through, and the handler's own effect keys decide what is redone.
    pub reprocess: bool,
    /// Attempts the group made on the event before this delivery (earlier rounds, or the
    /// attempts of a redriven dead letter).
    pub prior_attempts: u32,
}

/// The event in a payload of either framing (see `registry::decode`).
async fn decode<E: Event>(
    settings: &ConsumerSettings,
    payload: Option<&[u8]>,
) -> Result<E, Undecodable> {
    let bytes = payload.ok_or_else(|| Undecodable::Poison("empty payload".into()))?;
    registry::decode(settings.schema_registry.as_ref(), bytes).await
}

/// How a handler failed, which decides what the runtime does next.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth trying again (a peer is down, a timeout): retried with backoff, then dead-lettered.
    /// `retry_after` is the peer's own hint (an HTTP `Retry-After`): the next attempt waits at
    /// least that long, up to `ConsumerSettings::retry_after_max`.
    #[error("retryable: {error}")]
    Retryable {
        error: BoxError,
        retry_after: Option<Duration>,
    },
    /// Will fail the same way every time (invalid data, a refusal): dead-lettered at once.
    #[error("permanent: {0}")]
    Permanent(BoxError),
}

impl HandlerError {
    pub fn retryable(e: impl Into<BoxError>) -> Self {
        Self::Retryable {
            error: e.into(),
            retry_after: None,
        }
    }

    /// A retryable failure whose peer said when to come back.
    pub fn retry_after(e: impl Into<BoxError>, after: Duration) -> Self {
        Self::Retryable {
            error: e.into(),
            retry_after: Some(after),
        }
    }

    pub fn permanent(e: impl Into<BoxError>) -> Self {
        Self::Permanent(e.into())
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// Database trouble is retryable when it is about the connection, the server's state or a
/// serialization conflict, and permanent when the statement itself is refused.
impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        let retryable = match &e {
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                ["08", "40", "53", "57"]
                    .iter()
                    .any(|class| c.starts_with(class))
            }),
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => true,
            _ => false,
        };
        if retryable {
            Self::retryable(e)
        } else {
            Self::Permanent(e.into())
        }
    }
}

/// An event of a run handed to `Handler::handle_batch`, with where it came from.
#[derive(Debug)]
pub struct Batched<E> {
    pub event: E,
    pub delivery: Delivery,
    /// The event's own `process` span, in its order's trace (the run's span is in a trace of
    /// its own): work done for this event alone, such as a message that carries the trace on,
    /// goes in it so that the order's trace stays whole.
    pub span: tracing::Span,
}

/// A consumer's logic over one decoded event. It must be idempotent: the runtime delivers at
/// least once, so the same event can arrive again after a crash, a rebalance or a replay.
pub trait Handler: Send + Sync + 'static {
    type Event: Event;

    fn handle(
        &self,
        event: &Self::Event,
        delivery: &Delivery,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Handles a run of source-topic events at once (one transaction, one statement per table),
    /// which the runtime does when `ConsumerSettings::batch_size` is above 1. Events of one key
    /// come in their order. On an error the runtime hands each event of the run to `handle`
    /// alone, with its retries, parking and dead letters, so one bad event does not hold back
    /// the others; whatever the run did commit must be skipped by `handle`'s idempotency.
    /// By default the events are handled one after the other.
    fn handle_batch(
        &self,
        batch: &[Batched<Self::Event>],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for b in batch {
                self.handle(&b.event, &b.delivery).await?;
            }
            Ok(())
        }
    }
}

/// How one consumer group consumes one topic.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub group_id: String,
    pub topic: String,
    pub dead_letter_topic: String,
    /// `<topic>.<group>.retry`: where events out of in-process attempts wait for another round,
    /// and where operators redrive and replay events into this group.
    pub retry_topic: String,
    /// Handlers running at once (over different keys); with batches, the runs handled at once
    /// (each key always goes to the same one of these lanes).
    pub concurrency: usize,
    /// Source-topic events handed to `Handler::handle_batch` at most at once; 1 handles every
    /// event alone. A run takes what has arrived while the previous one ran, so a quiet topic
    /// still sees each event at once.
    pub batch_size: usize,
    /// Messages received and not finished; reading pauses at this bound. Retry-topic messages
    /// waiting for their time are held against a second bound of the same size, so a full delay
    /// queue does not stop the source topic.
    pub max_in_flight: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    /// The longest a peer's `Retry-After` is honoured before the next attempt; a longer hint is
    /// cut to this, so one slow peer cannot hold a key (and its partition's commits) for long.
    pub retry_after_max: Duration,
    /// Attempts of a retryable failure in one delivery before the event is parked on the retry
    /// topic (or dead-lettered when its rounds are used up).
    pub retry_max_attempts: usize,
    /// Rounds an event may spend on the retry topic before it is dead-lettered; 0 dead-letters
    /// it once the in-process attempts are used up.
    pub retry_rounds: usize,
    /// How long an event waits on the retry topic in its first round; each later round waits
    /// twice as long as the one before, up to an hour.
    pub retry_topic_delay: Duration,
    pub commit_interval: Duration,
    /// How long a revocation or a shutdown waits for running handlers.
    pub drain_timeout: Duration,
    pub session_timeout: Duration,
    /// Where the writer schemas of Confluent-framed messages are looked up
    /// (`ORDERFLOW_SCHEMA_REGISTRY_URL`); without it such messages are dead-lettered.
    pub schema_registry: Option<SchemaRegistry>,
}

impl ConsumerSettings {
    pub fn new(group_id: impl Into<String>, topic: impl Into<String>) -> Self {
        let group_id = group_id.into();
        let topic = topic.into();
        Self {
            dead_letter_topic: crate::topics::dead_letter_topic(&topic, &group_id),
            retry_topic: crate::topics::retry_topic(&topic, &group_id),
            group_id,
            topic,
            concurrency: 32,
            batch_size: 1,
            max_in_flight: 1024,
            retry_min_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(10),
            retry_after_max: Duration::from_secs(60),
            retry_max_attempts: 8,
            retry_rounds: 3,
            retry_topic_delay: Duration::from_secs(30),
            commit_interval: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(30),
            session_timeout: Duration::from_secs(10),
            schema_registry: None,
        }
    }

    /// Settings for a handler whose `handle_batch` writes a run at once: runs of up to 256
    /// events over 4 lanes, and room for 2,048 messages in flight to fill them (the next runs
    /// wait while these are handled; more only holds more memory).
    pub fn batched(group_id: impl Into<String>, topic: impl Into<String>) -> Self {
        Self {
            concurrency: 4,
            batch_size: 256,
            max_in_flight: 2048,
            ..Self::new(group_id, topic)
        }
    }

    /// These settings overridden by `ORDERFLOW_CONSUMER_GROUP`, `ORDERFLOW_CONSUMER_TOPIC`,
    /// `ORDERFLOW_CONSUMER_CONCURRENCY`, `ORDERFLOW_CONSUMER_BATCH_SIZE`,
    /// `ORDERFLOW_CONSUMER_MAX_IN_FLIGHT`,
    /// `ORDERFLOW_CONSUMER_RETRY_MAX_ATTEMPTS`, `ORDERFLOW_CONSUMER_RETRY_MIN_DELAY_MS`,
    /// `ORDERFLOW_CONSUMER_RETRY_MAX_DELAY_MS`, `ORDERFLOW_CONSUMER_RETRY_AFTER_MAX_MS`,
    /// `ORDERFLOW_CONSUMER_RETRY_ROUNDS`, `ORDERFLOW_CONSUMER_RETRY_TOPIC_DELAY_MS`,
    /// `ORDERFLOW_CONSUMER_DRAIN_TIMEOUT_MS` and `ORDERFLOW_SCHEMA_REGISTRY_URL`.
    /// The dead-letter and retry topics follow the group and topic in force.
    pub fn overridden_by(self, src: &impl Source) -> Result<Self, ConfigError> {
        let mut s = self;
        let group_id = config::optional::<String>(src, "ORDERFLOW_CONSUMER_GROUP")?;
        let topic = config::optional::<String>(src, "ORDERFLOW_CONSUMER_TOPIC")?;
        if group_id.is_some() || topic.is_some() {
            s.group_id = group_id.unwrap_or(s.group_id);
            s.topic = topic.unwrap_or(s.topic);
            s.dead_letter_topic = crate::topics::dead_letter_topic(&s.topic, &s.group_id);
            s.retry_topic = crate::topics::retry_topic(&s.topic, &s.group_id);
        }
        if let Some(n) = config::optional::<usize>(src, "ORDERFLOW_CONSUMER_CONCURRENCY")? {
            s.concurrency = n;
        }
        if let Some(n) = config::optional::<usize>(src, "ORDERFLOW_CONSUMER_BATCH_SIZE")? {
            s.batch_size = n;
        }
        if let Some(n) = config::optional::<usize>(src, "ORDERFLOW_CONSUMER_MAX_IN_FLIGHT")? {
            s.max_in_flight = n;
        }
        if let Some(n) = config::optional::<usize>(src, "ORDERFLOW_CONSUMER_RETRY_MAX_ATTEMPTS")? {
            s.retry_max_attempts = n;
        }
        s.retry_min_delay = config::millis(
            src,
            "ORDERFLOW_CONSUMER_RETRY_MIN_DELAY_MS",
            s.retry_min_delay,
        )?;
        s.retry_max_delay = config::millis(
            src,
            "ORDERFLOW_CONSUMER_RETRY_MAX_DELAY_MS",
            s.retry_max_delay,
        )?;
        s.retry_after_max = config::millis(
            src,
            "ORDERFLOW_CONSUMER_RETRY_AFTER_MAX_MS",
            s.retry_after_max,
        )?;
        if let Some(n) = config::optional::<usize>(src, "ORDERFLOW_CONSUMER_RETRY_ROUNDS")? {
            s.retry_rounds = n;
        }
        s.retry_topic_delay = config::millis(
            src,
            "ORDERFLOW_CONSUMER_RETRY_TOPIC_DELAY_MS",
            s.retry_topic_delay,
        )?;
        s.drain_timeout =
            config::millis(src, "ORDERFLOW_CONSUMER_DRAIN_TIMEOUT_MS", s.drain_timeout)?;
        s.schema_registry = SchemaRegistry::from_source(src)?;
        Ok(s)
    }

    /// `ConsumerSettings::new` overridden by the environment (see `overridden_by`).
    pub fn from_source(
        src: &impl Source,
        group_id: impl Into<String>,
        topic: impl Into<String>,
    ) -> Result<Self, ConfigError> {
        Self::new(group_id, topic).overridden_by(src)
    }
}

/// Why the runtime could not run.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error(
        "topic {0} does not exist; declare it in deploy/topics.txt and run scripts/stack.sh up"
    )]
    MissingTopic(String),
}

/// How often librdkafka reports the statistics the consumer-lag gauge is read from.
const LAG_REFRESH: Duration = Duration::from_secs(5);

/// Gives up partitions cleanly: waits for their running handlers and commits what finished
/// before the next owner takes over, so committed work is never lost or redone. Also keeps the
/// consumer-lag gauge of the partitions it owns.
struct RebalanceContext {
    tracker: Arc<OffsetTracker>,
    drain_timeout: Duration,
    assigned: Mutex<BTreeSet<Partition>>,
    lag: Lag,
}

impl RebalanceContext {
    fn assigned(&self) -> std::sync::MutexGuard<'_, BTreeSet<Partition>> {
        self.assigned
            .lock()
            .expect("the assignment lock is never poisoned")
    }
}

impl ClientContext for RebalanceContext {
    fn stats(&self, statistics: Statistics) {
        let assigned = self.assigned().clone();
        self.lag.refresh(&statistics, &assigned);
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let partitions: Vec<Partition> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        tracing::info!(?partitions, "partitions revoked");
        for partition in &partitions {
            self.assigned().remove(partition);
        }
        self.lag.forget(&partitions);
        let positions = block_in_place(|| self.tracker.revoke(&partitions, self.drain_timeout));
        if let Err(e) = commit(consumer, &positions, CommitMode::Sync) {
            tracing::warn!(error = %e, "commit on revocation failed; the next owner may redo some events");
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(assigned) = rebalance {
            let partitions: Vec<Partition> = assigned
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::info!(?partitions, "partitions assigned");
            self.assigned().extend(partitions);
        }
    }

    /// An asynchronous commit reports its failure only here; the positions are committed again
    /// on the next tick instead of counting as done, so a crash does not redo more than needed.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        if let Err(e) = result {
            let partitions: Vec<Partition> = offsets
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            tracing::warn!(error = %e, ?partitions, "offset commit failed; will retry");
            self.tracker.commit_failed(&partitions);
        }
    }
}

/// Lets other tasks move off this worker while a rebalance callback waits for handlers.
fn block_in_place<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn commit<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    positions: &[(Partition, i64)],
    mode: CommitMode,
) -> Result<(), KafkaError> {
    if positions.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), position) in positions {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*position))?;
    }
    consumer.commit(&tpl, mode)
}

/// Everything a message's processing needs, shared by all of them.
struct Shared<H: Handler> {
    handler: H,
    settings: ConsumerSettings,
    tracker: Arc<OffsetTracker>,
    dead_letters: DeadLetters,
    retries: Retries,
}

/// Runs `handler` over `settings.topic` and the group's retry topic until `shutdown` completes,
/// then finishes the work in flight, commits and leaves the group. Refuses to start when the
/// topic, its dead-letter topic or its retry topic does not exist.
pub async fn run<H: Handler>(
    kafka: &KafkaConfig,
    settings: ConsumerSettings,
    handler: H,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RuntimeError> {
    let tracker = Arc::new(OffsetTracker::default());
    let consumer: StreamConsumer<RebalanceContext> = kafka::client_config(kafka)
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "cooperative-sticky")
        // librdkafka bounds its pre-fetch queue and its fetch answers by their compressed size:
        // zstd shrinks orders about six times, so its defaults (64 MiB queued, 50 MiB a fetch)
        // let a consumer far behind hold hundreds of MiB of decoded batches. 4 MiB queued and
        // 2 MiB a fetch (512 KiB a partition) keep it under 100 MiB. A queue that small drains
        // in a fraction of a second, so the fetcher looks again after 10 ms instead of 1 s.
        .set("queued.max.messages.kbytes", "4096")
        .set("fetch.max.bytes", "2097152")
        .set("max.partition.fetch.bytes", "524288")
        .set("fetch.queue.backoff.ms", "10")
        .set(
            "session.timeout.ms",
            settings.session_timeout.as_millis().to_string(),
        )
        .set(
            "statistics.interval.ms",
            LAG_REFRESH.as_millis().to_string(),
        )
        .create_with_context(RebalanceContext {
            tracker: Arc::clone(&tracker),
            drain_timeout: settings.drain_timeout,
            assigned: Mutex::default(),
            lag: Lag {
                group: settings.group_id.clone(),
                shown: Mutex::default(),
            },
        })?;
    for topic in [
        &settings.topic,
        &settings.dead_letter_topic,
        &settings.retry_topic,
    ] {
        ensure_exists(&consumer, topic)?;
    }
    let republisher = Arc::new(Republisher {
        producer: kafka::idempotent_producer(kafka, Duration::from_secs(30))?,
    });
    let shared = Arc::new(Shared {
        dead_letters: DeadLetters {
            republisher: Arc::clone(&republisher),
            topic: settings.dead_letter_topic.clone(),
            group: settings.group_id.clone(),
        },
        retries: Retries {
            republisher,
            topic: settings.retry_topic.clone(),
            rounds: settings.retry_rounds,
            first_delay: settings.retry_topic_delay,
        },
        tracker: Arc::clone(&tracker),
        handler,
        settings,
    });
    consumer.subscribe(&[&shared.settings.topic, &shared.settings.retry_topic])?;
    tracing::info!(
        group = %shared.settings.group_id,
        topic = %shared.settings.topic,
        retry_topic = %shared.settings.retry_topic,
        "consumer started"
    );

    let scheduler = KeyedScheduler::new(shared.settings.concurrency);
    let lanes = (shared.settings.batch_size > 1).then(|| Lanes::start(&shared));
    let capacity = Arc::new(Semaphore::new(shared.settings.max_in_flight.max(1)));
    let waiting = Arc::new(Semaphore::new(shared.settings.max_in_flight.max(1)));
    let (stop_waiting, stopping) = watch::channel(false);
    let mut commit_tick = tokio::time::interval(shared.settings.commit_interval);
    tokio::pin!(shutdown);
    'consume: loop {
        let permit = tokio::select! {
            biased;
            _ = &mut shutdown => break 'consume,
            _ = commit_tick.tick() => {
                commit_progress(&consumer, &tracker, CommitMode::Async);
                continue 'consume;
            }
            permit = Arc::clone(&capacity).acquire_owned() => {
                permit.expect("the capacity semaphore is never closed")
            }
        };
        // Commits go on while the topic is quiet: finished work must not wait for new messages.
        let message = loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break 'consume,
                _ = commit_tick.tick() => commit_progress(&consumer, &tracker, CommitMode::Async),
                m = consumer.recv() => break m,
            }
        };
        let message = match message {
            Ok(m) => m.detach(),
            Err(e) => {
                tracing::warn!(error = %e, "kafka consumer error");
                continue;
            }
        };
        let partition = (message.topic().to_string(), message.partition());
        let generation = tracker.received(&partition, message.offset());
        // Keyless messages keep their partition's order.
        let key = message.key().map(<[u8]>::to_vec).unwrap_or_else(|| {
            format!("\0{}\0{}", message.topic(), message.partition()).into_bytes()
        });
        // Source-topic events go in runs when the handler batches. Retry-topic copies keep the
        // one-by-one path: they wait for their time, and parking them already let later events
        // of their key go first.
        if let Some(lanes) = &lanes {
            if message.topic() == shared.settings.topic {
                lanes.submit(
                    &key,
                    Pending {
                        message,
                        partition,
                        generation,
                        _permit: permit,
                    },
                );
                continue;
            }
        }
        let history = History::of(&message, &shared.settings.retry_topic);
        // A retry-topic message waits for its time in its key's queue without taking a handler
        // slot: later work of the same key waits behind it, other keys go on. Its partition's
        // committed position cannot pass it, so a restart reads again what followed it (which
        // idempotency absorbs). That costs little because the retry topic is a delay queue: the
        // runtime appends events due at now plus their round's delay, so what follows a waiting
        // message is mostly due no sooner than it.
        let ready = history.due().map(|due| -> keyed::Task<bool> {
            Box::pin(retry::wait_until(
                due,
                stopping.clone(),
                Arc::clone(&tracker),
                partition.clone(),
                generation,
                message.offset(),
            ))
        });
        // While there is room, a waiting message holds a place of the waiting bound instead of
        // one the source topic needs.
        let permit = if ready.is_some() {
            Arc::clone(&waiting).try_acquire_owned().unwrap_or(permit)
        } else {
            permit
        };
        let shared = Arc::clone(&shared);
        let work = Box::pin(async move {
            if shared.tracker.start(&partition, generation) {
                process(&shared, &message, &history).await;
                shared
                    .tracker
                    .finish(&partition, generation, message.offset());
            }
            drop(permit);
        });
        scheduler.submit(key, Job { ready, work });
    }
    // Retries waiting for their time give up now: they stay uncommitted, for the next run.
    stop_waiting.send_replace(true);

    tracing::info!(in_flight = tracker.in_flight(), "draining before shutdown");
    let deadline = tokio::time::Instant::now() + shared.settings.drain_timeout;
    while tracker.in_flight() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    commit_progress(&consumer, &tracker, CommitMode::Sync);
    consumer.unsubscribe();
    let owned: Vec<Partition> = consumer.context().assigned().iter().cloned().collect();
    consumer.context().lag.forget(&owned);
    tracing::info!(group = %shared.settings.group_id, "consumer stopped");
    Ok(())
}

fn ensure_exists<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    topic: &str,
) -> Result<(), RuntimeError> {
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let found = metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty());
    if found {
        Ok(())
    } else {
        Err(RuntimeError::MissingTopic(topic.to_string()))
    }
}

fn commit_progress<C: Consumer<X>, X: ConsumerContext>(
    consumer: &C,
    tracker: &OffsetTracker,
    mode: CommitMode,
) {
    let positions = tracker.uncommitted();
    match commit(consumer, &positions, mode) {
        Ok(()) => tracker.committed(&positions),
        Err(e) => tracing::warn!(error = %e, "offset commit failed; will retry"),
    }
}

/// Where `message` came from, as its handler sees it.
fn delivery_of(settings: &ConsumerSettings, message: &OwnedMessage, history: &History) -> Delivery {
    Delivery {
        group: settings.group_id.clone(),
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned()),
        headers: kafka::header_pairs(message),
        reprocess: history.reprocess,
        prior_attempts: history.prior_attempts,
    }
}

/// Counts a handled message, and for a source-topic one how long after it was written.
fn record_processed(settings: &ConsumerSettings, message: &OwnedMessage) {
    let group = &settings.group_id;
    METRICS
        .processed
        .get_or_create(&TopicLabels {
            group: group.clone(),
            topic: message.topic().to_string(),
        })
        .inc();
    // A retry-topic message is a copy written later (a retry, a redrive, a replay): its
    // timestamp is not when the order was placed.
    if message.topic() == settings.topic {
        if let Some(age) = since_timestamp(message) {
            metrics::observe(&METRICS.end_to_end, group, age);
        }
    }
}

/// The `process` span of one message, a child of the context its headers carry (the producer's
/// send), after OpenTelemetry's messaging conventions.
fn process_span(delivery: &Delivery, history: &History) -> tracing::Span {
    let span = tracing::info_span!(
        "consume",
        otel.name = %format!("process {}", delivery.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.consumer.group.name = %delivery.group,
        messaging.destination.name = %delivery.topic,
        messaging.destination.partition.id = delivery.partition,
        messaging.kafka.offset = delivery.offset,
        messaging.kafka.message.key = delivery.key.as_deref().unwrap_or(""),
        messaging.batch.message_count = tracing::field::Empty,
        event_id = tracing::field::Empty,
        retry_round = history.round,
        reprocess = history.reprocess,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    telemetry::set_parent_from(&span, &HeaderPairs(&delivery.headers));
    span
}

/// Decodes and handles one message. An event still failing retryably after its in-process
/// attempts is parked on the retry topic while it has rounds left; whatever else cannot be
/// handled goes to the dead letters.
async fn process<H: Handler>(shared: &Shared<H>, message: &OwnedMessage, history: &History) {
    let delivery = delivery_of(&shared.settings, message, history);
    let span = process_span(&delivery, history);
    async {
        let outcome = match decode::<H::Event>(&shared.settings, message.payload()).await {
            Err(Undecodable::Poison(reason)) => Err(Failure::Poison(format!("poison: {reason}"))),
            // The message may be fine once the registry answers: retried like a handler failure.
            Err(Undecodable::RegistryUnavailable(e)) => Err(Failure::Handler {
                error: HandlerError::retryable(e),
                attempts: 1,
            }),
            Ok(event) => {
                tracing::Span::current().record("event_id", event.event_id());
                handle_with_retries(shared, &event, &delivery).await
            }
        };
        let group = &shared.settings.group_id;
        match outcome {
            Ok(()) => {
                tracing::debug!("handled");
                record_processed(&shared.settings, message);
            }
            Err(Failure::Handler {
                error: e @ HandlerError::Retryable { .. },
                attempts,
            }) if shared.retries.parks(history) => {
                shared
                    .retries
                    .park(message, history, &e.to_string(), attempts)
                    .await;
                METRICS.parked.get_or_create(&metrics::group(group)).inc();
            }
            Err(failure) => {
                telemetry::record_error(
                    &tracing::Span::current(),
                    failure.kind().label(),
                    &failure.reason(),
                );
                shared
                    .dead_letters
                    .publish(message, history, &failure.reason(), failure.attempts())
                    .await;
                METRICS
                    .dead_lettered
                    .get_or_create(&DeadLetterLabels {
                        group: group.clone(),
                        reason: failure.kind().label(),
                    })
                    .inc();
            }
        }
    }
    .instrument(span)
    .await;
}

/// Why a delivery of an event failed.
enum Failure {
    /// The message is not an event.
    Poison(String),
    /// The handler's last error, after `attempts` attempts.
    Handler { error: HandlerError, attempts: u32 },
}

impl Failure {
    fn kind(&self) -> DeadLetterReason {
        match self {
            Self::Poison(_) => DeadLetterReason::Poison,
            Self::Handler {
                error: HandlerError::Retryable { .. },
                ..
            } => DeadLetterReason::RetriesExhausted,
            Self::Handler { .. } => DeadLetterReason::Permanent,
        }
    }

    fn attempts(&self) -> u32 {
        match self {
            // The one decode is its attempt, so a redriven copy that fails again counts two.
            Self::Poison(_) => 1,
            Self::Handler { attempts, .. } => *attempts,
        }
    }

    /// The dead letter's reason.
    fn reason(&self) -> String {
        match self {
            Self::Poison(reason) => reason.clone(),
            Self::Handler {
                error: e @ HandlerError::Retryable { .. },
                ..
            } => format!("retries exhausted: {e}"),
            Self::Handler { error, .. } => error.to_string(),
        }
    }
}

/// Runs the handler, retrying retryable failures with exponential backoff and jitter.
async fn handle_with_retries<H: Handler>(
    shared: &Shared<H>,
    event: &H::Event,
    delivery: &Delivery,
) -> Result<(), Failure> {
    let s = &shared.settings;
    let mut attempts = 0u32;
    let result = (|| {
        attempts += 1;
        timed(&s.group_id, shared.handler.handle(event, delivery))
    })
    .retry(
        ExponentialBuilder::default()
            .with_min_delay(s.retry_min_delay)
            .with_max_delay(s.retry_max_delay)
            .with_max_times(s.retry_max_attempts.saturating_sub(1))
            .with_jitter(),
    )
    .when(HandlerError::is_retryable)
    .adjust(|e, backoff| honour_retry_after(e, backoff, s.retry_after_max))
    .notify(|e, wait| {
        tracing::warn!(error = %e, ?wait, "handler failed; retrying");
        METRICS
            .retried
            .get_or_create(&metrics::group(&s.group_id))
            .inc();
    })
    .await;
    result.map_err(|error| Failure::Handler { error, attempts })
}

/// One handler call, recorded in the handler-duration histogram whatever its outcome.
async fn timed<F: Future<Output = Result<(), HandlerError>>>(
    group: &str,
    call: F,
) -> Result<(), HandlerError> {
    let started = Instant::now();
    let result = call.await;
    metrics::observe(&METRICS.handler_duration, group, started.elapsed());
    result
}

/// How long ago the message was written, by its Kafka timestamp; `None` without one, or when
/// the producer's clock is ahead of ours.
fn since_timestamp(message: &OwnedMessage) -> Option<Duration> {
    let written = message.timestamp().to_millis()?;
    let now = chrono::Utc::now().timestamp_millis();
    u64::try_from(now - written).ok().map(Duration::from_millis)
}

/// The wait before the next attempt: the backoff, or the peer's `Retry-After` when that is longer
/// (capped at `max_delay`),
/// plus up to a tenth more taken from the jittered backoff, so peers told the same wait do not
/// all come back at once. `None` (attempts exhausted) stays `None`.
fn honour_retry_after(
    e: &HandlerError,
    backoff: Option<Duration>,
    max_delay: Duration,
) -> Option<Duration> {
    let backoff = backoff?;
    match e {
        HandlerError::Retryable {
            retry_after: Some(after),
            ..
        } => {
            let after = (*after).min(max_delay);
            if after > backoff {
                Some(after + backoff.min(after / 10))
            } else {
                Some(backoff)
            }
        }
        _ => Some(backoff),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_topic_and_rounds_follow_the_environment() {
        let unset: [(&str, &str); 0] = [];
        let defaults = ConsumerSettings::from_source(&unset, "billing", "orders.placed").unwrap();
        assert_eq!(defaults.retry_topic, "orders.placed.billing.retry");
        assert_eq!(defaults.retry_rounds, 3);
        assert_eq!(defaults.retry_topic_delay, Duration::from_secs(30));
        let s = ConsumerSettings::from_source(
            &[
                ("ORDERFLOW_CONSUMER_GROUP", "billing-2"),
                ("ORDERFLOW_CONSUMER_TOPIC", "orders.replayed"),
                ("ORDERFLOW_CONSUMER_RETRY_ROUNDS", "0"),
                ("ORDERFLOW_CONSUMER_RETRY_TOPIC_DELAY_MS", "1500"),
            ],
            "billing",
            "orders.placed",
        )
        .unwrap();
        assert_eq!(s.retry_topic, "orders.replayed.billing-2.retry");
        assert_eq!(s.dead_letter_topic, "orders.replayed.billing-2.dlq");
        assert_eq!(s.retry_rounds, 0);
        assert_eq!(s.retry_topic_delay, Duration::from_millis(1500));
    }

    #[test]
    fn a_retry_after_longer_than_the_backoff_is_waited_out_up_to_its_cap() {
        let max = Duration::from_secs(10);
        let ms = Duration::from_millis;
        let hinted = |after| HandlerError::retry_after("busy", after);
        assert_eq!(
            honour_retry_after(&hinted(ms(1000)), Some(ms(50)), max),
            Some(ms(1050))
        );
        assert_eq!(
            honour_retry_after(&hinted(ms(1000)), Some(ms(500)), max),
            Some(ms(1100)),
            "at most a tenth more"
        );
        assert_eq!(
            honour_retry_after(&hinted(ms(100)), Some(ms(400)), max),
            Some(ms(400))
        );
        assert_eq!(
            honour_retry_after(&hinted(Duration::from_secs(3600)), Some(ms(50)), max),
            Some(ms(10_050))
        );
        assert_eq!(honour_retry_after(&hinted(ms(1000)), None, max), None);
        assert_eq!(
            honour_retry_after(&HandlerError::retryable("down"), Some(ms(50)), max),
            Some(ms(50))
        );
    }
}
