//! The load itself: a chosen number of HTTP/1.1 keep-alive connections, each driven by a task of
//! its own, opened before the clock starts. At a fixed rate the run is an open loop: order `i` is
//! due at `start + i / rate`, the next free connection takes it, and its latency counts from when
//! it was due, so a server that falls behind shows in the percentiles instead of slowing the
//! generator down (no coordinated omission). As fast as possible, each connection sends its next
//! order as soon as the previous answer arrived.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{header, Method, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::catalogue::GeneratedOrder;

/// Connections opened at once: more would overrun the server's listen backlog.
const CONNECTING_AT_ONCE: usize = 500;
/// Refused orders whose answers the report keeps, to show why.
const REFUSAL_SAMPLES: usize = 5;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Checkout's base URL, `http://host:port`.
    pub url: String,
    pub connections: usize,
    /// Orders per second, or `None` for as fast as the connections go.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub request_timeout: Duration,
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0} is not an http://host:port URL")]
    Url(String),
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("no connection to {url} could be opened: {first_error}")]
    NoConnection { url: String, first_error: String },
}

/// Latency percentiles of the answered requests, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

/// What a run gave.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// Connections open when the clock started.
    pub connections: usize,
    pub connect_errors: u64,
    /// Connections reopened during the run after one broke or timed out.
    pub reconnects: u64,
    pub sent: u64,
    /// Answered 201 (created) or 200 (the same order again).
    pub accepted: u64,
    /// Answered 4xx.
    pub refused: u64,
    pub refusal_samples: Vec<String>,
    /// Answered 5xx.
    pub server_errors: u64,
    /// The connection failed under the request.
    pub io_errors: u64,
    pub timeouts: u64,
    /// The orders given ran out before the time did.
    pub ran_out_of_orders: bool,
    pub elapsed_s: f64,
    pub accepted_per_sec: f64,
    pub latency: Latency,
}

