//! `topics apply`: makes the cluster match the declared topic list (`deploy/topics.txt`):
//! creates missing topics, raises partition counts, and sets `retention.ms` and `cleanup.policy`
//! where they differ. Kafka cannot lower a partition count, so a declared decrease refuses the
//! whole apply before anything changes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewPartitions, NewTopic,
    ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use serde::Serialize;

use crate::cluster::{blocking, Cluster};
use crate::error::{Context, Error};

const RETENTION: &str = "retention.ms";
const CLEANUP: &str = "cleanup.policy";

/// One declared topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicDecl {
    pub name: String,
    pub partitions: usize,
    /// `-1` keeps records forever.
    pub retention_ms: i64,
    /// `delete`, `compact` or `compact,delete`.
    pub cleanup_policy: String,
}

/// Parses the topic list: `<name> <partitions> <retention_ms> [<cleanup_policy>]` per line,
/// blank lines and `#` comments ignored. `path` only names the file in errors.
pub fn parse(path: &str, text: &str) -> Result<Vec<TopicDecl>, Error> {
    let mut topics: Vec<TopicDecl> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fail = |reason: String| Error::TopicsFile {
            path: path.to_string(),
            line: i + 1,
            reason,
        };
        let line = line.split('#').next().unwrap_or_default();
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if !(3..=4).contains(&fields.len()) {
            return Err(fail(
                "expected '<name> <partitions> <retention_ms> [<cleanup_policy>]'".into(),
            ));
        }
        let name = fields[0];
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || name.len() > 249
        {
            return Err(fail(format!(
                "{name:?} is not a valid topic name (letters, digits, '.', '_', '-')"
            )));
        }
        let partitions = fields[1]
            .parse::<usize>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| {
                fail(format!(
                    "partitions {:?} is not a positive number",
                    fields[1]
                ))
            })?;
        let retention_ms = fields[2]
            .parse::<i64>()
            .ok()
            .filter(|r| *r >= -1)
            .ok_or_else(|| {
                fail(format!(
                    "retention_ms {:?} is not a number of milliseconds (or -1)",
                    fields[2]
                ))
            })?;
        let cleanup_policy = match fields.get(3) {
            None => "delete".to_string(),
            Some(policy) => normalise_policy(policy).ok_or_else(|| {
                fail(format!(
                    "cleanup_policy {policy:?} is not delete, compact or compact,delete"
                ))
            })?,
        };
        if topics.iter().any(|t| t.name == name) {
            return Err(fail(format!("topic {name} is declared twice")));
        }
        topics.push(TopicDecl {
            name: name.to_string(),
            partitions,
            retention_ms,
            cleanup_policy,
        });
    }
    Ok(topics)
}

/// Reads and parses the topic list at `path`.
pub fn load(path: &str) -> Result<Vec<TopicDecl>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    parse(path, &text)
}

/// A cleanup policy in the canonical spelling, or `None` when it is not one Kafka knows.
fn normalise_policy(policy: &str) -> Option<String> {
    let parts: BTreeSet<&str> = policy.split(',').map(str::trim).collect();
    let known = parts.iter().all(|p| *p == "delete" || *p == "compact");
    (known && !parts.is_empty()).then(|| parts.into_iter().collect::<Vec<_>>().join(","))
}

/// What apply did (or, with `--dry-run`, would do) to one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum TopicChange {
    Created {
        topic: String,
        partitions: usize,
        retention_ms: i64,
        cleanup_policy: String,
    },
    Updated {
        topic: String,
        /// `(from, to)` when the partition count was raised.
        partitions: Option<(usize, usize)>,
        configs: Vec<ConfigChange>,
    },
    Unchanged {
        topic: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigChange {
    pub name: String,
    /// The value in force before (`None`: the broker reported none).
    pub from: Option<String>,
    pub to: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub dry_run: bool,
    pub topics: Vec<TopicChange>,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .topics
            .iter()
            .map(|t| match t {
                TopicChange::Created { topic, .. }
                | TopicChange::Updated { topic, .. }
                | TopicChange::Unchanged { topic } => topic.len(),
            })
            .max()
            .unwrap_or(0);
        let verb = |done: &'static str, planned: &'static str| {
            if self.dry_run {
                planned
            } else {
                done
            }
        };
        for change in &self.topics {
            match change {
                TopicChange::Created {
                    topic,
                    partitions,
                    retention_ms,
                    cleanup_policy,
                } => writeln!(
                    f,
                    "{topic:width$}  {} ({partitions} partitions, retention.ms={retention_ms}, \
                     cleanup.policy={cleanup_policy})",
                    verb("created", "would create")
                )?,
                TopicChange::Updated {
                    topic,
                    partitions,
                    configs,
                } => {
                    let mut parts = Vec::new();
                    if let Some((from, to)) = partitions {
                        parts.push(format!("partitions {from} → {to}"));
                    }
                    for c in configs {
                        parts.push(format!(
                            "{} {} → {}",
                            c.name,
                            c.from.as_deref().unwrap_or("(unknown)"),
                            c.to
                        ));
                    }
                    writeln!(
                        f,
                        "{topic:width$}  {} {}",
                        verb("changed:", "would change:"),
                        parts.join(", ")
                    )?
                }
                TopicChange::Unchanged { topic } => writeln!(f, "{topic:width$}  unchanged")?,
            }
        }
        if self.dry_run {
            writeln!(f, "(dry run: nothing was changed)")?;
        }
        Ok(())
    }
}

