//! `dlq list|show|redrive`: the dead letters of a consumer group (`<topic>.<group>.dlq`), one in
//! full, and redriving chosen ones to the group's retry topic once the fault is fixed. A redrive
//! copies; the dead letter stays where it is (Kafka topics are append-only), and the group's
//! idempotency makes a second redrive of an event it has since processed a no-op.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::ops::ControlFlow;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use orderflow_core::headers::{ATTEMPTS, FAILED_AT, REASON, RETRY_ATTEMPTS};
use orderflow_core::registry::SchemaRegistry;
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_core::OrderPlaced;
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use serde::Serialize;

use crate::cluster::{blocking, Cluster, PartitionRange};
use crate::error::Error;
use crate::record::{self, Coordinates, CopyHeaders, Origin};

/// One dead letter, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Where it is on the dead-letter topic.
    pub at: Coordinates,
    pub key: Option<String>,
    pub event_id: Option<String>,
    pub order_id: Option<String>,
    /// Why the payload does not decode as `OrderPlaced`, when it does not.
    pub undecodable: Option<String>,
    pub reason: Option<String>,
    pub attempts: Option<u32>,
    pub failed_at: Option<String>,
    pub origin: Option<Origin>,
    /// When it was written to the dead-letter topic.
    pub timestamp: Option<DateTime<Utc>>,
}

impl DeadLetter {
    pub(crate) fn of(message: &impl Message, registry: Option<&SchemaRegistry>) -> Self {
        let decoded = record::decode(message, registry);
        let (event_id, order_id) = match &decoded {
            Ok(event) => (Some(event.event_id.clone()), Some(event.order_id.clone())),
            Err(_) => (None, None),
        };
        Self {
            at: Coordinates {
                partition: message.partition(),
                offset: message.offset(),
            },
            key: record::key_of(message),
            event_id,
            order_id,
            undecodable: decoded.err(),
            reason: record::header(message, REASON),
            attempts: record::header(message, ATTEMPTS).and_then(|a| a.parse().ok()),
            failed_at: record::header(message, FAILED_AT),
            origin: Origin::of(message),
            timestamp: message
                .timestamp()
                .to_millis()
                .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
        }
    }

    /// The order id, or the key when the payload does not decode.
    fn order_or_key(&self) -> String {
        match (&self.order_id, &self.key) {
            (Some(order), _) => order.clone(),
            (None, Some(key)) => format!("{key} (key; undecodable)"),
            (None, None) => "(no key; undecodable)".into(),
        }
    }
}

