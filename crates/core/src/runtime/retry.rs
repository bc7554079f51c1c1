//! Non-blocking retries. An event whose in-process retries ran out on a retryable failure is
//! parked on its group's retry topic (`<topic>.<group>.retry`) with a time before which it must
//! not run, so its source partition moves on; the group reads the retry topic alongside its
//! source topic and runs the event again when its time comes, for a few rounds of growing delay
//! before the dead letters. Operators use the same topic to redrive dead letters and to replay
//! events into one group (`orderflowctl`), which is why its headers are read with care.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::watch;
use tokio::time::Instant;

use super::offsets::{OffsetTracker, Partition};
use super::republish::Republisher;
use crate::headers::{
    OPERATOR_ACTION, ORIGIN_OFFSET, ORIGIN_PARTITION, ORIGIN_TOPIC, REPROCESS, RETRY_ATTEMPTS,
    RETRY_NOT_BEFORE, RETRY_REASON, RETRY_ROUND,
};

/// The longest a round waits, unless the first round's delay is longer already.
const MAX_ROUND_DELAY: Duration = Duration::from_secs(3600);
/// The longest a retry-topic message is waited for, whatever its not-before says.
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long an event parked for round `round` (1-based) waits: `first` doubled for each round
/// after the first, capped at an hour (or at `first` when that is longer).
pub(crate) fn round_delay(first: Duration, round: u32) -> Duration {
    let factor = 1u32
        .checked_shl(round.saturating_sub(1))
        .unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(MAX_ROUND_DELAY.max(first))
}

/// Where the group first read an event.
#[derive(Debug)]
pub(crate) struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// What the group did with an event before this delivery, as its message tells.
#[derive(Debug)]
pub(crate) struct History {
    pub origin: Origin,
    /// Attempts made before this delivery.
    pub prior_attempts: u32,
    /// Rounds the event has spent on the retry topic.
    pub round: u32,
    pub not_before: Option<DateTime<Utc>>,
    pub reprocess: bool,
    pub operator_action: Option<String>,
}

impl History {
    /// Reads the runtime's headers of a message of the group's retry topic. A message of the
    /// source topic has no history whatever its headers say: the runtime and `orderflowctl` write
    /// the retry topic, but anyone may produce to a source topic, and a stray header there must
    /// not make a group skip its retries or redo what it did.
    pub fn of(message: &OwnedMessage, retry_topic: &str) -> Self {
        let here = Origin {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
        };
        if message.topic() != retry_topic {
            return Self {
                origin: here,
                prior_attempts: 0,
                round: 0,
                not_before: None,
                reprocess: false,
                operator_action: None,
            };
        }
        let headers = crate::kafka::header_pairs(message);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let origin = match (
            get(ORIGIN_TOPIC),
            parsed(get(ORIGIN_PARTITION), ORIGIN_PARTITION),
            parsed(get(ORIGIN_OFFSET), ORIGIN_OFFSET),
        ) {
            (Some(topic), Some(partition), Some(offset)) => Origin {
                topic: topic.to_string(),
                partition,
                offset,
            },
            _ => here,
        };
        let not_before = get(RETRY_NOT_BEFORE).and_then(|value| {
            let time = DateTime::parse_from_rfc3339(value.trim()).ok();
            if time.is_none() {
                tracing::warn!(
                    header = RETRY_NOT_BEFORE,
                    value,
                    "malformed retry time ignored; running now"
                );
            }
            time.map(|t| t.with_timezone(&Utc))
        });
        Self {
            origin,
            prior_attempts: parsed(get(RETRY_ATTEMPTS), RETRY_ATTEMPTS).unwrap_or(0),
            round: parsed(get(RETRY_ROUND), RETRY_ROUND).unwrap_or(0),
            not_before,
            reprocess: get(REPROCESS) == Some("true"),
            operator_action: get(OPERATOR_ACTION).map(str::to_string),
        }
    }

    /// When the event may run, if that is still to come. A time further away than a year is
    /// taken as a year from now, which keeps the clock arithmetic in range.
    pub fn due(&self) -> Option<Instant> {
        let wait = (self.not_before? - Utc::now()).to_std().ok()?;
        (!wait.is_zero()).then(|| Instant::now() + wait.min(LONGEST_WAIT))
    }

