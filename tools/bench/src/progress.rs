//! How fast a count grows: events a consumer processed, orders fully handled. The rate is taken
//! from the first sample that moved to the sample that reached the goal, so start-up (joining the
//! group, connecting) is not counted against the service.

use std::future::Future;
use std::time::{Duration, Instant};

/// A count that reached its goal, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub counted: u64,
    pub elapsed: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.counted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Samples `count` every 100 ms until it reaches `goal` or `patience` passes without progress.
/// `Err` carries the last count when it stalled.
pub async fn until<F, Fut>(goal: u64, patience: Duration, count: F) -> Result<Rate, u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    until_every(goal, patience, Duration::from_millis(100), count).await
}

/// [`until`], sampling every `every`: for a count that is costly to take while the measured
/// services run.
pub async fn until_every<F, Fut>(
    goal: u64,
    patience: Duration,
    every: Duration,
    mut count: F,
) -> Result<Rate, u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = u64>,
{
    let mut first: Option<Instant> = None;
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let now_count = count().await;
        let now = Instant::now();
        if now_count != last {
            last = now_count;
            last_change = now;
        }
        if first.is_none() && now_count > 0 {
            first = Some(now);
        }
        if now_count >= goal {
            let since = first.expect("a count that reached its goal moved");
            // The first sample already holds work done since the previous sample: count from
            // the sample before it, when it was still 0.
            let elapsed = now.duration_since(since) + every;
            return Ok(Rate {
                counted: now_count,
                elapsed,
            });
        }
        if now.duration_since(last_change) > patience {
            return Err(last);
        }
        tokio::time::sleep(every).await;
    }
}

/// The sum of `metric` on a service's `/metrics` page, 0 while it does not answer.
pub async fn scrape(http: &reqwest::Client, url: &str, metric: &str) -> f64 {
    match http.get(url).send().await {
        Ok(r) => match r.text().await {
            Ok(page) => orderflow_bench::prom::sum(&page, metric),
            Err(_) => 0.0,
        },
        Err(_) => 0.0,
    }
}
