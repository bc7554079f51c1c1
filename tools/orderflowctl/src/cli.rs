//! The command line: clap definitions, and `run`, which executes one parsed command and prints
//! its report as text or, with `--json`, as JSON.

use std::fmt::Display;
use std::io::Write;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use orderflow_core::config::{self, Env, KafkaConfig, Source};
use orderflow_core::registry::SchemaRegistry;
use orderflow_core::topics::ORDERS_PLACED;
use serde::Serialize;

use crate::cluster::Cluster;
use crate::dlq::{self, DlqQuery, RedriveRequest, Selection};
use crate::error::Error;
use crate::lag::{self, LagQuery};
use crate::order::{self, Deployment, OrderQuery, Service};
use crate::record::Coordinates;
use crate::replay::{self, Groups, Method, ReplayRequest, Window};
use crate::topics;

/// Operate the orderflow pipeline: topics, consumer lag, dead letters, replays, and orders.
#[derive(Debug, Parser)]
#[command(
    name = "orderflowctl",
    version,
    after_help = "Kafka security (TLS, SASL) comes from the same ORDERFLOW_KAFKA_* variables the \
                  services read. See docs/operations.md for the runbook."
)]
pub struct Cli {
    /// Print the result as JSON on stdout (errors too), for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    /// Kafka bootstrap servers.
    #[arg(
        long,
        global = true,
        env = config::KAFKA_BROKERS,
        value_name = "HOST:PORT,..."
    )]
    pub brokers: Option<String>,

    /// PostgreSQL URL of the services' database (used by `order`).
    #[arg(
        long,
        global = true,
        env = config::DATABASE_URL,
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and update the declared Kafka topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Lag per consumer group and partition, with the age of the oldest unprocessed event.
    Lag(LagArgs),
    /// Browse, show and redrive a consumer group's dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Deliver a window of a topic again to chosen consumer groups, and to no other.
    Replay(ReplayArgs),
    /// Where an order is: published or not, and per consumer its state and effect.
    Order(OrderArgs),
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create missing topics, raise partition counts, and set retention.ms and cleanup.policy
    /// to what the topic list declares. A declared partition decrease is refused (Kafka cannot
    /// lower a partition count) and nothing is changed.
    Apply(TopicsApplyArgs),
}

#[derive(Debug, Args)]
pub struct TopicsApplyArgs {
    /// The topic list: `<name> <partitions> <retention_ms> [<cleanup_policy>]` per line.
    #[arg(long, default_value = "deploy/topics.txt", value_name = "PATH")]
    pub file: String,
    /// Print what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LagArgs {
    /// A consumer group to report on (repeatable). Default: every group with committed offsets
    /// on the topic.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The source topic; each group's retry topic `<topic>.<group>.retry` is reported too.
    #[arg(long, default_value = ORDERS_PLACED)]
    pub topic: String,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters per group, oldest first: partition:offset, order, event, reason,
    /// attempts, failure time.
    List(DlqListArgs),
    /// Show one dead letter in full: headers and the decoded event (hex when undecodable).
    Show(DlqShowArgs),
    /// Copy dead letters back to their group's retry topic, once the fault is fixed. A redriven
    /// event that fails again returns to the dead letters with its attempts added up.
    Redrive(DlqRedriveArgs),
}

#[derive(Debug, Args)]
pub struct DlqListArgs {
    /// A consumer group (repeatable). Default: every group with a dead-letter topic.
    #[arg(long = "group", value_name = "GROUP")]
    pub groups: Vec<String>,
    /// The source topic whose dead letters to list (`<topic>.<group>.dlq`).
    #[arg(long, default_value = ORDERS_PLACED)]
    pub topic: String,
    /// Dead letters shown per group at most.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
}

#[derive(Debug, Args)]
pub struct DlqShowArgs {
    /// The consumer group whose dead letter to show.
    #[arg(long)]
    pub group: String,
    /// The source topic.
    #[arg(long, default_value = ORDERS_PLACED)]
    pub topic: String,
    /// Where the dead letter is on the dead-letter topic, as `dlq list` prints it.
    #[arg(value_name = "PARTITION:OFFSET")]
    pub at: Coordinates,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["at", "reason_contains", "all"])))]