impl LoadReport {
    /// Requests that got no usable answer.
    pub fn failed(&self) -> u64 {
        self.server_errors + self.io_errors + self.timeouts
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latency;
        write!(
            f,
            "{} accepted in {:.1} s = {:.0}/s over {} connections; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} refused, {} failed",
            self.accepted,
            self.elapsed_s,
            self.accepted_per_sec,
            self.connections,
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms,
            self.refused,
            self.failed()
        )?;
        if self.connect_errors > 0 {
            write!(f, ", {} connections could not open", self.connect_errors)?;
        }
        if self.ran_out_of_orders {
            write!(f, " (ran out of orders)")?;
        }
        Ok(())
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// State shared by the connection tasks.
struct Shared {
    addr: SocketAddr,
    host: String,
    bodies: Vec<Bytes>,
    next: AtomicU64,
    rate: Option<f64>,
    start: Instant,
    deadline: Instant,
    request_timeout: Duration,
    tally: Mutex<Tally>,
}

struct Tally {
    report: LoadReport,
    histogram: Histogram<u64>,
    last_answer: Instant,
}

/// Runs `plan`, placing `orders` in order; their payments must already be scripted.
pub async fn run(plan: LoadPlan, orders: Vec<GeneratedOrder>) -> Result<LoadReport, LoadError> {
    let authority = plan
        .url
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .filter(|a| !a.is_empty() && !a.contains('/'))
        .ok_or_else(|| LoadError::Url(plan.url.clone()))?;
    let addr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| LoadError::Resolve(authority.to_string(), e))?
        .next()
        .ok_or_else(|| LoadError::Url(plan.url.clone()))?;

    let (senders, connect_errors, first_error) = open(addr, plan.connections).await;
    if senders.is_empty() {
        return Err(LoadError::NoConnection {
            url: plan.url,
            first_error: first_error.unwrap_or_default(),
        });
    }
    let start = Instant::now();
    let shared = Arc::new(Shared {
        addr,
        host: authority.to_string(),
        bodies: orders.into_iter().map(|o| Bytes::from(o.body)).collect(),
        next: AtomicU64::new(0),
        rate: plan.rate,
        start,
        deadline: start + plan.duration,
        request_timeout: plan.request_timeout,
        tally: Mutex::new(Tally {
            report: LoadReport {
                connections: senders.len(),
                connect_errors,
                ..LoadReport::default()
            },
            histogram: Histogram::new_with_bounds(1, 600_000_000, 3)
                .expect("valid histogram bounds"),
            last_answer: start,
        }),
    });
    let mut tasks = JoinSet::new();
    for sender in senders {
        tasks.spawn(drive(sender, Arc::clone(&shared)));
    }
    while tasks.join_next().await.is_some() {}

    let tally = shared.tally.lock().expect("tally lock");
    let mut report = tally.report.clone();
    let h = &tally.histogram;
    let ms = |micros: u64| micros as f64 / 1000.0;
    report.latency = Latency {
        p50_ms: ms(h.value_at_quantile(0.50)),
        p90_ms: ms(h.value_at_quantile(0.90)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
        mean_ms: h.mean() / 1000.0,
    };
    report.elapsed_s = tally.last_answer.duration_since(start).as_secs_f64();
    report.accepted_per_sec = report.accepted as f64 / report.elapsed_s.max(1e-9);
    Ok(report)
}

/// Opens `count` connections, a bounded number at a time; returns them, the failures and the
/// first failure's reason.
async fn open(addr: SocketAddr, count: usize) -> (Vec<Sender>, u64, Option<String>) {
    let gate = Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut connecting = JoinSet::new();
    for _ in 0..count {
        let gate = Arc::clone(&gate);
        connecting.spawn(async move {
            let _permit = gate
                .acquire_owned()
                .await
                .expect("the gate is never closed");
            connect(addr).await
        });
    }
    let (mut senders, mut errors, mut first_error) = (Vec::with_capacity(count), 0, None);
    while let Some(joined) = connecting.join_next().await {
        match joined.expect("a connecting task does not panic") {
            Ok(sender) => senders.push(sender),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    (senders, errors, first_error)
}

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One connection's loop: takes the next order until the time or the orders run out.
async fn drive(first: Sender, shared: Arc<Shared>) {
    let mut sender = Some(first);
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let due = match shared.rate {
            Some(rate) => shared.start + Duration::from_secs_f64(i as f64 / rate),
            None => Instant::now(),
        };
        if due >= shared.deadline {
            return;
        }
        let Some(body) = shared.bodies.get(i as usize) else {
            shared
                .tally
                .lock()
                .expect("tally lock")
                .report
                .ran_out_of_orders = true;
            return;
        };
        tokio::time::sleep_until(due).await;
        let ready = match sender.take() {
            Some(s) if !s.is_closed() => Ok(s),
            _ => {
                shared.tally.lock().expect("tally lock").report.reconnects += 1;
                connect(shared.addr).await
            }
        };
        let outcome = match ready {
            Ok(s) => {
                let answer = tokio::time::timeout(
                    shared.request_timeout,
                    place(s, &shared.host, body.clone()),
                )
                .await;
                match answer {
                    Ok(Ok((s, status, text))) => {
                        sender = Some(s);
                        Outcome::Answered(status, text)
                    }
                    Ok(Err(())) => Outcome::Io,
                    Err(_) => Outcome::Timeout,
                }
            }
            Err(_) => Outcome::Io,
        };
        shared.record(due, outcome);
    }
}

enum Outcome {
    Answered(u16, Bytes),
    Io,
    Timeout,
}

impl Shared {
    fn record(&self, due: Instant, outcome: Outcome) {
        let now = Instant::now();
        let mut t = self.tally.lock().expect("tally lock");
        t.report.sent += 1;
        match outcome {
            Outcome::Answered(status, text) => {
                let micros = u64::try_from(now.duration_since(due).as_micros()).unwrap_or(u64::MAX);
                t.histogram.saturating_record(micros.max(1));
                t.last_answer = t.last_answer.max(now);
                match status {
                    200 | 201 => t.report.accepted += 1,
                    400..=499 => {
                        t.report.refused += 1;
                        if t.report.refusal_samples.len() < REFUSAL_SAMPLES {
                            let sample = format!("{status} {}", String::from_utf8_lossy(&text));
                            t.report.refusal_samples.push(sample);
                        }
                    }
                    _ => t.report.server_errors += 1,
                }
            }
            Outcome::Io => t.report.io_errors += 1,
            Outcome::Timeout => t.report.timeouts += 1,
        }
    }
}

/// Posts one order; gives the connection back with the answer, or `Err` when it broke.
async fn place(mut sender: Sender, host: &str, body: Bytes) -> Result<(Sender, u16, Bytes), ()> {
    sender.ready().await.map_err(|_| ())?;
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/orders")
        .header(header::HOST, host)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .expect("a valid request");
    let response = sender.send_request(request).await.map_err(|_| ())?;
    let status = response.status().as_u16();
    let text = response
        .into_body()
        .collect()
        .await
        .map_err(|_| ())?
        .to_bytes();
    Ok((sender, status, text))
}