    /// The headers that say where the event came from and what an operator asked for, for any
    /// copy of it the runtime makes.
    pub fn carried(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            (ORIGIN_TOPIC, self.origin.topic.clone()),
            (ORIGIN_PARTITION, self.origin.partition.to_string()),
            (ORIGIN_OFFSET, self.origin.offset.to_string()),
        ];
        // A reprocess that failed and is tried again must still be a reprocess, or its next
        // round would find the event done and skip it.
        if self.reprocess {
            headers.push((REPROCESS, "true".to_string()));
        }
        if let Some(action) = &self.operator_action {
            headers.push((OPERATOR_ACTION, action.clone()));
        }
        headers
    }
}

/// A numeric header's value; a malformed one counts as absent (and is logged), so a hand-made
/// redrive with a typo still runs rather than stalling its partition.
fn parsed<T: std::str::FromStr>(value: Option<&str>, name: &str) -> Option<T> {
    let value = value?;
    let number = value.trim().parse().ok();
    if number.is_none() {
        tracing::warn!(header = name, value, "malformed retry header ignored");
    }
    number
}

/// The group's retry topic and schedule.
pub(crate) struct Retries {
    pub republisher: Arc<Republisher>,
    pub topic: String,
    pub rounds: usize,
    pub first_delay: Duration,
}

impl Retries {
    /// Whether an event out of in-process attempts goes to the retry topic (rather than to the
    /// dead letters).
    pub fn parks(&self, history: &History) -> bool {
        usize::try_from(history.round).is_ok_and(|round| round < self.rounds)
    }

    /// Parks the event for its next round, after `attempts` failed attempts in this delivery.
    pub async fn park(
        &self,
        message: &OwnedMessage,
        history: &History,
        cause: &str,
        attempts: u32,
    ) {
        let round = history.round.saturating_add(1);
        let wait = chrono::Duration::from_std(round_delay(self.first_delay, round))
            .unwrap_or(chrono::Duration::MAX);
        let not_before = Utc::now()
            .checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut headers = history.carried();
        headers.extend([
            (
                RETRY_ATTEMPTS,
                history.prior_attempts.saturating_add(attempts).to_string(),
            ),
            (RETRY_ROUND, round.to_string()),
            (RETRY_NOT_BEFORE, not_before.clone()),
            (RETRY_REASON, cause.to_string()),
        ]);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (partition, offset) = self
            .republisher
            .publish(&self.topic, message, &headers)
            .await;
        tracing::warn!(
            cause,
            round,
            %not_before,
            retry_topic = %self.topic,
            retry_partition = partition,
            retry_offset = offset,
            "event parked on the retry topic"
        );
    }
}

/// Waits until `due` for a message of `partition` received under `generation`; returns whether
/// to run it. A shutdown ends the wait and leaves the message unfinished but no longer in
/// flight, so it is not committed and the group reads it again after the restart. A revocation
/// ends it too: the partition's new owner reads the message again.
pub(crate) async fn wait_until(
    due: Instant,
    mut stopping: watch::Receiver<bool>,
    tracker: Arc<OffsetTracker>,
    partition: Partition,
    generation: u64,
    offset: i64,
) -> bool {
    loop {
        let revoked = tracker.revocations.notified();
        tokio::pin!(revoked);
        // Registered before the check, so a revocation between the two still wakes us.
        revoked.as_mut().enable();
        if !tracker.is_current(&partition, generation) {
            return false;
        }
        tokio::select! {
            () = tokio::time::sleep_until(due) => return true,
            _ = stopping.wait_for(|stopping| *stopping) => {
                tracker.abandon(&partition, generation, offset);
                return false;
            }
            () = &mut revoked => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_waits_twice_as_long_as_the_one_before_up_to_an_hour() {
        let s = Duration::from_secs;
        assert_eq!(round_delay(s(30), 1), s(30));
        assert_eq!(round_delay(s(30), 2), s(60));
        assert_eq!(round_delay(s(30), 3), s(120));
        assert_eq!(round_delay(s(30), 7), s(1920));
        assert_eq!(round_delay(s(30), 8), s(3600), "capped at an hour");
        assert_eq!(round_delay(s(30), 1000), s(3600), "no overflow");
        assert_eq!(
            round_delay(s(7200), 2),
            s(7200),
            "a first delay over an hour is kept"
        );
        assert_eq!(round_delay(Duration::ZERO, 3), Duration::ZERO);
    }
}
