//! The payment provider: `GET /v1/payments/{reference}` answers what checkout verifies before it
//! accepts an order. Tests and the demo script payments with `PUT /v1/payments/{reference}` (or
//! many at once with `PUT /_sim/payments`, as the load generator does) and the provider's
//! behaviour with `PUT /_sim/behaviour`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// A payment as the provider reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PaymentRecord {
    pub reference: String,
    /// `succeeded`, `pending` or `failed`.
    pub status: String,
    pub amount_minor: i64,
    pub currency: String,
}

/// How the provider misbehaves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Added before every answer.
    pub latency_ms: u64,
    /// The next this many requests answer `fail_status`.
    pub fail_next: u32,
    /// Status of failed answers; 503 when unset.
    pub fail_status: Option<u16>,
}

#[derive(Default)]
struct Inner {
    payments: HashMap<String, PaymentRecord>,
    behaviour: Behaviour,
    requests: u64,
}

/// A running simulator.
#[derive(Clone)]
pub struct PaymentSim {
    pub addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
}

impl PaymentSim {
    /// Starts the simulator on `addr` (port 0 picks a free one) in the current runtime.
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route(
                "/v1/payments/{reference}",
                get(read_payment).put(script_payment),
            )
            .route("/_sim/payments", put(script_payments))
            .route("/_sim/behaviour", put(set_behaviour))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "payment simulator stopped");
            }
        });
        Ok(Self { addr, state })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Scripts what the provider answers for a reference.
    pub fn set_payment(&self, reference: &str, status: &str, amount_minor: i64, currency: &str) {
        self.lock().payments.insert(
            reference.to_string(),
            PaymentRecord {
                reference: reference.to_string(),
                status: status.to_string(),
                amount_minor,
                currency: currency.to_string(),
            },
        );
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// Payment look-ups received so far.
    pub fn requests(&self) -> u64 {
        self.lock().requests
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.state.lock().expect("simulator state lock")
    }
}

type Shared = State<Arc<Mutex<Inner>>>;

async fn read_payment(State(state): Shared, Path(reference): Path<String>) -> Response {
    let (latency, failure, payment) = {
        let mut s = state.lock().expect("simulator state lock");
        s.requests += 1;
        let failure = if s.behaviour.fail_next > 0 {
            s.behaviour.fail_next -= 1;
            Some(s.behaviour.fail_status.unwrap_or(503))
        } else {
            None
        };
        (
            s.behaviour.latency_ms,
            failure,
            s.payments.get(&reference).cloned(),
        )
    };
    tokio::time::sleep(Duration::from_millis(latency)).await;
    if let Some(status) = failure {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return (
            status,
            Json(serde_json::json!({"error": "simulated failure"})),
        )
            .into_response();
    }
    match payment {
        Some(p) => Json(p).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no payment {reference}")})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct ScriptedPayment {
    status: String,
    amount_minor: i64,
    currency: String,
}

async fn script_payment(
    State(state): Shared,
    Path(reference): Path<String>,
    Json(p): Json<ScriptedPayment>,
) -> StatusCode {
    state.lock().expect("simulator state lock").payments.insert(
        reference.clone(),
        PaymentRecord {
            reference,
            status: p.status,
            amount_minor: p.amount_minor,
            currency: p.currency,
        },
    );
    StatusCode::NO_CONTENT
}

/// Scripts many payments in one request, each as `PUT /v1/payments/{reference}` would.
async fn script_payments(
    State(state): Shared,
    Json(payments): Json<Vec<PaymentRecord>>,
) -> StatusCode {
    let mut s = state.lock().expect("simulator state lock");
    for p in payments {
        s.payments.insert(p.reference.clone(), p);
    }
    StatusCode::NO_CONTENT
}

async fn set_behaviour(State(state): Shared, Json(b): Json<Behaviour>) -> StatusCode {
    state.lock().expect("simulator state lock").behaviour = b;
    StatusCode::NO_CONTENT
}
