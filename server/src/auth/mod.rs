//! Accounts and the edge: who may reach what, and with which credential.
//!
//! - [`secrets`]: random secrets, their SHA-256 digests, argon2id passwords.
//! - [`accounts`]: sign-up (with an invitation, or a new team), log-in, the
//!   first admin, invitations.
//! - [`tokens`]: personal access tokens (`st_pat_…`) and assistant tokens
//!   (`st_mcp_…`), stored hashed.
//! - [`limiter`]: log-in attempts per account and per IP.
//! - [`signed_url`]: short-lived download URLs signed for one dataset.
//! - [`edge`]: the middleware every public request passes: Host allow-list,
//!   CSRF (Origin / Sec-Fetch-Site), security headers, and the principal.

pub mod accounts;
pub mod edge;
pub mod limiter;
pub mod secrets;
pub mod signed_url;
pub mod tokens;
