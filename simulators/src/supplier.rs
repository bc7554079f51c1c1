//! The print-on-demand supplier's HTTP API, simulated: `POST /v1/print-jobs` takes one print job
//! per (order, supplier) under an `Idempotency-Key`. A new key answers 201 `{job_id}`; a key it has
//! seen answers 200 with the same `job_id` (409 when the key comes back with a different body), so
//! a client that lost an answer can safely send again. Bad requests get 400/422 with a message.
//!
//! The supplier can be scripted to misbehave, at start-up or at runtime through the handle or
//! `PUT /_sim/behaviour`: latency, a random share of 503s and 429s (with `Retry-After`), the next
//! N requests failing or refused. What it received is readable from outside, so tests and the
//! fault-injection suite can count jobs per key: `GET /v1/print-jobs` lists the jobs (each with
//! how many requests carried its key), `GET /_sim/stats` the counters, `GET /_sim/requests` every
//! request with its answer.

use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// The header that makes a print job request idempotent: `<order_id>:<supplier_id>`.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// A print job request, as the supplier's API documents it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintJobRequest {
    pub order_id: String,
    pub supplier_id: String,
    pub items: Vec<PrintItem>,
    pub ship_to: ShipTo,
}

/// One order line to print.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrintItem {
    pub line_id: String,
    pub sku: String,
    pub design_id: String,
    pub print_technique: String,
    pub size: String,
    pub colour: String,
    pub material: String,
    pub quantity: i32,
}

/// Where the supplier ships the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipTo {
    pub name: String,
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub country: String,
}

/// A job the supplier accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub job_id: String,
    pub idempotency_key: String,
    pub request: PrintJobRequest,
    /// Requests that carried this job's key and the same body: 1 + the duplicates.
    pub requests: u32,
}

/// What the supplier received so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Every `POST /v1/print-jobs`, whatever its answer.
    pub requests: u64,
    /// Distinct jobs created (201).
    pub jobs: u64,
    /// Requests answered 200 with an existing job: a client sent a key again.
    pub duplicates: u64,
    /// A known key with a different body (409).
    pub conflicts: u64,
    /// Malformed or invalid requests (400/422).
    pub invalid: u64,
    /// Scripted refusals (`reject_next`, 422).
    pub rejected: u64,
    /// Scripted or random failures (5xx, 429).
    pub injected_failures: u64,
}

/// One request and the status it got, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    pub idempotency_key: Option<String>,
    pub status: u16,
    /// Milliseconds since the simulator started.
    pub at_ms: u64,
}

/// How the supplier misbehaves. Scripted failures (`fail_next`, `rate_limit_next`) come before
/// the random ones and before validation, like an overloaded gateway in front of the API.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Added before every answer; the job is recorded first, so a client that gives up while
    /// waiting leaves a job behind, as a slow real supplier would.
    pub latency_ms: u64,
    /// Share of requests (0.0–1.0) answered 503.
    pub error_rate: f64,
    /// Share of requests (0.0–1.0) answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// `Retry-After` of 429 answers, in seconds.
    pub retry_after_secs: u64,
    /// The next this many requests answer `fail_status`.
    pub fail_next: u32,
    /// Status of `fail_next` answers; 503 when unset.
    pub fail_status: Option<u16>,
    /// The next this many requests answer 429 with `Retry-After`.
    pub rate_limit_next: u32,
    /// The next this many new jobs are refused with 422 and `reject_message`.
    pub reject_next: u32,
    pub reject_message: Option<String>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 1,
            fail_next: 0,
            fail_status: None,
            rate_limit_next: 0,
            reject_next: 0,
            reject_message: None,
        }
    }
}

struct Inner {
    started: Instant,
    behaviour: Behaviour,
    /// Jobs by idempotency key.
    jobs: HashMap<String, Job>,
    /// Keys in the order their jobs were created.
    created: Vec<String>,
    stats: Stats,
    log: Vec<RequestRecord>,
}

/// A running supplier simulator.
#[derive(Clone)]
pub struct SupplierSim {
    pub addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
}

impl SupplierSim {
    /// Starts the simulator on `addr` (port 0 picks a free one) in the current runtime.
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<Self> {
        Self::spawn_with(addr, Behaviour::default()).await
    }