/// Brings the cluster in line with `declared`. With `dry_run`, only reports what it would do.
pub async fn apply(
    cluster: &Cluster,
    declared: &[TopicDecl],
    dry_run: bool,
) -> Result<ApplyReport, Error> {
    let existing = blocking({
        let cluster = cluster.clone();
        move || cluster.topics()
    })
    .await?;
    let admin: AdminClient<DefaultClientContext> =
        orderflow_core::kafka::client_config(cluster.kafka())
            .create()
            .context("creating an admin client")?;
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(30)))
        .operation_timeout(Some(Duration::from_secs(30)));

    let present: Vec<&TopicDecl> = declared
        .iter()
        .filter(|t| existing.contains_key(&t.name))
        .collect();
    let configs = describe(&admin, &opts, &present).await?;

    let decreases: Vec<String> = present
        .iter()
        .filter(|t| existing[&t.name] > t.partitions)
        .map(|t| {
            format!(
                "{} has {} partitions, the file declares {}",
                t.name, existing[&t.name], t.partitions
            )
        })
        .collect();
    if !decreases.is_empty() {
        return Err(Error::Refused(format!(
            "Kafka cannot lower a topic's partition count: {}. Nothing was changed. Declare the \
             current count in the file, or create a new topic with fewer partitions and move \
             its producers and consumers to it.",
            decreases.join("; ")
        )));
    }

    let mut changes = Vec::new();
    for topic in declared {
        let Some(&have) = existing.get(&topic.name) else {
            changes.push(TopicChange::Created {
                topic: topic.name.clone(),
                partitions: topic.partitions,
                retention_ms: topic.retention_ms,
                cleanup_policy: topic.cleanup_policy.clone(),
            });
            continue;
        };
        let current = &configs[&topic.name].effective;
        let mut config_changes = Vec::new();
        let retention = current.get(RETENTION).cloned();
        if retention.as_deref().and_then(|r| r.parse::<i64>().ok()) != Some(topic.retention_ms) {
            config_changes.push(ConfigChange {
                name: RETENTION.into(),
                from: retention,
                to: topic.retention_ms.to_string(),
            });
        }
        let cleanup = current.get(CLEANUP).cloned();
        if cleanup.as_deref().and_then(normalise_policy).as_deref()
            != Some(topic.cleanup_policy.as_str())
        {
            config_changes.push(ConfigChange {
                name: CLEANUP.into(),
                from: cleanup,
                to: topic.cleanup_policy.clone(),
            });
        }
        let partitions = (have < topic.partitions).then_some((have, topic.partitions));
        if partitions.is_none() && config_changes.is_empty() {
            changes.push(TopicChange::Unchanged {
                topic: topic.name.clone(),
            });
        } else {
            changes.push(TopicChange::Updated {
                topic: topic.name.clone(),
                partitions,
                configs: config_changes,
            });
        }
    }

    if !dry_run {
        execute(&admin, &opts, &changes, &configs).await?;
    }
    Ok(ApplyReport {
        dry_run,
        topics: changes,
    })
}

/// A topic's configuration: the values in force, and those set on the topic itself.
#[derive(Debug, Default)]
struct TopicConfig {
    effective: HashMap<String, String>,
    /// Source: dynamic topic config. A (non-incremental) alter must repeat these to keep them.
    own: HashMap<String, String>,
}

async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    topics: &[&TopicDecl],
) -> Result<HashMap<String, TopicConfig>, Error> {
    if topics.is_empty() {
        return Ok(HashMap::new());
    }
    let specifiers: Vec<ResourceSpecifier<'_>> = topics
        .iter()
        .map(|t| ResourceSpecifier::Topic(&t.name))
        .collect();
    let results = admin
        .describe_configs(&specifiers, opts)
        .await
        .context("describing the topics' configuration")?;
    let mut out = HashMap::new();
    for (topic, result) in topics.iter().zip(results) {
        let resource = result.map_err(|code| Error::Kafka {
            context: format!("describing the configuration of {}", topic.name),
            source: KafkaError::AdminOp(code),
        })?;
        let mut config = TopicConfig::default();
        for entry in resource.entries.into_iter().filter(|e| !e.is_sensitive) {
            let Some(value) = entry.value else { continue };
            if entry.source == ConfigSource::DynamicTopic {
                config.own.insert(entry.name.clone(), value.clone());
            }
            config.effective.insert(entry.name, value);
        }
        out.insert(topic.name.clone(), config);
    }
    Ok(out)
}

