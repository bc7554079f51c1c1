//! The HTTP API: `GET /v1/reports/monthly/{YYYY-MM}` (JSON, or CSV with `?format=csv` or
//! `Accept: text/csv`; `?currency=EUR` keeps one currency), `GET /health`, and the service's
//! `GET /metrics`, `/healthz` and `/readyz`, which are also served on `ORDERFLOW_METRICS_LISTEN`
//! like every service's.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use orderflow_core::observe::Observer;
use serde::Deserialize;
use serde_json::json;

use crate::report::{Currency, Format, Month, Report};

#[derive(Clone)]
pub struct AppState {
    pub pool: sqlx::PgPool,
}

pub fn router(state: AppState, observer: &Observer) -> Router {
    Router::new()
        .route("/v1/reports/monthly/{month}", get(monthly_report))
        .route("/health", get(|| async { "ok" }))
        .with_state(state)
        .merge(observer.router())
}

/// What the API answers besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Database(ref e) => {
                tracing::warn!(error = %e, "report unavailable");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        (status, Json(json!({"error": self.to_string()}))).into_response()
    }
}

#[derive(Debug, Deserialize)]
struct ReportParams {
    format: Option<String>,
    currency: Option<String>,
}

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

async fn monthly_report(
    State(state): State<AppState>,
    Path(month): Path<String>,
    Query(params): Query<ReportParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let month: Month = month.parse().map_err(bad_request)?;
    let currency = params
        .currency
        .map(|c| c.parse::<Currency>())
        .transpose()
        .map_err(bad_request)?;
    // An explicit `format` wins over the Accept header, so a browser link can ask for CSV.
    let format = match params.format {
        Some(f) => f.parse().map_err(bad_request)?,
        None if accepts_csv(&headers) => Format::Csv,
        None => Format::Json,
    };
    let report = Report::load(&state.pool, month, currency.as_ref()).await?;
    Ok(match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"sales-{month}.csv\""),
                ),
            ],
            report.to_csv(),
        )
            .into_response(),
    })
}

fn accepts_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|media| {
            media
                .split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/csv"))
        })
}