    /// Starts the simulator misbehaving as `behaviour` says from the first request.
    pub async fn spawn_with(addr: SocketAddr, behaviour: Behaviour) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(Inner {
            started: Instant::now(),
            behaviour,
            jobs: HashMap::new(),
            created: Vec::new(),
            stats: Stats::default(),
            log: Vec::new(),
        }));
        let app = Router::new()
            .route("/v1/print-jobs", post(create_job).get(list_jobs))
            .route("/_sim/stats", get(read_stats))
            .route("/_sim/requests", get(read_requests))
            .route("/_sim/behaviour", put(set_behaviour))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "supplier simulator stopped");
            }
        });
        Ok(Self { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    pub fn behaviour(&self) -> Behaviour {
        self.lock().behaviour.clone()
    }

    /// Every request answers after `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().behaviour.latency_ms = u64::try_from(latency.as_millis()).unwrap_or(u64::MAX);
    }

    /// The next `n` requests answer `status` (a 5xx, typically).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut s = self.lock();
        s.behaviour.fail_next = n;
        s.behaviour.fail_status = Some(status);
    }

    /// The next `n` requests answer 429 with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n: u32, retry_after_secs: u64) {
        let mut s = self.lock();
        s.behaviour.rate_limit_next = n;
        s.behaviour.retry_after_secs = retry_after_secs;
    }

    /// The next `n` new jobs are refused with 422 and `message`.
    pub fn reject_next(&self, n: u32, message: &str) {
        let mut s = self.lock();
        s.behaviour.reject_next = n;
        s.behaviour.reject_message = Some(message.to_string());
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    /// The jobs accepted so far, oldest first.
    pub fn jobs(&self) -> Vec<Job> {
        let s = self.lock();
        s.created.iter().map(|k| s.jobs[k].clone()).collect()
    }

    /// The job created for an idempotency key.
    pub fn job(&self, idempotency_key: &str) -> Option<Job> {
        self.lock().jobs.get(idempotency_key).cloned()
    }

    /// Every request received, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().expect("simulator state lock")
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

/// An answer decided under the lock and sent after the latency.
struct Answer {
    status: StatusCode,
    body: serde_json::Value,
    retry_after: Option<u64>,
}

impl Answer {
    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": message.into() }),
            retry_after: None,
        }
    }

    fn job(status: StatusCode, job_id: &str) -> Self {
        Self {
            status,
            body: serde_json::json!({ "job_id": job_id }),
            retry_after: None,
        }
    }
}

async fn create_job(State(state): Shared, headers: HeaderMap, body: Bytes) -> Response {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (latency, answer) = {
        let mut s = state.lock().expect("simulator state lock");
        let answer = decide(&mut s, key.as_deref(), &body);
        let record = RequestRecord {
            idempotency_key: key,
            status: answer.status.as_u16(),
            at_ms: u64::try_from(s.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        s.log.push(record);
        (s.behaviour.latency_ms, answer)
    };
    tokio::time::sleep(Duration::from_millis(latency)).await;
    let mut response = (answer.status, Json(answer.body)).into_response();
    if let Some(secs) = answer.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// Decides the answer to one request and records its effect.
fn decide(s: &mut Inner, key: Option<&str>, body: &[u8]) -> Answer {
    s.stats.requests += 1;
    if let Some(answer) = injected_failure(s) {
        s.stats.injected_failures += 1;
        return answer;
    }
    let Some(key) = key.filter(|k| !k.trim().is_empty()) else {
        s.stats.invalid += 1;
        return Answer::error(
            StatusCode::BAD_REQUEST,
            "the Idempotency-Key header is required",
        );
    };
    let request: PrintJobRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            s.stats.invalid += 1;
            return Answer::error(StatusCode::BAD_REQUEST, format!("malformed print job: {e}"));
        }
    };
    let problems = validate(key, &request);
    if !problems.is_empty() {
        s.stats.invalid += 1;
        return Answer::error(StatusCode::UNPROCESSABLE_ENTITY, problems.join("; "));
    }
    if let Some(job) = s.jobs.get_mut(key) {
        if job.request != request {
            s.stats.conflicts += 1;
            return Answer::error(
                StatusCode::CONFLICT,
                format!(
                    "Idempotency-Key {key} was already used for job {} with a different request",
                    job.job_id
                ),
            );
        }
        job.requests += 1;
        s.stats.duplicates += 1;
        return Answer::job(StatusCode::OK, &job.job_id);
    }
    if s.behaviour.reject_next > 0 {
        s.behaviour.reject_next -= 1;
        s.stats.rejected += 1;
        let message = s
            .behaviour
            .reject_message
            .clone()
            .unwrap_or_else(|| "the supplier refused the print job".to_string());
        return Answer::error(StatusCode::UNPROCESSABLE_ENTITY, message);
    }
    s.stats.jobs += 1;
    let job_id = format!("job-{:06}", s.stats.jobs);
    s.jobs.insert(
        key.to_string(),
        Job {
            job_id: job_id.clone(),
            idempotency_key: key.to_string(),
            request,
            requests: 1,
        },
    );
    s.created.push(key.to_string());
    Answer::job(StatusCode::CREATED, &job_id)
}

fn injected_failure(s: &mut Inner) -> Option<Answer> {
    let b = &mut s.behaviour;
    let rate_limited = |secs: u64| Answer {
        retry_after: Some(secs),
        ..Answer::error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("rate limited; retry after {secs}s"),
        )
    };
    if b.fail_next > 0 {
        b.fail_next -= 1;
        let status = b
            .fail_status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Some(Answer::error(status, "simulated failure"));
    }
    if b.rate_limit_next > 0 {
        b.rate_limit_next -= 1;
        return Some(rate_limited(b.retry_after_secs));
    }
    if b.error_rate > 0.0 && random_unit() < b.error_rate {
        return Some(Answer::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "simulated failure",
        ));
    }
    if b.rate_limit_rate > 0.0 && random_unit() < b.rate_limit_rate {
        return Some(rate_limited(b.retry_after_secs));
    }
    None
}

