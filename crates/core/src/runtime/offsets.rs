//! Which offsets may be committed. Messages of a partition finish out of order (different keys run
//! concurrently), so the committable position is the lowest offset still in flight, or one past
//! the highest offset seen when nothing is. Committing it never skips unfinished work, nor work
//! given up at shutdown.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

pub(crate) type Partition = (String, i32);

struct PartitionState {
    /// Identifies this ownership of the partition: work started under an earlier one is stale.
    generation: u64,
    in_flight: BTreeSet<i64>,
    running: usize,
    next: i64,
    committed: i64,
    /// The lowest offset given up unfinished (`abandon`): the position never passes it.
    abandoned: Option<i64>,
}

impl PartitionState {
    fn position(&self) -> i64 {
        let position = self.in_flight.first().copied().unwrap_or(self.next);
        self.abandoned.map_or(position, |a| position.min(a))
    }
}

#[derive(Default)]
pub(crate) struct OffsetTracker {
    partitions: Mutex<HashMap<Partition, PartitionState>>,
    generations: AtomicU64,
    /// Woken on every revocation, for work waiting outside `running` (a retry waiting for its
    /// time) to notice that its partition is gone.
    pub revocations: Notify,
}

impl OffsetTracker {
    /// Records a received offset; returns the ownership generation the work runs under.
    pub fn received(&self, partition: &Partition, offset: i64) -> u64 {
        let mut map = self.partitions.lock().expect("offset tracker lock");
        let state = map
            .entry(partition.clone())
            .or_insert_with(|| PartitionState {
                generation: self.generations.fetch_add(1, Ordering::Relaxed),
                in_flight: BTreeSet::new(),
                running: 0,
                next: offset,
                committed: -1,
                abandoned: None,
            });
        state.in_flight.insert(offset);
        state.next = state.next.max(offset + 1);
        state.generation
    }

    /// Whether the partition is still owned as it was when `generation` was handed out.
    pub fn is_current(&self, partition: &Partition, generation: u64) -> bool {
        let map = self.partitions.lock().expect("offset tracker lock");
        map.get(partition)
            .is_some_and(|state| state.generation == generation)
    }

    /// Gives up received work that will not run (a shutdown cut its wait short): it no longer
    /// counts as in flight, and the position stays at or before it, so it is redelivered.
    pub fn abandon(&self, partition: &Partition, generation: u64, offset: i64) {
        let mut map = self.partitions.lock().expect("offset tracker lock");
        if let Some(state) = map.get_mut(partition) {
            if state.generation == generation && state.in_flight.remove(&offset) {
                state.abandoned = Some(state.abandoned.map_or(offset, |a| a.min(offset)));
            }
        }
    }

    /// Marks work as started; false when the partition was revoked since it was received, and
    /// the work must be dropped (its new owner will receive it).
    pub fn start(&self, partition: &Partition, generation: u64) -> bool {
        let mut map = self.partitions.lock().expect("offset tracker lock");
        match map.get_mut(partition) {
            Some(state) if state.generation == generation => {
                state.running += 1;
                true
            }
            _ => false,
        }
    }

    /// Marks started work as done, successfully or dead-lettered.
    pub fn finish(&self, partition: &Partition, generation: u64, offset: i64) {
        let mut map = self.partitions.lock().expect("offset tracker lock");
        if let Some(state) = map.get_mut(partition) {
            if state.generation == generation {
                state.running -= 1;
                state.in_flight.remove(&offset);
            }
        }
    }

    /// Positions (next offset to consume) that moved since the last commit.
    pub fn uncommitted(&self) -> Vec<(Partition, i64)> {
        let map = self.partitions.lock().expect("offset tracker lock");
        map.iter()
            .filter(|(_, s)| s.position() > s.committed)
            .map(|(p, s)| (p.clone(), s.position()))
            .collect()
    }

    /// Records positions as committed.
    pub fn committed(&self, positions: &[(Partition, i64)]) {
        let mut map = self.partitions.lock().expect("offset tracker lock");
        for (p, position) in positions {
            if let Some(state) = map.get_mut(p) {
                state.committed = state.committed.max(*position);
            }
        }
    }

