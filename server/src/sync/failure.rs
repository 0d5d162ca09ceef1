//! What a user is told when a sync step fails: what went wrong in words,
//! never an internal URL, path or host name. The full cause goes to the log
//! with a reference, and the message carries the same reference, so an
//! operator can find one from the other.

use contract::client::CallError;

/// A short reference shared by the log line and the message.
fn reference() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Replaces words that look like URLs, absolute paths or `host:port`.
pub fn scrub(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let core = word.trim_matches(|c: char| "\"'()[]{}<>,;".contains(c));
            let url = core.contains("://");
            let path = core.starts_with('/') && core[1..].contains('/');
            let host_port = core.rsplit_once(':').is_some_and(|(host, port)| {
                !port.is_empty()
                    && port.chars().all(|c| c.is_ascii_digit())
                    && (host.contains('.') || host == "localhost")
            });
            if url {
                word.replace(core, "<url>")
            } else if path {
                word.replace(core, "<path>")
            } else if host_port {
                word.replace(core, "<host>")
            } else {
                word.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The user-facing text of a failed MCP call; the cause is logged.
pub fn call_failure(e: &CallError) -> String {
    let reference = reference();
    tracing::warn!(error = %e, %reference, "sync step failed");
    let what = match e {
        CallError::Unreachable { .. } => {
            "the lakehouse service (MCP server) cannot be reached".to_owned()
        }
        CallError::Refused { .. } => "the lakehouse service (MCP server) refused the app's key: \
             the app and the MCP server must be given the same MCP_API_KEY"
            .to_owned(),
        CallError::Timeout { tool, secs } => {
            format!("the lakehouse did not finish {tool} within {secs} s")
        }
        CallError::Transport { tool, .. } => {
            format!("the connection to the lakehouse broke during {tool}")
        }
        CallError::Tool { tool, message, .. } => format!("{tool}: {}", scrub(message)),
        CallError::BadOutput { tool, .. } => {
            format!("the lakehouse answered {tool} with something unexpected")
        }
    };
    format!("{what} (reference {reference})")
}

/// The user-facing text of an internal failure (`doing` says what failed).
pub fn internal_failure(doing: &str, e: &dyn std::fmt::Display) -> String {
    let reference = reference();
    tracing::error!(error = %e, %reference, "{doing} failed");
    format!("{doing} failed on our side (reference {reference})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_paths_and_hosts_are_taken_out() {
        let text = "could not reach http://10.0.0.5:3010/internal/storage/x.parquet?sig=1 \
                    from /var/lib/st/lakehouse/tmp/a.parquet (db.internal:5432), keep 3.5 and 12:30";
        let clean = scrub(text);
        for secret in ["10.0.0.5", "/var/lib", "db.internal", "sig=1"] {
            assert!(!clean.contains(secret), "{clean}");
        }
        assert!(clean.contains("<url>") && clean.contains("<path>") && clean.contains("<host>"));
        assert!(clean.contains("keep 3.5 and 12:30"), "{clean}");
    }

    #[test]
    fn an_unreachable_server_is_named_not_located() {
        let e = CallError::Unreachable {
            url: "http://127.0.0.1:8765/mcp".into(),
            reason: "connection refused".into(),
        };
        let text = call_failure(&e);
        assert!(
            text.starts_with("the lakehouse service (MCP server) cannot be reached (reference "),
            "{text}"
        );
        assert!(!text.contains("127.0.0.1"));
    }

    #[test]
    fn a_refused_key_is_named_as_such() {
        let text = call_failure(&CallError::Refused {
            url: "http://10.1.2.3:8765/mcp".into(),
        });
        assert!(text.contains("refused the app's key"), "{text}");
        assert!(text.contains("MCP_API_KEY"), "{text}");
        assert!(!text.contains("10.1.2.3"), "{text}");
    }
}
