//! The runtime's metrics, recorded here once for every consumer and registered in the
//! process-wide registry of [`crate::observe::metrics`]. Names, labels and meanings are listed
//! in docs/observability.md, which dashboards and alert rules follow.

use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use rdkafka::statistics::Statistics;

use super::offsets::Partition;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GroupLabel {
    pub group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TopicLabels {
    pub group: String,
    pub topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PartitionLabels {
    pub group: String,
    pub topic: String,
    pub partition: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeadLetterLabels {
    pub group: String,
    /// One of [`DeadLetterReason::label`]'s few values; the dead letter's own `x-dlq-reason`
    /// header carries the full text.
    pub reason: &'static str,
}

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DeadLetterReason {
    /// Not an event: empty, undecodable or of an unknown schema.
    Poison,
    /// The handler said it would fail the same way every time.
    Permanent,
    /// Retryable failures outlasted the in-process attempts and every retry-topic round.
    RetriesExhausted,
}

impl DeadLetterReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Poison => "poison",
            Self::Permanent => "permanent",
            Self::RetriesExhausted => "retries_exhausted",
        }
    }
}

type HistogramFamily = Family<GroupLabel, Histogram, fn() -> Histogram>;

pub(crate) struct RuntimeMetrics {
    pub processed: Family<TopicLabels, Counter>,
    pub retried: Family<GroupLabel, Counter>,
    pub parked: Family<GroupLabel, Counter>,
    pub dead_lettered: Family<DeadLetterLabels, Counter>,
    pub handler_duration: HistogramFamily,
    pub end_to_end: HistogramFamily,
    pub lag: Family<PartitionLabels, Gauge>,
}

/// 1 ms to about 33 s.
fn handler_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// 10 ms to about 5.5 min: an event waiting out a retry or an outage still lands in a bucket.
fn end_to_end_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

pub(crate) static METRICS: LazyLock<RuntimeMetrics> = LazyLock::new(|| {
    let m = RuntimeMetrics {
        processed: Family::default(),
        retried: Family::default(),
        parked: Family::default(),
        dead_lettered: Family::default(),
        handler_duration: Family::new_with_constructor(handler_buckets),
        end_to_end: Family::new_with_constructor(end_to_end_buckets),
        lag: Family::default(),
    };
    crate::observe::metrics::register(|r| {
        r.register(
            "orderflow_events_processed",
            "Events the handler finished successfully, per consumer group and topic read",
            m.processed.clone(),
        );
        r.register(
            "orderflow_events_retried",
            "In-process retries of a handler after a retryable failure",
            m.retried.clone(),
        );
        r.register(
            "orderflow_events_parked",
            "Events parked on the group's retry topic after their in-process attempts",
            m.parked.clone(),
        );
        r.register(
            "orderflow_events_dead_lettered",
            "Events sent to the group's dead-letter topic, by reason",
            m.dead_lettered.clone(),
        );
        r.register(
            "orderflow_handler_duration_seconds",
            "Time of one handler call (each attempt); an event handled in a run counts the run's time",
            m.handler_duration.clone(),
        );
        r.register(
            "orderflow_end_to_end_seconds",
            "From the Kafka message timestamp (the outbox relay publishes right after checkout accepts) to the handler's success, for events read from the source topic",
            m.end_to_end.clone(),
        );
        r.register(
            "orderflow_consumer_lag",
            "Messages after the group's committed offset, per assigned partition (from librdkafka statistics)",
            m.lag.clone(),
        );
    });
    m
});

pub(crate) fn group(group: &str) -> GroupLabel {
    GroupLabel {
        group: group.to_string(),
    }
}

pub(crate) fn observe(histogram: &HistogramFamily, group_id: &str, elapsed: Duration) {
    histogram
        .get_or_create(&group(group_id))
        .observe(elapsed.as_secs_f64());
}

/// The consumer lag of one group's assigned partitions, refreshed from librdkafka's statistics
/// (`statistics.interval.ms`): the high watermark minus the committed offset, or minus the log
/// start while nothing is committed (the group then starts from the earliest message).
/// Partitions given up leave the gauge, so another instance's figure is the only one left.
pub(crate) struct Lag {
    pub group: String,
    pub shown: Mutex<BTreeSet<Partition>>,
}

impl Lag {
    pub fn refresh(&self, stats: &Statistics, assigned: &BTreeSet<Partition>) {
        let mut shown = self.shown.lock().expect("the lag lock is never poisoned");
        let mut now = BTreeSet::new();
        for (topic, partition) in assigned {
            let Some(p) = stats
                .topics
                .get(topic)
                .and_then(|t| t.partitions.get(partition))
            else {
                continue;
            };
            let lag = if p.committed_offset >= 0 {
                p.hi_offset - p.committed_offset
            } else {
                p.hi_offset - p.lo_offset
            };
            if p.hi_offset < 0 || lag < 0 {
                continue;
            }
            METRICS
                .lag
                .get_or_create(&self.labels(topic, *partition))
                .set(lag);
            now.insert((topic.clone(), *partition));
        }
        for (topic, partition) in shown.difference(&now) {
            METRICS.lag.remove(&self.labels(topic, *partition));
        }
        *shown = now;
    }

    /// Removes the gauges of partitions this instance no longer owns.
    pub fn forget(&self, partitions: &[Partition]) {
        let mut shown = self.shown.lock().expect("the lag lock is never poisoned");
        for (topic, partition) in partitions {
            if shown.remove(&(topic.clone(), *partition)) {
                METRICS.lag.remove(&self.labels(topic, *partition));
            }
        }
    }

    fn labels(&self, topic: &str, partition: i32) -> PartitionLabels {
        PartitionLabels {
            group: self.group.clone(),
            topic: topic.to_string(),
            partition: partition.to_string(),
        }
    }
}
