//! Small pieces shared by the pages.

use crate::{domain::SyncStatus, format::parse_rfc3339_ms, model::SyncState};
use leptos::prelude::*;

/// A dataset's sync status as a coloured badge. It follows live changes
/// (see [`super::live`]) and starts from the state the server rendered, so
/// hydration sees the same HTML.
#[component]
pub fn SyncBadge(state: SyncState) -> impl IntoView {
    let live = super::live::use_live_sync();
    let id = state.dataset_id;
    let current = Memo::new(move |_| {
        let mut current = live.state_of(id).unwrap_or_else(|| state.clone());
        // Deleted while shown: it stays `deleting` until the row leaves.
        if live.is_removed(id) {
            current.status = SyncStatus::Deleting;
            current.error = None;
        }
        current
    });
    view! {
        <span
            class=move || format!("badge badge-{}", current.read().status.as_str())
            data-status=move || current.read().status.as_str()
            data-testid="sync-badge"
            title=move || current.read().error.clone().unwrap_or_default()
            aria-live="polite"
        >
            {move || {
                let state = current.read();
                format!("{}{}", badge_text(&state), retry_countdown(&state, live.now_ms()))
            }}
        </span>
    }
}

/// A live badge on a server-rendered page: the same badge as an island.
#[island]
pub fn LiveBadge(state: SyncState) -> impl IntoView {
    view! { <SyncBadge state /> }
}

/// "syncing · silver", "retrying · attempt 2 of 3", "failed", …
pub fn badge_text(s: &SyncState) -> String {
    let label = s.status.label();
    match s.status {
        SyncStatus::Syncing => match s.step {
            Some(step) => format!("{label} · {}", step.as_str()),
            None => label.to_owned(),
        },
        SyncStatus::Retrying => match (s.attempt, s.max_attempts) {
            // The next attempt is n + 1 of N.
            (Some(n), Some(max)) => format!("{label} · attempt {} of {max}", n + 1),
            _ => label.to_owned(),
        },
        // The lakehouse clean-up failed and will run again.
        SyncStatus::Deleting if s.error.is_some() => format!("{label} · lakehouse retrying"),
        _ => label.to_owned(),
    }
}

/// ", next in 12 s" for a retrying state, once the browser's clock ticks
/// (empty on the server, so hydration matches).
pub fn retry_countdown(s: &SyncState, now_ms: Option<f64>) -> String {
    if !matches!(s.status, SyncStatus::Retrying | SyncStatus::Deleting) {
        return String::new();
    }
    let (Some(at), Some(now)) = (
        s.next_retry_at.as_deref().and_then(parse_rfc3339_ms),
        now_ms,
    ) else {
        return String::new();
    };
    let secs = ((at - now) / 1000.0).ceil().max(0.0) as u64;
    if secs == 0 {
        ", retrying now".to_owned()
    } else {
        format!(", next in {secs} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SyncStep;

    fn state(status: SyncStatus) -> SyncState {
        SyncState {
            dataset_id: uuid::Uuid::nil(),
            status,
            step: Some(SyncStep::Silver),
            attempt: Some(1),
            max_attempts: Some(3),
            next_retry_at: Some("2026-11-25T10:00:10.000Z".to_owned()),
            error: Some("cannot reach the MCP server".to_owned()),
            bronze_table: None,
            silver_table: None,
            last_sync_at: None,
        }
    }

    #[test]
    fn badges_say_the_step_and_the_attempt() {
        assert_eq!(badge_text(&state(SyncStatus::Syncing)), "syncing · silver");
        assert_eq!(
            badge_text(&state(SyncStatus::Retrying)),
            "retrying · attempt 2 of 3"
        );
        assert_eq!(badge_text(&state(SyncStatus::Synced)), "synced");
        assert_eq!(badge_text(&state(SyncStatus::LocalOnly)), "local only");
        assert_eq!(
            badge_text(&state(SyncStatus::Deleting)),
            "deleting · lakehouse retrying"
        );
        let clean = SyncState {
            error: None,
            ..state(SyncStatus::Deleting)
        };
        assert_eq!(badge_text(&clean), "deleting");
    }

    #[test]
    fn the_countdown_appears_only_with_a_clock() {
        let s = state(SyncStatus::Retrying);
        let at = parse_rfc3339_ms("2026-11-25T10:00:10.000Z").unwrap();
        assert_eq!(retry_countdown(&s, None), "");
        assert_eq!(retry_countdown(&s, Some(at - 4_200.0)), ", next in 5 s");
        assert_eq!(retry_countdown(&s, Some(at + 1.0)), ", retrying now");
        assert_eq!(retry_countdown(&state(SyncStatus::Synced), Some(at)), "");
    }
}
