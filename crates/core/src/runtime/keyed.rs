//! Per-key scheduling: work for one key runs in arrival order, one at a time; work for different
//! keys runs concurrently, at most `concurrency` at once. A slow order delays only later events of
//! the same order, not its whole partition. Work may first wait for its time (a retry's
//! not-before) without taking one of the `concurrency` slots, holding up its own key only.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

pub(crate) type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Work for one key.
pub(crate) struct Job {
    /// Awaited first, outside the concurrency bound; `false` drops `work` unrun.
    pub ready: Option<Task<bool>>,
    pub work: Task<()>,
}

pub(crate) struct KeyedScheduler {
    /// Keys with work running; the queue holds what waits behind it.
    queues: Mutex<HashMap<Vec<u8>, VecDeque<Job>>>,
    concurrency: Semaphore,
}

impl KeyedScheduler {
    pub fn new(concurrency: usize) -> Arc<Self> {
        Arc::new(Self {
            queues: Mutex::new(HashMap::new()),
            concurrency: Semaphore::new(concurrency.max(1)),
        })
    }

    pub fn submit(self: &Arc<Self>, key: Vec<u8>, job: Job) {
        let mut queues = self.queues.lock().expect("scheduler lock");
        if let Some(queue) = queues.get_mut(&key) {
            queue.push_back(job);
            return;
        }
        queues.insert(key.clone(), VecDeque::new());
        drop(queues);
        tokio::spawn(Arc::clone(self).drain(key, job));
    }

    async fn drain(self: Arc<Self>, key: Vec<u8>, mut job: Job) {
        loop {
            let go = match job.ready.take() {
                Some(ready) => ready.await,
                None => true,
            };
            if go {
                let _permit = self
                    .concurrency
                    .acquire()
                    .await
                    .expect("the scheduler never closes its semaphore");
                job.work.await;
            }
            let mut queues = self.queues.lock().expect("scheduler lock");
            match queues.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(next) => job = next,
                None => {
                    queues.remove(&key);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn same_key_in_order_other_keys_overtake() {
        let scheduler = KeyedScheduler::new(4);
        let (tx, mut rx) = mpsc::unbounded_channel();
        for (key, n, delay) in [("a", 1, 50), ("a", 2, 0), ("b", 3, 0)] {
            let tx = tx.clone();
            scheduler.submit(
                key.as_bytes().to_vec(),
                Job {
                    ready: None,
                    work: Box::pin(async move {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        tx.send(n).unwrap();
                    }),
                },
            );
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some(n) = rx.recv().await {
            order.push(n);
        }
        assert_eq!(
            order,
            vec![3, 1, 2],
            "b overtakes slow a; a's events stay in order"
        );
    }

    #[tokio::test]
    async fn waiting_work_holds_up_its_key_but_no_slot() {
        let scheduler = KeyedScheduler::new(1);
        let (tx, mut rx) = mpsc::unbounded_channel();
        let job = move |n: u32, ready: Option<(u64, bool)>| {
            let tx = tx.clone();
            Job {
                ready: ready.map(|(wait, go)| -> Task<bool> {
                    Box::pin(async move {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                        go
                    })
                }),
                work: Box::pin(async move { tx.send(n).unwrap() }),
            }
        };
        scheduler.submit(b"a".to_vec(), job(1, Some((100, true))));
        scheduler.submit(b"a".to_vec(), job(2, None));
        scheduler.submit(b"a".to_vec(), job(3, Some((0, false))));
        scheduler.submit(b"a".to_vec(), job(4, None));
        scheduler.submit(b"b".to_vec(), job(5, None));
        drop(job);
        let mut order = Vec::new();
        while let Some(n) = rx.recv().await {
            order.push(n);
        }
        assert_eq!(
            order,
            vec![5, 1, 2, 4],
            "b runs in the one slot while a waits; a's work stays in order; 3 is dropped"
        );
    }
}