/// What a real supplier checks before it accepts a job.
fn validate(key: &str, r: &PrintJobRequest) -> Vec<String> {
    let mut problems = Vec::new();
    let expected_key = format!("{}:{}", r.order_id, r.supplier_id);
    if key != expected_key {
        problems.push(format!(
            "Idempotency-Key {key} does not match order_id:supplier_id ({expected_key})"
        ));
    }
    let mut required = vec![
        ("order_id", &r.order_id),
        ("supplier_id", &r.supplier_id),
        ("ship_to.name", &r.ship_to.name),
        ("ship_to.line1", &r.ship_to.line1),
        ("ship_to.city", &r.ship_to.city),
        ("ship_to.postal_code", &r.ship_to.postal_code),
    ];
    for item in &r.items {
        required.extend([
            ("items[].line_id", &item.line_id),
            ("items[].sku", &item.sku),
            ("items[].design_id", &item.design_id),
            ("items[].print_technique", &item.print_technique),
        ]);
    }
    for (field, value) in required {
        if value.trim().is_empty() {
            problems.push(format!("{field} is empty"));
        }
    }
    let country = &r.ship_to.country;
    if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
        problems.push(format!(
            "ship_to.country {country:?} is not an ISO 3166-1 alpha-2 code"
        ));
    }
    if r.items.is_empty() {
        problems.push("a print job needs at least one item".to_string());
    }
    let mut lines = BTreeSet::new();
    for item in &r.items {
        if item.quantity <= 0 {
            problems.push(format!(
                "item {}: quantity {} is not positive",
                item.line_id, item.quantity
            ));
        }
        if !lines.insert(&item.line_id) {
            problems.push(format!("item {} appears twice", item.line_id));
        }
    }
    problems
}

/// A uniform number in [0, 1). `RandomState` is randomly keyed and changes its keys on every
/// `new()`, which is plenty for fault injection without another dependency.
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(0u8) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

async fn list_jobs(State(state): Shared) -> Json<Vec<Job>> {
    let s = state.lock().expect("simulator state lock");
    Json(s.created.iter().map(|k| s.jobs[k].clone()).collect())
}

async fn read_stats(State(state): Shared) -> Json<Stats> {
    Json(state.lock().expect("simulator state lock").stats.clone())
}

async fn read_requests(State(state): Shared) -> Json<Vec<RequestRecord>> {
    Json(state.lock().expect("simulator state lock").log.clone())
}

