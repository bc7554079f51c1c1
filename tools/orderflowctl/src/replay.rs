//! `replay`: delivers a window of a topic again to chosen consumer groups, and to no other.
//!
//! Two methods:
//! - **copy** (default): the window's records are copied to each chosen group's retry topic
//!   (`<topic>.<group>.retry`), which only that group reads, so it works while the group runs.
//!   The group's idempotency store turns events it already processed into no-ops, unless the
//!   copies carry `x-orderflow-reprocess: true` (`--reprocess`).
//! - **rewind**: the group's committed offsets on the topic go back to the window's start, so
//!   the group reads everything from there on again. Only a group without active members can have
//!   its offsets moved, and a rewind cannot be bounded nor force reprocessing (the source records
//!   carry no reprocess header). It never moves a group forward, and leaves alone a partition
//!   where the group committed nothing (the runtime starts those from the earliest record).

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orderflow_core::headers::REPROCESS;
use orderflow_core::topics::retry_topic;
use rdkafka::Message;
use serde::Serialize;

use crate::cluster::{blocking, Cluster, PartitionRange};
use crate::error::Error;
use crate::record::{self, CopyHeaders, Origin};

/// What to replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Window {
    /// Records with timestamps in `from..to` (to: the end of each partition when absent).
    Time {
        from: DateTime<Utc>,
        to: Option<DateTime<Utc>>,
    },
    /// Offsets `start..end` of one partition (end: the end of the partition when absent).
    Offsets {
        partition: i32,
        start: i64,
        end: Option<i64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Copy the records to each group's retry topic (the group may keep running).
    Copy,
    /// Move the group's committed offsets back to the window's start (the group must be stopped).
    Rewind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Groups {
    Named(Vec<String>),
    /// Every group with committed offsets on the topic.
    All,
}

#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub topic: String,
    pub groups: Groups,
    pub window: Window,
    pub method: Method,
    pub dry_run: bool,
    /// Copies written per second at most.
    pub rate: Option<u32>,
    /// Make the groups process the events again even if they already did (copy only).
    pub reprocess: bool,
    /// Show a progress bar on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl ReplayRequest {
    /// Refuses combinations that cannot do what they say, before anything is read.
    pub fn validate(&self) -> Result<(), Error> {
        if let Groups::Named(groups) = &self.groups {
            if groups.is_empty() {
                return Err(Error::Refused(
                    "choose the groups to replay into: --group G (repeatable) or --all-groups"
                        .into(),
                ));
            }
        }
        if self.rate == Some(0) {
            return Err(Error::Refused(
                "--rate must be at least 1 message per second".into(),
            ));
        }
        if self.method == Method::Rewind {
            let bounded = match self.window {
                Window::Time { to, .. } => to.is_some(),
                Window::Offsets { end, .. } => end.is_some(),
            };
            if bounded {
                return Err(Error::Refused(
                    "a rewind cannot stop at --to/--end-offset: the group reads on from the \
                     window's start to the end of each partition. Use --method copy to replay a \
                     bounded window."
                        .into(),
                ));
            }
            if self.reprocess {
                return Err(Error::Refused(
                    "a rewind cannot --reprocess: the group reads the original records again, \
                     which carry no reprocess header, so its idempotency store skips the events \
                     it already processed. Use --method copy --reprocess to make it redo their \
                     effects."
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// The resolved window on one partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionWindow {
    pub partition: i32,
    pub start: i64,
    /// Exclusive.
    pub end: i64,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupCopy {
    pub group: String,
    pub retry_topic: String,
    /// Copies written (with --dry-run: that would be written).
    pub copies: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionRewind {
    pub partition: i32,
    pub committed: Option<i64>,
    /// The new committed offset; `None` when the group is already at or before the start, or
    /// has committed nothing (it then reads from the earliest record).
    pub to: Option<i64>,
    /// Records the group already read that it will read again.
    pub redelivered: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupRewind {
    pub group: String,
    pub partitions: Vec<PartitionRewind>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub topic: String,
    pub method: Method,
    pub dry_run: bool,
    pub reprocess: bool,
    pub window: Window,
    pub action: String,
    pub partitions: Vec<PartitionWindow>,
    pub records: i64,
    pub copies: Vec<GroupCopy>,
    pub rewinds: Vec<GroupRewind>,
}

/// Replays `request.window` of the topic into the chosen groups.
pub async fn replay(cluster: &Cluster, request: &ReplayRequest) -> Result<ReplayReport, Error> {
    request.validate()?;
    let cluster = cluster.clone();
    let request = request.clone();
    blocking(move || replay_blocking(&cluster, &request)).await
}

fn replay_blocking(cluster: &Cluster, request: &ReplayRequest) -> Result<ReplayReport, Error> {
    let groups = match &request.groups {
        Groups::Named(groups) => groups.clone(),
        Groups::All => {
            let groups = cluster.groups_on(&request.topic)?;
            if groups.is_empty() {
                return Err(Error::Refused(format!(
                    "no consumer group has committed offsets on {}; name the groups with --group",
                    request.topic
                )));
            }
            groups
        }
    };
    let ranges = resolve(cluster, &request.topic, &request.window)?;
    let records = ranges.iter().map(PartitionRange::count).sum();
    let action = format!(
        "replay {}",
        Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let mut report = ReplayReport {
        topic: request.topic.clone(),
        method: request.method,
        dry_run: request.dry_run,
        reprocess: request.reprocess,
        window: request.window.clone(),
        action,
        partitions: ranges
            .iter()
            .map(|r| PartitionWindow {
                partition: r.partition,
                start: r.start,
                end: r.end,
                count: r.count(),
            })
            .collect(),
        records,
        copies: Vec::new(),
        rewinds: Vec::new(),
    };
    match request.method {
        Method::Copy => copy(cluster, request, &groups, &ranges, &mut report)?,
        Method::Rewind => rewind(cluster, request, &groups, &ranges, &mut report)?,
    }
    Ok(report)
}

/// Offsets per partition for the window, within what the partition holds now.
fn resolve(cluster: &Cluster, topic: &str, window: &Window) -> Result<Vec<PartitionRange>, Error> {
    let partitions = cluster.partitions_of(topic)?;
    let wanted: Vec<(i32, Option<i64>, Option<i64>)> = match window {
        Window::Time { from, to } => {
            let starts = cluster.offsets_for_time(topic, partitions, from.timestamp_millis())?;
            let ends = match to {
                Some(to) => {
                    if to <= from {
                        return Err(Error::Refused(format!(
                            "--to ({to}) must be after --from ({from})"
                        )));
                    }
                    cluster
                        .offsets_for_time(topic, partitions, to.timestamp_millis())?
                        .into_iter()
                        .map(Some)
                        .collect()
                }
                None => vec![None; partitions],
            };
            // No record at or after `from`/`to` yet: the window starts/ends at the partition's end.
            starts
                .into_iter()
                .zip(ends)
                .enumerate()
                .map(|(p, (start, end))| {
                    (
                        p as i32,
                        Some(start.unwrap_or(i64::MAX)),
                        end.map(|e| e.unwrap_or(i64::MAX)),
                    )
                })
                .collect()
        }
        Window::Offsets {
            partition,
            start,
            end,
        } => {
            if usize::try_from(*partition).map_or(true, |p| p >= partitions) {
                return Err(Error::Refused(format!(
                    "{topic} has partitions 0 to {}; --partition {partition} is not one of them",
                    partitions - 1
                )));
            }
            if end.is_some_and(|end| end <= *start) {
                return Err(Error::Refused(
                    "--end-offset must be greater than --start-offset (it is exclusive)".into(),
                ));
            }
            vec![(*partition, Some(*start), *end)]
        }
    };
    let mut ranges = Vec::with_capacity(wanted.len());
    for (partition, start, end) in wanted {
        let (low, high) = cluster.watermarks(topic, partition)?;
        let start = start.unwrap_or(low).clamp(low, high);
        let end = end.unwrap_or(high).clamp(start, high);
        ranges.push(PartitionRange {
            partition,
            start,
            end,
        });
    }
    Ok(ranges)
}

fn copy(
    cluster: &Cluster,
    request: &ReplayRequest,
    groups: &[String],
    ranges: &[PartitionRange],
    report: &mut ReplayReport,
) -> Result<(), Error> {
    let mut targets = Vec::with_capacity(groups.len());
    for group in groups {
        let topic = retry_topic(&request.topic, group);
        let partitions = cluster.partition_count(&topic)?.ok_or_else(|| {
            Error::Refused(format!(
                "retry topic {topic} of group {group} does not exist; declare it in \
                 deploy/topics.txt and run `orderflowctl topics apply`, or use --method rewind \
                 with the group stopped. Nothing was replayed."
            ))
        })?;
        targets.push((group.clone(), topic, partitions));
    }
    let mut copied: HashMap<String, i64> = HashMap::new();
    if !request.dry_run && report.records > 0 {
        let total = report.records as u64 * targets.len() as u64;
        let bar = progress_bar(request.progress, total);
        let mut sender = cluster.sender()?;
        let extra: Vec<(&str, String)> = if request.reprocess {
            vec![(REPROCESS, "true".to_string())]
        } else {
            Vec::new()
        };
        let started = Instant::now();
        let mut sent: u64 = 0;
        cluster.read(&request.topic, ranges, |message| {
            let origin = Origin {
                topic: request.topic.clone(),
                partition: message.partition(),
                offset: message.offset(),
            };
            for (group, topic, partitions) in &targets {
                sender.send(record::retry_copy(
                    message,
                    topic,
                    record::same_partition(message.partition(), *partitions),
                    &CopyHeaders {
                        origin: &origin,
                        action: &report.action,
                        extra: &extra,
                    },
                ))?;
                *copied.entry(group.clone()).or_default() += 1;
                sent += 1;
                bar.inc(1);
                if let Some(rate) = request.rate {
                    let due = Duration::from_secs_f64(sent as f64 / f64::from(rate));
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        std::thread::sleep(wait);
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        sender.flush()?;
        // The report that follows says what was written.
        bar.finish_and_clear();
    }
    report.copies = targets
        .into_iter()
        .map(|(group, retry_topic, _)| GroupCopy {
            copies: if request.dry_run {
                report.records
            } else {
                copied.get(&group).copied().unwrap_or(0)
            },
            group,
            retry_topic,
        })
        .collect();
    Ok(())
}

fn progress_bar(wanted: bool, total: u64) -> ProgressBar {
    if !wanted || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(progress_style());
    bar
}

/// Copies done of all, the rate and the time left.
fn progress_style() -> ProgressStyle {
    ProgressStyle::with_template(
        "replay [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta})",
    )
    .expect("the progress template is valid")
    .progress_chars("=> ")
}

fn rewind(
    cluster: &Cluster,
    request: &ReplayRequest,
    groups: &[String],
    ranges: &[PartitionRange],
    report: &mut ReplayReport,
) -> Result<(), Error> {
    let partitions = cluster.partitions_of(&request.topic)?;
    // Every group is checked before any is moved, so a refusal changes nothing.
    for group in groups {
        let info = cluster.group(group)?;
        if !info.members.is_empty() {
            return Err(Error::Refused(format!(
                "group {group} has {} active member(s) ({}; state {}), and Kafka only lets a \
                 stopped group's offsets move. Stop its consumers (e.g. scale the deployment to \
                 0) and run this again, or replay with --method copy, which works while the \
                 group runs. Nothing was changed.",
                info.members.len(),
                info.members.join(", "),
                info.state
            )));
        }
    }
    for group in groups {
        let committed = cluster.committed(group, &request.topic, partitions)?;
        let mut plan = Vec::new();
        let mut commits = Vec::new();
        for range in ranges {
            let current = committed[range.partition as usize];
            // Never move a group forward: offsets it has not reached yet would be skipped. With
            // nothing committed, the runtime starts from the earliest record anyway.
            let to = match current {
                Some(c) if c > range.start => Some(range.start),
                _ => None,
            };
            // What the group already read between the new offset and its committed one.
            let redelivered = match (current, to) {
                (Some(c), Some(to)) => (c.min(range.end) - to).max(0),
                _ => 0,
            };
            if let Some(to) = to {
                commits.push((range.partition, to));
            }
            plan.push(PartitionRewind {
                partition: range.partition,
                committed: current,
                to,
                redelivered,
            });
        }
        if !request.dry_run && !commits.is_empty() {
            cluster
                .commit(group, &request.topic, &commits)
                .map_err(|e| {
                    Error::Refused(format!(
                        "the broker refused to move group {group}'s offsets ({e}); if its \
                         consumers started again meanwhile, stop them and run this again"
                    ))
                })?;
        }
        report.rewinds.push(GroupRewind {
            group: group.clone(),
            partitions: plan,
        });
    }
    Ok(())
}

impl fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = match &self.window {
            Window::Time { from, to } => format!(
                "records from {from} to {}",
                to.map_or("the end".into(), |t| t.to_string())
            ),
            Window::Offsets {
                partition,
                start,
                end,
            } => format!(
                "partition {partition} offsets {start} to {}",
                end.map_or("the end".into(), |e| e.to_string())
            ),
        };
        let method = match self.method {
            Method::Copy => "copy",
            Method::Rewind => "rewind",
        };
        writeln!(
            f,
            "replay of {} ({window}) by {method}{}{}",
            self.topic,
            if self.reprocess { ", reprocessing" } else { "" },
            if self.dry_run {
                " — dry run, nothing changed"
            } else {
                ""
            }
        )?;
        writeln!(
            f,
            "  {:>9}  {:>12}  {:>12}  {:>8}",
            "partition", "start", "end", "count"
        )?;
        for p in self.partitions.iter().filter(|p| p.count > 0) {
            writeln!(
                f,
                "  {:>9}  {:>12}  {:>12}  {:>8}",
                p.partition, p.start, p.end, p.count
            )?;
        }
        writeln!(f, "  {} records in the window", self.records)?;
        for c in &self.copies {
            writeln!(
                f,
                "{} {} copies for group {} to {}",
                if self.dry_run { "would write" } else { "wrote" },
                c.copies,
                c.group,
                c.retry_topic
            )?;
        }
        for g in &self.rewinds {
            writeln!(f, "group {}:", g.group)?;
            for p in &g.partitions {
                let committed = p.committed.map_or("-".into(), |c| c.to_string());
                match (p.to, p.committed) {
                    (Some(to), _) => writeln!(
                        f,
                        "  partition {:>3}: committed {committed} → {to}{}, {} to read again",
                        p.partition,
                        if self.dry_run { " (would move)" } else { "" },
                        p.redelivered
                    )?,
                    (None, Some(_)) => writeln!(
                        f,
                        "  partition {:>3}: committed {committed}, at or before the window's \
                         start; left as is",
                        p.partition
                    )?,
                    (None, None) => writeln!(
                        f,
                        "  partition {:>3}: nothing committed, the group reads it from the \
                         earliest record; left as is",
                        p.partition
                    )?,
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, window: Window, reprocess: bool) -> ReplayRequest {
        ReplayRequest {
            topic: "t".into(),
            groups: Groups::Named(vec!["g".into()]),
            window,
            method,
            dry_run: true,
            rate: None,
            reprocess,
            progress: false,
        }
    }

    #[test]
    fn rewind_refuses_an_end_and_reprocessing() {
        let from = Utc::now();
        let bounded_time = Window::Time {
            from,
            to: Some(from + chrono::Duration::hours(1)),
        };
        let bounded_offsets = Window::Offsets {
            partition: 0,
            start: 1,
            end: Some(5),
        };
        let open = Window::Time { from, to: None };
        for window in [bounded_time.clone(), bounded_offsets.clone()] {
            let err = request(Method::Rewind, window.clone(), false)
                .validate()
                .unwrap_err();
            assert!(err.to_string().contains("--method copy"), "{err}");
            assert!(request(Method::Copy, window, true).validate().is_ok());
        }
        let err = request(Method::Rewind, open.clone(), true)
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("--reprocess"), "{err}");
        assert!(request(Method::Rewind, open, false).validate().is_ok());
    }

    #[test]
    fn the_progress_template_parses() {
        // Panics on a template indicatif cannot read, which would otherwise show only on a
        // terminal.
        progress_style();
    }

    #[test]
    fn groups_and_rate_must_be_given_sensibly() {
        let mut r = request(
            Method::Copy,
            Window::Time {
                from: Utc::now(),
                to: None,
            },
            false,
        );
        r.groups = Groups::Named(Vec::new());
        assert!(r.validate().unwrap_err().to_string().contains("--group"));
        r.groups = Groups::All;
        r.rate = Some(0);
        assert!(r.validate().unwrap_err().to_string().contains("--rate"));
    }
}