pub struct DlqRedriveArgs {
    /// The consumer group whose dead letters to redrive.
    #[arg(long)]
    pub group: String,
    /// The source topic.
    #[arg(long, default_value = ORDERS_PLACED)]
    pub topic: String,
    /// A dead letter to redrive (repeatable), as `dlq list` prints it.
    #[arg(long, value_name = "PARTITION:OFFSET")]
    pub at: Vec<Coordinates>,
    /// Redrive the dead letters whose reason contains this text.
    #[arg(long, value_name = "TEXT")]
    pub reason_contains: Option<String>,
    /// Redrive every dead letter of the group.
    #[arg(long)]
    pub all: bool,
    /// List what would be redriven without writing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("groups").required(true).args(["group", "all_groups"])),
    group(ArgGroup::new("window").required(true).args(["from", "partition"])),
    after_help = "Method copy (the default) writes the records to each chosen group's retry \
                  topic <topic>.<group>.retry, which only that group reads: it works while the \
                  group runs, and the group's idempotency skips events it already processed \
                  unless --reprocess is given. Method rewind moves the group's committed offsets \
                  back to the window's start; the group must be stopped, and it reads on to the \
                  end of each partition."
)]
pub struct ReplayArgs {
    /// The topic to replay.
    #[arg(long, default_value = ORDERS_PLACED)]
    pub topic: String,
    /// A consumer group to replay into (repeatable).
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// Replay into every group with committed offsets on the topic.
    #[arg(long)]
    pub all_groups: bool,
    /// Start of a time window (RFC 3339, e.g. 2026-11-22T03:00:00Z), resolved per partition
    /// to the first record at or after it.
    #[arg(long, value_parser = parse_time, conflicts_with = "partition")]
    pub from: Option<DateTime<Utc>>,
    /// End of the time window (exclusive; default: the end of each partition).
    #[arg(long, value_parser = parse_time, requires = "from")]
    pub to: Option<DateTime<Utc>>,
    /// Replay one partition by offsets instead of a time window.
    #[arg(long, requires = "start_offset")]
    pub partition: Option<i32>,
    /// First offset to replay (with --partition).
    #[arg(long, requires = "partition")]
    pub start_offset: Option<i64>,
    /// First offset not to replay (exclusive; default: the end of the partition).
    #[arg(long, requires = "partition")]
    pub end_offset: Option<i64>,
    /// How to replay.
    #[arg(long, value_enum, default_value_t = Method::Copy)]
    pub method: Method,
    /// Print per partition the offset range and count that would be replayed, and change
    /// nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write at most this many copies per second.
    #[arg(long, value_name = "MSGS_PER_SEC")]
    pub rate: Option<u32>,
    /// Make the groups process the events again even if they already did (redo their
    /// effects). Copy only.
    #[arg(long)]
    pub reprocess: bool,
}

#[derive(Debug, Args)]
pub struct OrderArgs {
    /// The order id (the key of its events).
    pub order_id: String,
    /// The topic the order is published to.
    #[arg(long, default_value = ORDERS_PLACED)]
    pub topic: String,
    /// Checkout's database schema.
    #[arg(long, default_value = "checkout", value_name = "SCHEMA")]
    pub checkout_schema: String,
    /// A service's consumer group when it is not the service's name (repeatable), e.g.
    /// `accounting=accounting-eu`. Its schema follows the group ('-' as '_') unless --schema
    /// says otherwise.
    #[arg(long = "group", value_name = "SERVICE=GROUP", value_parser = parse_assignment)]
    pub groups: Vec<(Service, String)>,
    /// A service's database schema (repeatable), e.g. `accounting=acct`.
    #[arg(long = "schema", value_name = "SERVICE=SCHEMA", value_parser = parse_assignment)]
    pub schemas: Vec<(Service, String)>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}; expected RFC 3339, e.g. 2026-11-22T03:00:00Z"))
}

fn parse_assignment(s: &str) -> Result<(Service, String), String> {
    let (service, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SERVICE=VALUE"))?;
    let service = Service::from_str(service, true).map_err(|_| {
        let names: Vec<&str> = Service::ALL.iter().map(|s| s.name()).collect();
        format!("unknown service {service:?}; one of {}", names.join(", "))
    })?;
    if value.is_empty() {
        return Err(format!("{s:?} gives an empty value"));
    }
    Ok((service, value.to_string()))
}

/// The environment, with `--brokers` in place of `ORDERFLOW_KAFKA_BROKERS` when given.
struct CliSource<'a> {
    brokers: Option<&'a str>,
}

impl Source for CliSource<'_> {
    fn get(&self, name: &str) -> Option<String> {
        match self.brokers {
            Some(brokers) if name == config::KAFKA_BROKERS => Some(brokers.to_string()),
            _ => Env.get(name),
        }
    }
}

fn cluster(brokers: Option<&str>) -> Result<Cluster, Error> {
    let source = CliSource { brokers };
    let kafka = KafkaConfig::from_source(&source).map_err(Error::KafkaConfig)?;
    let registry = SchemaRegistry::from_source(&source).map_err(Error::Config)?;
    Ok(Cluster::new(kafka)?.with_registry(registry))
}

fn emit<T: Serialize + Display>(out: &mut dyn Write, json: bool, report: &T) -> Result<(), Error> {
    if json {
        let text = serde_json::to_string_pretty(report)
            .map_err(|e| Error::Output(std::io::Error::other(e)))?;
        writeln!(out, "{text}")?;
    } else {
        write!(out, "{report}")?;
    }
    Ok(())
}