    /// Forgets that positions of `partitions` were committed, so the next commit sends them again.
    pub fn commit_failed(&self, partitions: &[Partition]) {
        let mut map = self.partitions.lock().expect("offset tracker lock");
        for p in partitions {
            if let Some(state) = map.get_mut(p) {
                state.committed = -1;
            }
        }
    }

    /// Gives partitions up: waits up to `timeout` for their running work, then forgets them and
    /// returns the positions to commit. Work not yet started is dropped; work still running after
    /// the timeout may be redone by the next owner, which idempotent handlers absorb.
    pub fn revoke(&self, partitions: &[Partition], timeout: Duration) -> Vec<(Partition, i64)> {
        let deadline = Instant::now() + timeout;
        loop {
            let running: usize = {
                let map = self.partitions.lock().expect("offset tracker lock");
                partitions
                    .iter()
                    .filter_map(|p| map.get(p))
                    .map(|s| s.running)
                    .sum()
            };
            if running == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let positions = {
            let mut map = self.partitions.lock().expect("offset tracker lock");
            partitions
                .iter()
                .filter_map(|p| map.remove(p).map(|s| (p.clone(), s.position())))
                .collect()
        };
        self.revocations.notify_waiters();
        positions
    }

    /// Number of received messages not finished yet, over all partitions.
    pub fn in_flight(&self) -> usize {
        let map = self.partitions.lock().expect("offset tracker lock");
        map.values().map(|s| s.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: i32) -> Partition {
        ("t".to_string(), n)
    }

    #[test]
    fn position_waits_for_the_lowest_unfinished_offset() {
        let t = OffsetTracker::default();
        let g = t.received(&p(0), 10);
        t.received(&p(0), 11);
        t.received(&p(0), 12);
        for o in [10, 11, 12] {
            assert!(t.start(&p(0), g), "offset {o} starts");
        }
        t.finish(&p(0), g, 12);
        t.finish(&p(0), g, 11);
        assert_eq!(t.uncommitted(), vec![(p(0), 10)]);
        t.finish(&p(0), g, 10);
        assert_eq!(t.uncommitted(), vec![(p(0), 13)]);
        t.committed(&[(p(0), 13)]);
        assert!(t.uncommitted().is_empty());
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_failed_commit_is_sent_again() {
        let t = OffsetTracker::default();
        let g = t.received(&p(3), 7);
        assert!(t.start(&p(3), g));
        t.finish(&p(3), g, 7);
        t.committed(&[(p(3), 8)]);
        assert!(t.uncommitted().is_empty());
        t.commit_failed(&[p(3)]);
        assert_eq!(t.uncommitted(), vec![(p(3), 8)]);
    }

    #[test]
    fn revoked_work_is_stale() {
        let t = OffsetTracker::default();
        let g = t.received(&p(1), 5);
        t.received(&p(1), 6);
        assert!(t.start(&p(1), g));
        t.finish(&p(1), g, 5);
        let positions = t.revoke(&[p(1)], Duration::ZERO);
        assert_eq!(positions, vec![(p(1), 6)], "offset 6 was never processed");
        assert!(
            !t.start(&p(1), g),
            "work received before the revocation is dropped"
        );
        let g2 = t.received(&p(1), 6);
        assert_ne!(g, g2);
        assert!(t.start(&p(1), g2));
    }

    #[test]
    fn abandoned_work_is_no_longer_in_flight_but_is_never_committed_past() {
        let t = OffsetTracker::default();
        let g = t.received(&p(2), 20);
        t.received(&p(2), 21);
        t.received(&p(2), 22);
        assert!(t.is_current(&p(2), g));
        t.abandon(&p(2), g, 21);
        assert!(t.start(&p(2), g));
        t.finish(&p(2), g, 20);
        assert!(t.start(&p(2), g));
        t.finish(&p(2), g, 22);
        assert_eq!(t.in_flight(), 0, "a shutdown does not wait for it");
        assert_eq!(t.uncommitted(), vec![(p(2), 21)], "it is redelivered");
        t.revoke(&[p(2)], Duration::ZERO);
        assert!(!t.is_current(&p(2), g));
    }
}
