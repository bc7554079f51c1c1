//! Runs of source-topic events for handlers that write a run at once. Each key always goes to the
//! same lane, and a lane handles one run at a time, so a key's events keep their order. A lane's
//! run is whatever arrived while its previous run was handled (up to `batch_size`): under load
//! runs grow and the per-event cost of a transaction shrinks, and a quiet topic still gets each
//! event handled at once. A run that fails is handled again event by event through the one-by-one
//! path, which isolates the bad event and gives it its retries, parking and dead letter.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tracing::Instrument;

use super::offsets::Partition;
use super::retry::History;
use super::{
    decode, delivery_of, metrics, process, process_span, record_processed, telemetry, Batched,
    Event, Handler, HeaderPairs, Shared, METRICS,
};

/// A received source-topic message waiting for its lane.
pub(crate) struct Pending {
    pub message: OwnedMessage,
    pub partition: Partition,
    pub generation: u64,
    /// Its place among the messages in flight, given back when it is done.
    pub _permit: OwnedSemaphorePermit,
}

pub(crate) struct Lanes {
    senders: Vec<mpsc::UnboundedSender<Pending>>,
}

impl Lanes {
    /// Starts `concurrency` lanes; they end when the `Lanes` is dropped and their queues are
    /// empty.
    pub fn start<H: Handler>(shared: &Arc<Shared<H>>) -> Self {
        let senders = (0..shared.settings.concurrency.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(lane(Arc::clone(shared), rx));
                tx
            })
            .collect();
        Self { senders }
    }

    pub fn submit(&self, key: &[u8], pending: Pending) {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        let lane = (hasher.finish() % self.senders.len() as u64) as usize;
        if self.senders[lane].send(pending).is_err() {
            // A lane only stops when the Lanes is dropped; the message stays uncommitted.
            tracing::error!(lane, "batch lane is gone; the message will be redelivered");
        }
    }
}

async fn lane<H: Handler>(shared: Arc<Shared<H>>, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let size = shared.settings.batch_size.max(1);
    let mut run = Vec::with_capacity(size);
    while queue.recv_many(&mut run, size).await > 0 {
        handle_run(&shared, std::mem::take(&mut run)).await;
    }
}

/// Handles a run and marks its messages done.
async fn handle_run<H: Handler>(shared: &Shared<H>, run: Vec<Pending>) {
    let tracker = &shared.tracker;
    // Messages of a partition revoked since they arrived belong to its next owner.
    let run: Vec<Pending> = run
        .into_iter()
        .filter(|p| tracker.start(&p.partition, p.generation))
        .collect();
    // A lone message keeps the one-by-one path, which decodes it, and its span parented by the
    // message's trace.
    if run.len() == 1 {
        return handle_one_by_one(shared, run).await;
    }
    let mut decoded = Vec::with_capacity(run.len());
    let mut one_by_one = Vec::new();
    for pending in run {
        match decode::<H::Event>(&shared.settings, pending.message.payload()).await {
            Ok(event) => decoded.push((pending, event)),
            // The one-by-one path dead-letters it, or retries the registry, with its span.
            Err(_) => one_by_one.push(pending),
        }
    }
    // So does a lone decodable one among poison.
    if decoded.len() == 1 {
        one_by_one.extend(decoded.drain(..).map(|(pending, _)| pending));
    }
    if !decoded.is_empty() {
        let count = decoded.len();
        let (pendings, batch): (Vec<Pending>, Vec<Batched<H::Event>>) = decoded
            .into_iter()
            .map(|(pending, event)| {
                let history = History::of(&pending.message, &shared.settings.retry_topic);
                let delivery = delivery_of(&shared.settings, &pending.message, &history);
                let span = process_span(&delivery, &history);
                span.record("event_id", event.event_id());
                span.record("messaging.batch.message_count", count);
                let batched = Batched {
                    event,
                    delivery,
                    span,
                };
                (pending, batched)
            })
            .unzip();
        match handle_batch(shared, &batch).await {
            Ok(()) => {
                for pending in pendings {
                    record_processed(&shared.settings, &pending.message);
                    tracker.finish(
                        &pending.partition,
                        pending.generation,
                        pending.message.offset(),
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, events = batch.len(),
                    "batch failed; handling its events one by one");
                one_by_one.extend(pendings);
            }
        }
    }
    handle_one_by_one(shared, one_by_one).await;
}

/// One `handle_batch` call in a span of its own, linked to every message's trace; each event's
/// `process` span in its order's trace lasts until the run is done.
async fn handle_batch<H: Handler>(
    shared: &Shared<H>,
    batch: &[Batched<H::Event>],
) -> Result<(), super::HandlerError> {
    let settings = &shared.settings;
    let span = tracing::info_span!(
        "consume batch",
        otel.name = %format!("process {}", settings.topic),
        otel.kind = "consumer",
        messaging.system = "kafka",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.consumer.group.name = %settings.group_id,
        messaging.destination.name = %settings.topic,
        messaging.batch.message_count = batch.len(),
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    for b in batch {
        telemetry::add_link_from(&span, &HeaderPairs(&b.delivery.headers));
    }
    let started = Instant::now();
    let result = shared
        .handler
        .handle_batch(batch)
        .instrument(span.clone())
        .await;
    // Each event of the run waited for the whole run: the histogram counts events, as it does
    // one by one.
    let took = started.elapsed();
    for _ in batch {
        metrics::observe(&METRICS.handler_duration, &settings.group_id, took);
    }
    if let Err(e) = &result {
        telemetry::record_error(&span, "batch", &e.to_string());
    }
    result
}

/// Handles messages through the one-by-one path: a key's messages in their order, different keys
/// at once (at most `concurrency`).
async fn handle_one_by_one<H: Handler>(shared: &Shared<H>, messages: Vec<Pending>) {
    let mut queues: HashMap<Option<Vec<u8>>, Vec<Pending>> = HashMap::new();
    for pending in messages {
        let key = pending.message.key().map(<[u8]>::to_vec);
        queues.entry(key).or_default().push(pending);
    }
    futures::stream::iter(queues.into_values())
        .for_each_concurrent(shared.settings.concurrency.max(1), |queue| async move {
            for pending in queue {
                let history = History::of(&pending.message, &shared.settings.retry_topic);
                process(shared, &pending.message, &history).await;
                shared.tracker.finish(
                    &pending.partition,
                    pending.generation,
                    pending.message.offset(),
                );
            }
        })
        .await;
}