async fn execute(
    admin: &AdminClient<DefaultClientContext>,
    opts: &AdminOptions,
    changes: &[TopicChange],
    configs: &HashMap<String, TopicConfig>,
) -> Result<(), Error> {
    let fail = |what: String, code| Error::Kafka {
        context: what,
        source: KafkaError::AdminOp(code),
    };

    let created: Vec<(&str, usize, String, &str)> = changes
        .iter()
        .filter_map(|c| match c {
            TopicChange::Created {
                topic,
                partitions,
                retention_ms,
                cleanup_policy,
            } => Some((
                topic.as_str(),
                *partitions,
                retention_ms.to_string(),
                cleanup_policy.as_str(),
            )),
            _ => None,
        })
        .collect();
    let new_topics: Vec<NewTopic<'_>> = created
        .iter()
        .map(|(topic, partitions, retention, cleanup)| {
            // -1: the brokers' default.replication.factor, whatever the cluster's size.
            NewTopic::new(topic, *partitions as i32, TopicReplication::Fixed(-1))
                .set(RETENTION, retention)
                .set(CLEANUP, cleanup)
        })
        .collect();
    if !new_topics.is_empty() {
        for result in admin
            .create_topics(&new_topics, opts)
            .await
            .context("creating topics")?
        {
            result.map_err(|(topic, code)| fail(format!("creating topic {topic}"), code))?;
        }
    }

    let raised: Vec<NewPartitions<'_>> = changes
        .iter()
        .filter_map(|c| match c {
            TopicChange::Updated {
                topic,
                partitions: Some((_, to)),
                ..
            } => Some(NewPartitions::new(topic, *to)),
            _ => None,
        })
        .collect();
    if !raised.is_empty() {
        for result in admin
            .create_partitions(&raised, opts)
            .await
            .context("adding partitions")?
        {
            result.map_err(|(topic, code)| {
                fail(format!("adding partitions to topic {topic}"), code)
            })?;
        }
    }

    // AlterConfigs replaces a topic's whole set of configs, so each alter repeats the ones
    // already set on the topic and changes only the declared ones.
    let mut wanted: Vec<(String, HashMap<String, String>)> = Vec::new();
    for change in changes {
        if let TopicChange::Updated {
            topic, configs: c, ..
        } = change
        {
            if c.is_empty() {
                continue;
            }
            let mut set = configs
                .get(topic)
                .map(|c| c.own.clone())
                .unwrap_or_default();
            for ConfigChange { name, to, .. } in c {
                set.insert(name.clone(), to.clone());
            }
            wanted.push((topic.clone(), set));
        }
    }
    if !wanted.is_empty() {
        let alters: Vec<AlterConfig<'_>> = wanted
            .iter()
            .map(|(topic, set)| {
                set.iter().fold(
                    AlterConfig::new(ResourceSpecifier::Topic(topic)),
                    |alter, (k, v)| alter.set(k, v),
                )
            })
            .collect();
        for result in admin
            .alter_configs(&alters, opts)
            .await
            .context("changing topic configuration")?
        {
            result.map_err(|(resource, code)| {
                fail(format!("changing the configuration of {resource:?}"), code)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fourth_column_is_optional_and_canonical() {
        let topics = parse(
            "t.txt",
            "# comment\n\
             a.b   12  604800000\n\
             \n\
             c-d   1   -1   compact   # trailing comment\n\
             e_f   3   1000 delete,compact\n",
        )
        .unwrap();
        assert_eq!(topics.len(), 3);
        assert_eq!(
            topics[0],
            TopicDecl {
                name: "a.b".into(),
                partitions: 12,
                retention_ms: 604_800_000,
                cleanup_policy: "delete".into()
            }
        );
        assert_eq!(topics[1].cleanup_policy, "compact");
        assert_eq!(topics[1].retention_ms, -1);
        assert_eq!(topics[2].cleanup_policy, "compact,delete");
    }

    #[test]
    fn malformed_lines_name_the_line() {
        for (text, needle) in [
            ("a 0 1000", "partitions"),
            ("a x 1000", "partitions"),
            ("a 1 soon", "retention_ms"),
            ("a 1 1000 forever", "cleanup_policy"),
            ("a 1", "expected"),
            ("a 1 1 delete extra", "expected"),
            ("a/b 1 1", "topic name"),
            ("a 1 1\na 2 2", "declared twice"),
        ] {
            let err = parse("t.txt", text).unwrap_err().to_string();
            assert!(err.starts_with("t.txt:"), "{err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_deployed_list_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/topics.txt");
        let topics = load(path).unwrap();
        assert!(topics.iter().any(|t| t.name == "orders.placed"));
    }
}
