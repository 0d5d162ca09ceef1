//! Who is calling, and what they may do.
//!
//! Two credentials open `/mcp`:
//! - **the service key** (`MCP_API_KEY`): the ServiceTsunami server. It may
//!   act for any tenant, and only it may write (`create_dataset`,
//!   `transform_to_silver`);
//! - **an assistant's token** (`st_mcp_…`, made on the app's "Connect an
//!   assistant" page): bound to one tenant. The app's internal listener says
//!   which (token introspection, cached for `MCP_TOKEN_CACHE_SECS`). Every
//!   tool then acts for that tenant only: a `tenant_id` argument that
//!   differs is refused, and tables of other tenants are not found.

use crate::{domain::TenantId, error::ToolError};
use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
    Json,
};
use contract::{
    access::{IntrospectRequest, IntrospectResponse, INTROSPECT_PATH, MCP_TOKEN_PREFIX},
    process::{bearer_matches, bearer_token},
    ErrorBody,
};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The ServiceTsunami server (the service key).
    Service,
    /// An assistant's token, bound to its tenant.
    Tenant { tenant: TenantId, token_id: String },
}

impl Principal {
    /// The tenant a call acts for: the argument, which for a tenant-bound
    /// token must be the token's own.
    pub fn tenant(&self, argument: &str) -> Result<TenantId, ToolError> {
        let asked = TenantId::parse(argument)?;
        match self {
            Self::Service => Ok(asked),
            Self::Tenant { tenant, .. } if *tenant == asked => Ok(asked),
            Self::Tenant { .. } => Err(ToolError::Forbidden(
                "tenant_id is not the tenant this token belongs to",
            )),
        }
    }

    /// Only the service may write tables.
    pub fn require_service(&self) -> Result<(), ToolError> {
        match self {
            Self::Service => Ok(()),
            Self::Tenant { .. } => Err(ToolError::Forbidden(
                "only the ServiceTsunami server may create or transform tables",
            )),
        }
    }

    pub fn token_id(&self) -> Option<&str> {
        match self {
            Self::Service => None,
            Self::Tenant { token_id, .. } => Some(token_id),
        }
    }
}

/// The principal of a tool call, from the HTTP request the transport hands on.
pub fn principal_of(parts: &axum::http::request::Parts) -> Result<Principal, ToolError> {
    parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or(ToolError::Forbidden("the call carries no credential"))
}

#[derive(Debug)]
enum Refusal {
    Missing,
    Invalid,
    Unavailable,
}

/// Checks bearers: the service key in constant time; assistants' tokens by
/// introspection at the app, with a short cache keyed by the token's digest.
pub struct Authenticator {
    service_key: SecretString,
    introspect_url: String,
    http: reqwest::Client,
    cache_ttl: Duration,
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

/// Entries kept at most; beyond it the cache is emptied.
const MAX_CACHED: usize = 10_000;

impl Authenticator {
    pub fn new(service_key: SecretString, internal_base_url: &str, cache_ttl: Duration) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a TLS backend is compiled in");
        Self {
            service_key,
            introspect_url: format!(
                "{}{INTROSPECT_PATH}",
                internal_base_url.trim_end_matches('/')
            ),
            http,
            cache_ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn authenticate(&self, headers: &axum::http::HeaderMap) -> Result<Principal, Refusal> {
        if bearer_matches(headers, &self.service_key) {
            return Ok(Principal::Service);
        }
        let token = bearer_token(headers).ok_or(Refusal::Missing)?;
        if !token.starts_with(MCP_TOKEN_PREFIX) || token.len() > 200 {
            return Err(Refusal::Invalid);
        }
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((p, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if at.elapsed() < self.cache_ttl {
                return Ok(p.clone());
            }
        }
        let answer = self
            .http
            .post(&self.introspect_url)
            .bearer_auth(self.service_key.expose_secret())
            .json(&IntrospectRequest {
                token: token.to_owned(),
            })
            .send()
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "token introspection: the app is unreachable");
                Refusal::Unavailable
            })?;
        let principal = match answer.status() {
            StatusCode::OK => {
                let body: IntrospectResponse = answer.json().await.map_err(|e| {
                    tracing::warn!(error = %e, "token introspection: unreadable answer");
                    Refusal::Unavailable
                })?;
                Principal::Tenant {
                    tenant: TenantId::parse(&body.tenant_id).map_err(|_| Refusal::Unavailable)?,
                    token_id: body.token_id,
                }
            }
            StatusCode::NOT_FOUND => return Err(Refusal::Invalid),
            other => {
                tracing::warn!(status = %other, "token introspection failed");
                return Err(Refusal::Unavailable);
            }
        };
        if !self.cache_ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, (principal.clone(), Instant::now()));
        }
        Ok(principal)
    }
}

/// Every request under `/mcp` must carry a valid bearer; its principal goes
/// into the request's extensions for the tools. Anything else gets 401 (503
/// when tokens cannot be checked), with the error envelope.
pub async fn require_bearer(
    State(auth): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    match auth.authenticate(request.headers()).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(Refusal::Unavailable) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(ErrorBody::new(
                "unavailable",
                "the token cannot be checked right now; try again shortly",
            )),
        )
            .into_response(),
        Err(refusal) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(ErrorBody::new(
                "unauthorized",
                match refusal {
                    Refusal::Missing => {
                        "a bearer token is required (Authorization: Bearer st_mcp_…)"
                    }
                    _ => "the bearer token is not valid: unknown, revoked or expired",
                },
            )),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_token_acts_for_its_tenant_only() {
        let mine = TenantId::parse("6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11").unwrap();
        let p = Principal::Tenant {
            tenant: mine.clone(),
            token_id: "t".into(),
        };
        assert_eq!(
            p.tenant("6F1C1F9E-8c63-4e3b-9a57-2f4f7d1e0c11").unwrap(),
            mine
        );
        assert!(matches!(p.tenant("other"), Err(ToolError::Forbidden(_))));
        assert!(p.require_service().is_err());
        assert!(Principal::Service.tenant("any-tenant").is_ok());
        assert!(Principal::Service.require_service().is_ok());
    }
}