/// Runs one command and writes its report to `out`.
pub async fn run(cli: Cli, out: &mut dyn Write) -> Result<(), Error> {
    let json = cli.json;
    let brokers = cli.brokers.as_deref();
    match cli.command {
        Command::Topics(TopicsCommand::Apply(args)) => {
            let declared = topics::load(&args.file)?;
            let report = topics::apply(&cluster(brokers)?, &declared, args.dry_run).await?;
            emit(out, json, &report)
        }
        Command::Lag(args) => {
            let query = LagQuery {
                topic: args.topic,
                groups: args.groups,
            };
            emit(out, json, &lag::lag(&cluster(brokers)?, &query).await?)
        }
        Command::Dlq(DlqCommand::List(args)) => {
            let query = DlqQuery {
                topic: args.topic,
                groups: args.groups,
                limit: args.limit,
            };
            emit(out, json, &dlq::list(&cluster(brokers)?, &query).await?)
        }
        Command::Dlq(DlqCommand::Show(args)) => {
            let report = dlq::show(&cluster(brokers)?, &args.topic, &args.group, args.at).await?;
            emit(out, json, &report)
        }
        Command::Dlq(DlqCommand::Redrive(args)) => {
            let selection = if args.all {
                Selection::All
            } else if let Some(text) = args.reason_contains {
                Selection::ReasonContains(text)
            } else {
                Selection::At(args.at)
            };
            let request = RedriveRequest {
                topic: args.topic,
                group: args.group,
                selection,
                dry_run: args.dry_run,
            };
            emit(
                out,
                json,
                &dlq::redrive(&cluster(brokers)?, &request).await?,
            )
        }
        Command::Replay(args) => {
            let window = match (args.from, args.partition, args.start_offset) {
                (Some(from), _, _) => Window::Time { from, to: args.to },
                (None, Some(partition), Some(start)) => Window::Offsets {
                    partition,
                    start,
                    end: args.end_offset,
                },
                // clap's argument groups require one of the two windows.
                _ => unreachable!("clap requires --from or --partition with --start-offset"),
            };
            let request = ReplayRequest {
                topic: args.topic,
                groups: if args.all_groups {
                    Groups::All
                } else {
                    Groups::Named(args.group)
                },
                window,
                method: args.method,
                dry_run: args.dry_run,
                rate: args.rate,
                reprocess: args.reprocess,
                progress: !json,
            };
            emit(
                out,
                json,
                &replay::replay(&cluster(brokers)?, &request).await?,
            )
        }
        Command::Order(args) => {
            let url = cli.database_url.ok_or(Error::NoDatabase)?;
            let mut query = OrderQuery::new(args.order_id);
            query.topic = args.topic;
            query.checkout_schema = args.checkout_schema;
            for (service, group) in args.groups {
                for d in query.consumers.iter_mut().filter(|d| d.service == service) {
                    *d = Deployment::with_group(service, &group);
                }
            }
            for (service, schema) in args.schemas {
                for d in query.consumers.iter_mut().filter(|d| d.service == service) {
                    d.schema = schema.clone();
                }
            }
            let report = order::order(&cluster(brokers)?, &url, &query).await?;
            emit(out, json, &report)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn replay_needs_a_window_and_groups() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["orderflowctl", "replay"]
                    .iter()
                    .chain(args)
                    .copied()
                    .collect::<Vec<_>>(),
            )
        };
        assert!(parse(&["--group", "g"]).is_err());
        assert!(parse(&["--from", "2026-01-01T00:00:00Z"]).is_err());
        assert!(parse(&["--group", "g", "--from", "yesterday"]).is_err());
        assert!(parse(&["--group", "g", "--partition", "1"]).is_err());
        assert!(parse(&[
            "--group",
            "g",
            "--from",
            "2026-01-01T00:00:00Z",
            "--partition",
            "1",
            "--start-offset",
            "0"
        ])
        .is_err());
        assert!(parse(&[
            "--group",
            "g",
            "--all-groups",
            "--partition",
            "1",
            "--start-offset",
            "0"
        ])
        .is_err());
        let cli = parse(&[
            "--group",
            "g",
            "--from",
            "2026-01-01T00:00:00+01:00",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        match cli.command {
            Command::Replay(args) => {
                assert_eq!(args.from.unwrap().to_rfc3339(), "2025-12-31T23:00:00+00:00");
                assert_eq!(args.method, Method::Copy);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn redrive_needs_a_selection() {
        let base = ["orderflowctl", "dlq", "redrive", "--group", "g"];
        assert!(Cli::try_parse_from(base).is_err());
        assert!(Cli::try_parse_from(base.iter().chain(&["--at", "1:2", "--all"])).is_err());
        let cli = Cli::try_parse_from(base.iter().chain(&["--at", "1:2", "--at", "0:7"])).unwrap();
        match cli.command {
            Command::Dlq(DlqCommand::Redrive(args)) => assert_eq!(args.at.len(), 2),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn order_overrides_name_a_service() {
        assert_eq!(
            parse_assignment("accounting=acct-2").unwrap(),
            (Service::Accounting, "acct-2".to_string())
        );
        assert!(parse_assignment("ledger=x")
            .unwrap_err()
            .contains("supplier-dispatch"));
        assert!(parse_assignment("accounting").is_err());
        assert!(parse_assignment("accounting=").is_err());
    }
}