/// The dead letters of one group.
#[derive(Debug, Clone, Serialize)]
pub struct GroupDeadLetters {
    pub group: String,
    pub dlq_topic: String,
    /// All dead letters on the topic; `dead_letters` holds the oldest `limit` of them.
    pub total: usize,
    pub dead_letters: Vec<DeadLetter>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DlqListReport {
    pub topic: String,
    pub groups: Vec<GroupDeadLetters>,
}

/// Which dead letters to list.
#[derive(Debug, Clone)]
pub struct DlqQuery {
    pub topic: String,
    /// Empty: every group that has a dead-letter topic for `topic`.
    pub groups: Vec<String>,
    pub limit: usize,
}

/// Lists dead letters per group, oldest first.
pub async fn list(cluster: &Cluster, query: &DlqQuery) -> Result<DlqListReport, Error> {
    let cluster = cluster.clone();
    let query = query.clone();
    blocking(move || {
        let groups = if query.groups.is_empty() {
            groups_with_dead_letters(&cluster, &query.topic)?
        } else {
            query.groups.clone()
        };
        let mut report = DlqListReport {
            topic: query.topic.clone(),
            groups: Vec::new(),
        };
        for group in groups {
            let dlq_topic = dead_letter_topic(&query.topic, &group);
            let mut letters = Vec::new();
            cluster.read_all(&dlq_topic, |message| {
                letters.push(DeadLetter::of(message, cluster.registry()));
                Ok(ControlFlow::Continue(()))
            })?;
            letters.sort_by_key(|l| (l.timestamp, l.at));
            let total = letters.len();
            letters.truncate(query.limit);
            report.groups.push(GroupDeadLetters {
                group,
                dlq_topic,
                total,
                dead_letters: letters,
            });
        }
        Ok(report)
    })
    .await
}

/// Groups with a `<topic>.<group>.dlq` topic.
fn groups_with_dead_letters(cluster: &Cluster, topic: &str) -> Result<Vec<String>, Error> {
    let prefix = format!("{topic}.");
    Ok(cluster
        .topics()?
        .into_keys()
        .filter_map(|name| {
            let group = name.strip_prefix(&prefix)?.strip_suffix(".dlq")?;
            (!group.is_empty()).then(|| group.to_string())
        })
        .collect())
}

/// Reads the records at `at` on `topic`; an offset with no record there is an error.
fn read_at(cluster: &Cluster, topic: &str, at: &[Coordinates]) -> Result<Vec<OwnedMessage>, Error> {
    cluster.partitions_of(topic)?;
    let mut found = Vec::new();
    for c in at {
        let mut message = None;
        cluster.read(
            topic,
            &[PartitionRange {
                partition: c.partition,
                start: c.offset,
                end: c.offset + 1,
            }],
            |m| {
                if m.offset() == c.offset {
                    message = Some(m.detach());
                }
                Ok(ControlFlow::Break(()))
            },
        )?;
        found.push(message.ok_or_else(|| {
            Error::Refused(format!(
                "there is no record at {c} on {topic}; `orderflowctl dlq list` shows the dead \
                 letters with their PARTITION:OFFSET"
            ))
        })?);
    }
    Ok(found)
}

/// One dead letter in full.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetterDetail {
    pub dlq_topic: String,
    #[serde(flatten)]
    pub summary: DeadLetter,
    pub headers: Vec<HeaderField>,
    /// The decoded event, when the payload decodes.
    pub event: Option<OrderPlaced>,
    /// The payload's bytes in hex, when it does not.
    pub payload_hex: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// The dead letter at `at` on `<topic>.<group>.dlq`.
pub async fn show(
    cluster: &Cluster,
    topic: &str,
    group: &str,
    at: Coordinates,
) -> Result<DeadLetterDetail, Error> {
    let cluster = cluster.clone();
    let dlq_topic = dead_letter_topic(topic, group);
    blocking(move || {
        let message = read_at(&cluster, &dlq_topic, &[at])?
            .pop()
            .expect("read_at returns one record per coordinate");
        let decoded = record::decode(&message, cluster.registry());
        Ok(DeadLetterDetail {
            summary: DeadLetter::of(&message, cluster.registry()),
            headers: record::headers_of(&message)
                .into_iter()
                .map(|(name, value)| HeaderField { name, value })
                .collect(),
            payload_hex: decoded
                .is_err()
                .then(|| record::hex(message.payload().unwrap_or_default())),
            event: decoded.ok(),
            dlq_topic,
        })
    })
    .await
}

/// Which dead letters to redrive.
#[derive(Debug, Clone)]
pub enum Selection {
    At(Vec<Coordinates>),
    ReasonContains(String),
    All,
}

#[derive(Debug, Clone)]
pub struct RedriveRequest {
    pub topic: String,
    pub group: String,
    pub selection: Selection,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Redriven {
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
    pub to_topic: String,
    /// `None`: the partition the key hashes to.
    pub to_partition: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedriveReport {
    pub group: String,
    pub dlq_topic: String,
    pub dry_run: bool,
    pub action: String,
    pub count: usize,
    pub redriven: Vec<Redriven>,
}

/// Copies the chosen dead letters to their group's retry topic: same key, payload and
/// non-runtime headers, the origin kept, `x-retry-attempts` = the attempts already made, and the
/// operator action. Every chosen dead letter is checked before the first is written.
pub async fn redrive(cluster: &Cluster, request: &RedriveRequest) -> Result<RedriveReport, Error> {
    let cluster = cluster.clone();
    let request = request.clone();
    blocking(move || redrive_blocking(&cluster, &request)).await
}

fn redrive_blocking(cluster: &Cluster, request: &RedriveRequest) -> Result<RedriveReport, Error> {
    let dlq_topic = dead_letter_topic(&request.topic, &request.group);
    let chosen: Vec<OwnedMessage> = match &request.selection {
        Selection::At(at) => {
            let unique: BTreeSet<Coordinates> = at.iter().copied().collect();
            read_at(cluster, &dlq_topic, &unique.into_iter().collect::<Vec<_>>())?
        }
        Selection::ReasonContains(needle) => {
            let mut chosen = Vec::new();
            cluster.read_all(&dlq_topic, |m| {
                if record::header(m, REASON).is_some_and(|r| r.contains(needle.as_str())) {
                    chosen.push(m.detach());
                }
                Ok(ControlFlow::Continue(()))
            })?;
            chosen
        }
        Selection::All => {
            let mut chosen = Vec::new();
            cluster.read_all(&dlq_topic, |m| {
                chosen.push(m.detach());
                Ok(ControlFlow::Continue(()))
            })?;
            chosen
        }
    };

    let action = format!(
        "redrive {}",
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let mut plan = Vec::with_capacity(chosen.len());
    let mut targets: HashMap<String, usize> = HashMap::new();
    for message in &chosen {
        let letter = DeadLetter::of(message, cluster.registry());
        let origin = letter.origin.clone().ok_or_else(|| {
            Error::Refused(format!(
                "the record at {} on {dlq_topic} has no x-origin-* headers, so its origin topic \
                 is unknown; it was not written by the orderflow runtime. Nothing was redriven.",
                letter.at
            ))
        })?;
        let to_topic = retry_topic(&origin.topic, &request.group);
        let partitions = match targets.get(&to_topic) {
            Some(n) => *n,
            None => {
                let n = cluster.partition_count(&to_topic)?.ok_or_else(|| {
                    Error::Refused(format!(
                        "retry topic {to_topic} does not exist; declare it in deploy/topics.txt \
                         and run `orderflowctl topics apply`. Nothing was redriven."
                    ))
                })?;
                targets.insert(to_topic.clone(), n);
                n
            }
        };
        plan.push((
            message,
            origin.clone(),
            Redriven {
                to_partition: record::same_partition(origin.partition, partitions),
                to_topic,
                dead_letter: letter,
            },
        ));
    }

    if !request.dry_run && !plan.is_empty() {
        let mut sender = cluster.sender()?;
        for (message, origin, redriven) in &plan {
            let extra: Vec<(&str, String)> = redriven
                .dead_letter
                .attempts
                .map(|a| (RETRY_ATTEMPTS, a.to_string()))
                .into_iter()
                .collect();
            sender.send(record::retry_copy(
                *message,
                &redriven.to_topic,
                redriven.to_partition,
                &CopyHeaders {
                    origin,
                    action: &action,
                    extra: &extra,
                },
            ))?;
        }
        sender.flush()?;
    }
    let redriven: Vec<Redriven> = plan.into_iter().map(|(_, _, r)| r).collect();
    Ok(RedriveReport {
        group: request.group.clone(),
        dlq_topic,
        dry_run: request.dry_run,
        action,
        count: redriven.len(),
        redriven,
    })
}

impl fmt::Display for DlqListReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups.is_empty() {
            return writeln!(f, "no group has a dead-letter topic for {}", self.topic);
        }
        for group in &self.groups {
            writeln!(
                f,
                "group {} ({}): {} dead letters",
                group.group, group.dlq_topic, group.total
            )?;
            for l in &group.dead_letters {
                let what = match (&l.order_id, &l.undecodable) {
                    (Some(order), _) => format!(
                        "order {order}, event {}",
                        l.event_id.as_deref().unwrap_or("-")
                    ),
                    (None, why) => format!(
                        "key {}, undecodable ({})",
                        l.key.as_deref().unwrap_or("(none)"),
                        why.as_deref().unwrap_or("no payload")
                    ),
                };
                let origin = l.origin.as_ref().map_or(String::new(), |o| {
                    format!(", from {} {}:{}", o.topic, o.partition, o.offset)
                });
                writeln!(f, "  {:<8} {what}", l.at.to_string())?;
                writeln!(
                    f,
                    "  {:<8} attempts {}, failed at {}{origin}",
                    "",
                    l.attempts.map_or("-".into(), |a| a.to_string()),
                    l.failed_at.as_deref().unwrap_or("-"),
                )?;
                writeln!(
                    f,
                    "  {:<8} reason: {}",
                    "",
                    l.reason.as_deref().unwrap_or("-")
                )?;
            }
            let hidden = group.total - group.dead_letters.len();
            if hidden > 0 {
                writeln!(f, "  ... {hidden} more (raise --limit to see them)")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for DeadLetterDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(f, "dead letter {} on {}", s.at, self.dlq_topic)?;
        writeln!(f, "key:       {}", s.key.as_deref().unwrap_or("(none)"))?;
        writeln!(f, "reason:    {}", s.reason.as_deref().unwrap_or("-"))?;
        writeln!(
            f,
            "attempts:  {}",
            s.attempts.map_or("-".into(), |a| a.to_string())
        )?;
        writeln!(f, "failed at: {}", s.failed_at.as_deref().unwrap_or("-"))?;
        if let Some(o) = &s.origin {
            writeln!(f, "origin:    {} {}:{}", o.topic, o.partition, o.offset)?;
        }
        writeln!(f, "headers:")?;
        for h in &self.headers {
            writeln!(f, "  {}: {}", h.name, h.value)?;
        }
        match (&self.event, &s.undecodable, &self.payload_hex) {
            (Some(event), _, _) => writeln!(
                f,
                "event (OrderPlaced):\n{}",
                serde_json::to_string_pretty(event).map_err(|_| fmt::Error)?
            ),
            (None, Some(why), Some(hex)) => {
                writeln!(f, "payload: undecodable ({why})\n{hex}")
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for RedriveReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.redriven {
            writeln!(
                f,
                "{} {}  order {}  → {}{}",
                if self.dry_run {
                    "would redrive"
                } else {
                    "redrove"
                },
                r.dead_letter.at,
                r.dead_letter.order_or_key(),
                r.to_topic,
                r.to_partition
                    .map_or(" (partition by key)".into(), |p| format!(" partition {p}")),
            )?;
        }
        writeln!(
            f,
            "{} {} dead letters of group {} from {} ({})",
            if self.dry_run {
                "would redrive"
            } else {
                "redrove"
            },
            self.count,
            self.group,
            self.dlq_topic,
            if self.dry_run {
                "dry run: nothing was written"
            } else {
                &self.action
            }
        )
    }
}
