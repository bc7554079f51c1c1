//! `lag`: per consumer group and partition of a topic and of the group's retry topic, the
//! committed offset, the end offset, the lag between them, and how old the oldest event not yet
//! processed is (the timestamp of the record at the committed offset).

use std::collections::HashMap;
use std::fmt;
use std::ops::ControlFlow;

use chrono::{DateTime, TimeZone, Utc};
use orderflow_core::topics::retry_topic;
use rdkafka::Message;
use serde::Serialize;

use crate::cluster::{blocking, Cluster, PartitionRange};
use crate::error::Error;

/// Which groups and topic to report on.
#[derive(Debug, Clone)]
pub struct LagQuery {
    pub topic: String,
    /// Empty: every group with committed offsets on the topic.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// `None`: the group committed nothing here yet (it starts from the earliest record).
    pub committed: Option<i64>,
    /// The next offset to be written (high watermark).
    pub end: i64,
    pub lag: i64,
    /// Timestamp of the oldest record not yet processed, when there is one.
    pub oldest_unprocessed_at: Option<DateTime<Utc>>,
    /// Its age in seconds when the report was made.
    pub oldest_unprocessed_age_secs: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupLag {
    pub group: String,
    pub state: String,
    pub members: usize,
    pub total_lag: i64,
    pub partitions: Vec<PartitionLag>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LagReport {
    pub topic: String,
    pub at: DateTime<Utc>,
    pub groups: Vec<GroupLag>,
}

/// The lag of each group on the topic and on its retry topic.
pub async fn lag(cluster: &Cluster, query: &LagQuery) -> Result<LagReport, Error> {
    let cluster = cluster.clone();
    let query = query.clone();
    blocking(move || lag_blocking(&cluster, &query)).await
}

fn lag_blocking(cluster: &Cluster, query: &LagQuery) -> Result<LagReport, Error> {
    let topic_partitions = cluster.partitions_of(&query.topic)?;
    let groups = if query.groups.is_empty() {
        cluster.groups_on(&query.topic)?
    } else {
        query.groups.clone()
    };
    let at = Utc::now();
    let mut report = LagReport {
        topic: query.topic.clone(),
        at,
        groups: Vec::new(),
    };
    for group in groups {
        let info = cluster.group(&group)?;
        let mut partitions = Vec::new();
        let retry = retry_topic(&query.topic, &group);
        let mut topics = vec![(query.topic.clone(), topic_partitions)];
        if let Some(n) = cluster.partition_count(&retry)? {
            topics.push((retry, n));
        }
        for (topic, n) in topics {
            let committed = cluster.committed(&group, &topic, n)?;
            let mut heads = Vec::new();
            for (p, committed) in committed.into_iter().enumerate() {
                let partition = p as i32;
                let (low, end) = cluster.watermarks(&topic, partition)?;
                // A committed offset below the low watermark points at deleted records; the
                // group will resume at the oldest kept one.
                let next = committed.unwrap_or(low).max(low);
                let lag = (end - next).max(0);
                if lag > 0 {
                    heads.push(PartitionRange {
                        partition,
                        start: next,
                        end: next + 1,
                    });
                }
                partitions.push(PartitionLag {
                    topic: topic.clone(),
                    partition,
                    committed,
                    end,
                    lag,
                    oldest_unprocessed_at: None,
                    oldest_unprocessed_age_secs: None,
                });
            }
            let mut oldest: HashMap<i32, i64> = HashMap::new();
            cluster.read(&topic, &heads, |message| {
                if let Some(ms) = message.timestamp().to_millis() {
                    oldest.entry(message.partition()).or_insert(ms);
                }
                Ok(ControlFlow::Continue(()))
            })?;
            for row in partitions.iter_mut().filter(|r| r.topic == topic) {
                if let Some(at_ms) = oldest.get(&row.partition) {
                    let when = Utc.timestamp_millis_opt(*at_ms).single();
                    row.oldest_unprocessed_at = when;
                    row.oldest_unprocessed_age_secs = when.map(|w| (at - w).num_seconds().max(0));
                }
            }
        }
        report.groups.push(GroupLag {
            total_lag: partitions.iter().map(|p| p.lag).sum(),
            group,
            state: info.state,
            members: info.members.len(),
            partitions,
        });
    }
    Ok(report)
}

/// `3725` as `1h02m05s`.
pub fn human_duration(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

impl fmt::Display for LagReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups.is_empty() {
            return writeln!(
                f,
                "no consumer group has committed offsets on {}",
                self.topic
            );
        }
        for group in &self.groups {
            writeln!(
                f,
                "group {} ({}, {} members): total lag {}",
                group.group, group.state, group.members, group.total_lag
            )?;
            let width = group
                .partitions
                .iter()
                .map(|p| p.topic.len())
                .max()
                .unwrap_or(5)
                .max(5);
            writeln!(
                f,
                "  {:width$}  {:>9}  {:>12}  {:>12}  {:>10}  oldest unprocessed",
                "topic", "partition", "committed", "end", "lag"
            )?;
            for p in &group.partitions {
                let oldest = match (p.oldest_unprocessed_age_secs, p.oldest_unprocessed_at) {
                    (Some(age), Some(at)) => format!("{} ago ({})", human_duration(age), at),
                    _ => "-".into(),
                };
                writeln!(
                    f,
                    "  {:width$}  {:>9}  {:>12}  {:>12}  {:>10}  {oldest}",
                    p.topic,
                    p.partition,
                    p.committed.map_or("-".to_string(), |c| c.to_string()),
                    p.end,
                    p.lag,
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_naturally() {
        assert_eq!(super::human_duration(5), "5s");
        assert_eq!(super::human_duration(65), "1m05s");
        assert_eq!(super::human_duration(3725), "1h02m05s");
    }
}
