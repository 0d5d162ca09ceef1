//! Token introspection: how the MCP server learns which tenant an
//! assistant's token (`st_mcp_…`) acts for. The MCP server posts the token
//! to the app's internal listener (`POST /internal/mcp/introspect`, with
//! its service key as the bearer); the app answers with the token's tenant,
//! or 404 when the token is unknown, revoked or expired.

use serde::{Deserialize, Serialize};

/// Where the app serves introspection (on its internal listener).
pub const INTROSPECT_PATH: &str = "/internal/mcp/introspect";

/// The prefix of an assistant's token.
pub const MCP_TOKEN_PREFIX: &str = "st_mcp_";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntrospectRequest {
    pub token: String,
}

/// A live token: the tenant it acts for, and its own id (for the audit log).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntrospectResponse {
    pub tenant_id: String,
    pub token_id: String,
}