async fn set_behaviour(State(state): Shared, Json(b): Json<Behaviour>) -> StatusCode {
    state.lock().expect("simulator state lock").behaviour = b;
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> PrintJobRequest {
        PrintJobRequest {
            order_id: "o-1".into(),
            supplier_id: "sup-a".into(),
            items: vec![PrintItem {
                line_id: "l1".into(),
                sku: "TEE".into(),
                design_id: "dsg-1".into(),
                print_technique: "dtg".into(),
                size: "M".into(),
                colour: "black".into(),
                material: "cotton".into(),
                quantity: 2,
            }],
            ship_to: ShipTo {
                name: "Ana".into(),
                line1: "Calle Mayor 1".into(),
                line2: None,
                city: "Madrid".into(),
                postal_code: "28013".into(),
                country: "ES".into(),
            },
        }
    }

    async fn post(
        sim: &SupplierSim,
        key: Option<&str>,
        body: &serde_json::Value,
    ) -> (u16, Option<String>, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/v1/print-jobs", sim.url()))
            .json(body);
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_string());
        (status, retry_after, response.json().await.unwrap())
    }

    async fn sim() -> SupplierSim {
        SupplierSim::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_key_makes_one_job_and_a_repeat_gets_the_same_job_id() {
        let sim = sim().await;
        let body = serde_json::to_value(request()).unwrap();
        let (status, _, first) = post(&sim, Some("o-1:sup-a"), &body).await;
        assert_eq!(status, 201);
        let (status, _, again) = post(&sim, Some("o-1:sup-a"), &body).await;
        assert_eq!(status, 200);
        assert_eq!(first["job_id"], again["job_id"]);
        let mut changed = request();
        changed.items[0].quantity = 3;
        let (status, _, conflict) = post(
            &sim,
            Some("o-1:sup-a"),
            &serde_json::to_value(changed).unwrap(),
        )
        .await;
        assert_eq!(status, 409);
        assert!(conflict["error"]
            .as_str()
            .unwrap()
            .contains("different request"));
        let stats = sim.stats();
        assert_eq!((stats.requests, stats.jobs), (3, 1));
        assert_eq!((stats.duplicates, stats.conflicts), (1, 1));
        let jobs = sim.jobs();
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].requests, 2);
        assert_eq!(jobs[0].job_id, first["job_id"].as_str().unwrap());
    }

    #[tokio::test]
    async fn bad_requests_are_refused_with_a_message() {
        let sim = sim().await;
        let body = serde_json::to_value(request()).unwrap();
        let (status, _, answer) = post(&sim, None, &body).await;
        assert_eq!(status, 400);
        assert!(answer["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"));
        let (status, _, answer) =
            post(&sim, Some("o-1:sup-a"), &serde_json::json!({"order_id": 1})).await;
        assert_eq!(status, 400);
        assert!(answer["error"]
            .as_str()
            .unwrap()
            .starts_with("malformed print job"));
        let mut bad = request();
        bad.items[0].quantity = 0;
        bad.ship_to.country = "Spain".into();
        let (status, _, answer) =
            post(&sim, Some("o-1:sup-b"), &serde_json::to_value(bad).unwrap()).await;
        assert_eq!(status, 422);
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains("quantity 0 is not positive"), "{message}");
        assert!(message.contains("does not match"), "{message}");
        assert!(message.contains("\"Spain\""), "{message}");
        assert_eq!(sim.stats().invalid, 3);
        assert!(sim.jobs().is_empty());
    }

    #[tokio::test]
    async fn scripted_failures_come_first_and_then_the_job_is_taken() {
        let sim = sim().await;
        let body = serde_json::to_value(request()).unwrap();
        sim.fail_next(1, 502);
        sim.rate_limit_next(1, 7);
        let (status, _, _) = post(&sim, Some("o-1:sup-a"), &body).await;
        assert_eq!(status, 502);
        let (status, retry_after, _) = post(&sim, Some("o-1:sup-a"), &body).await;
        assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
        sim.reject_next(1, "design dsg-1 is not printable");
        let (status, _, answer) = post(&sim, Some("o-1:sup-a"), &body).await;
        assert_eq!(status, 422);
        assert_eq!(answer["error"], "design dsg-1 is not printable");
        let (status, _, _) = post(&sim, Some("o-1:sup-a"), &body).await;
        assert_eq!(status, 201);
        let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![502, 429, 422, 201]);
        let stats = sim.stats();
        assert_eq!(
            (stats.injected_failures, stats.rejected, stats.jobs),
            (2, 1, 1)
        );
    }

    #[tokio::test]
    async fn error_rates_are_roughly_honoured() {
        let sim = sim().await;
        sim.set_behaviour(Behaviour {
            error_rate: 1.0,
            ..Behaviour::default()
        });
        let body = serde_json::to_value(request()).unwrap();
        for _ in 0..5 {
            assert_eq!(post(&sim, Some("o-1:sup-a"), &body).await.0, 503);
        }
        let hits = (0..10_000).filter(|_| random_unit() < 0.25).count();
        assert!((2_000..3_000).contains(&hits), "{hits} of 10000 under 0.25");
    }
}
