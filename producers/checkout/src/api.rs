//! The checkout HTTP API: `POST /v1/orders` accepts a paid order, `GET /v1/orders/{id}` shows it.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

use axum::{Json, Router};
use orderflow_core::db;
use orderflow_core::telemetry::{self, HeaderPairs};
use serde_json::json;
use tracing::Instrument;

use crate::metrics::CheckoutMetrics;
use crate::order::{self, FieldError, OrderRequest};
use crate::payment::{PaymentClient, PaymentError};
use crate::relay::wake::OutboxWaker;
use crate::store::{self, Insert};

/// Requests larger than this are refused before parsing.
const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<CheckoutMetrics>,
    pub pool: sqlx::PgPool,
    pub payments: PaymentClient,
    pub topic: String,
    pub waker: OutboxWaker,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/orders", post(place_order))
        .route("/v1/orders/{order_id}", get(get_order))
        .route("/health", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Everything `POST /v1/orders` can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("invalid order")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    PaymentRefused(String),
    #[error("{0}")]
    PaymentUnavailable(String),
    #[error("order {0} exists with a different body")]
    Conflict(String),
    #[error("order {0} not found")]
    NotFound(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl ApiError {
    fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PaymentRefused(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::PaymentUnavailable(_) | ApiError::Database(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    /// The `outcome` label of the answer in `orderflow_checkout_orders_total`.
    fn outcome(&self) -> &'static str {
        match self {
            ApiError::Invalid(_) => "invalid",
            ApiError::PaymentRefused(_) => "payment_refused",
            ApiError::PaymentUnavailable(_) => "payment_unavailable",
            ApiError::Conflict(_) => "conflict",
            ApiError::NotFound(_) => "not_found",
            ApiError::Database(_) => "database_unavailable",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = self.to_string();
        match self {
            ApiError::Invalid(errors) => {
                (status, Json(json!({"error": message, "errors": errors}))).into_response()
            }
            ApiError::PaymentUnavailable(_) | ApiError::Database(_) => {
                tracing::warn!(error = %message, "order not accepted; asking the client to retry");
                (
                    status,
                    [(header::RETRY_AFTER, "5")],
                    Json(json!({"error": message})),
                )
                    .into_response()
            }
            _ => (status, Json(json!({"error": message}))).into_response(),
        }
    }
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

async fn place_order(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let span = tracing::info_span!(
        "POST /v1/orders",
        otel.kind = "server",
        http.request.method = "POST",
        http.route = "/v1/orders",
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        error.type = tracing::field::Empty,
        order_id = tracing::field::Empty
    );
    telemetry::set_parent_from(&span, &HeaderPairs(&header_pairs(&headers)));
    let metrics = Arc::clone(&state.metrics);
    let answer = accept(state, body).instrument(span.clone()).await;
    let status = match &answer {
        Ok(response) => response.status(),
        Err(e) => e.status(),
    };
    span.record("http.response.status_code", status.as_u16());
    // A server span fails on 5xx only: a refused order is the client's problem, not ours.
    if status.is_server_error() {
        telemetry::record_error(&span, status.as_str(), "");
    }
    match &answer {
        Ok(response) if response.status() == StatusCode::CREATED => {
            metrics.answered("accepted", StatusCode::CREATED.as_u16());
        }
        Ok(response) => metrics.answered("repeated", response.status().as_u16()),
        Err(e) => metrics.answered(e.outcome(), e.status().as_u16()),
    }
    answer
}

async fn accept(state: AppState, body: Bytes) -> Result<Response, ApiError> {
    let request = order::parse(&body).map_err(ApiError::Invalid)?;
    order::validate(&request).map_err(ApiError::Invalid)?;
    tracing::Span::current().record("order_id", request.order_id.as_str());
    // A retry of an accepted order answers as the first time did, without asking the provider.
    if let Some(existing) = store::stored_request(&state.pool, &request.order_id)
        .instrument(db::span("SELECT", "orders"))
        .await?
    {
        return repeat(&request, existing);
    }
    let event = request.to_event(
        uuid::Uuid::new_v4().to_string(),
        chrono::Utc::now().timestamp_millis(),
    );
    state
        .payments
        .verify(
            &request.payment.reference,
            event.totals.total_minor,
            &event.currency,
        )
        .await
        .map_err(|e| match e {
            PaymentError::Refused(m) => ApiError::PaymentRefused(m),
            PaymentError::Unavailable(m) => ApiError::PaymentUnavailable(m),
        })?;
    let payload = event.encode().expect("a validated order encodes");
    let trace_headers =
        serde_json::to_value(telemetry::current_context_headers()).expect("headers serialize");
    match store::insert_order(
        &state.pool,
        &request,
        &event,
        &payload,
        &state.topic,
        &trace_headers,
    )
    .instrument(db::span("INSERT", "orders"))
    .await?
    {
        Insert::Created => {
            state.waker.order_accepted();
            tracing::info!(event_id = %event.event_id, total_minor = event.totals.total_minor, "order accepted");
            Ok((
                StatusCode::CREATED,
                Json(json!({"order_id": request.order_id, "status": "accepted", "total_minor": event.totals.total_minor})),
            )
                .into_response())
        }
        // Another request with this id won the race while the payment was checked.
        Insert::Exists(existing) => repeat(&request, existing),
    }
}

/// The answer to an order id seen before: the original result for the same body, else 409.
fn repeat(request: &OrderRequest, existing: serde_json::Value) -> Result<Response, ApiError> {
    let same =
        serde_json::from_value::<OrderRequest>(existing).is_ok_and(|stored| stored == *request);
    if !same {
        return Err(ApiError::Conflict(request.order_id.clone()));
    }
    let total = request.to_event(String::new(), 0).totals.total_minor;
    Ok((
        StatusCode::OK,
        Json(json!({"order_id": request.order_id, "status": "accepted", "total_minor": total})),
    )
        .into_response())
}

async fn get_order(
    State(state): State<AppState>,
    Path(order_id): Path<String>,
) -> Result<Response, ApiError> {
    match store::find_order(&state.pool, &order_id).await? {
        Some(view) => Ok(Json(view).into_response()),
        None => Err(ApiError::NotFound(order_id)),
    }
}
