//! Per-key scheduling: work for one key runs in arrival order, one at a time; work for different
//! keys runs concurrently, at most `concurrency` at once. A slow order delays only later events of
//! the same order, not its whole partition.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

pub(crate) type Job = Pin<Box<dyn Future<Output = ()> + Send>>;

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
            {
                let _permit = self
                    .concurrency
                    .acquire()
                    .await
                    .expect("the scheduler never closes its semaphore");
                job.await;
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
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    tx.send(n).unwrap();
                }),
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
}
