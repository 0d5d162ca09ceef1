//! Accounts: roles, token kinds, and the parsed e-mail address.

use super::sync_status::db_enum;
use serde::{Deserialize, Serialize};

/// Shortest password accepted at sign-up (characters).
pub const MIN_PASSWORD_CHARS: usize = 10;

db_enum! {
    /// What a user may do in their tenant.
    pub enum Role as "user_role" {
        /// Everything a member can, plus inviting people.
        Admin = "admin",
        /// Uploads, syncs and reads the tenant's datasets; makes own tokens.
        Member = "member",
    }
}

db_enum! {
    /// What a token opens.
    pub enum TokenKind as "token_kind" {
        /// A personal access token (`st_pat_…`) for the app's API.
        Personal = "personal",
        /// An assistant's token (`st_mcp_…`) for the MCP server, bound to the tenant.
        Mcp = "mcp",
    }
}

impl TokenKind {
    /// The token's visible prefix, which says what it is when it leaks.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Personal => "st_pat_",
            Self::Mcp => "st_mcp_",
        }
    }
}

/// An e-mail address, trimmed: something@something, no spaces, at most 254
/// characters. (Deliverability is the mail server's business.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let value = raw.trim();
        if value.is_empty() {
            return Err("enter an e-mail address");
        }
        if value.chars().count() > 254 {
            return Err("the e-mail address is longer than 254 characters");
        }
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !value.chars().any(|c| c.is_whitespace() || c.is_control())
            }
            None => false,
        };
        if !valid {
            return Err("that is not an e-mail address (name@example.org)");
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_checked() {
        assert_eq!(Email::parse(" a@b.org ").unwrap().as_str(), "a@b.org");
        for bad in ["", "ab.org", "@b.org", "a@", "a b@c.org", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert!(Email::parse(&format!("{}@b.org", "a".repeat(260))).is_err());
    }

    #[test]
    fn token_prefixes_say_what_they_open() {
        assert_eq!(TokenKind::Personal.prefix(), "st_pat_");
        assert_eq!(TokenKind::Mcp.prefix(), "st_mcp_");
    }
}
