//! Small pieces shared by the pages.

use crate::{domain::SyncStatus, model::SyncState};
use leptos::prelude::*;

/// A dataset's sync status as a coloured badge. It follows live changes
/// (see [`super::live`]) and starts from the state the server rendered, so
/// hydration sees the same HTML.
#[component]
pub fn SyncBadge(state: SyncState) -> impl IntoView {
    let live = super::live::use_live_sync();
    let id = state.dataset_id;
    let current = Memo::new(move |_| live.state_of(id).unwrap_or_else(|| state.clone()));
    view! {
        <span
            class=move || format!("badge badge-{}", current.read().status.as_str())
            data-status=move || current.read().status.as_str()
            data-testid="sync-badge"
            title=move || current.read().error.clone().unwrap_or_default()
            aria-live="polite"
        >
            {move || badge_text(&current.read())}
        </span>
    }
}

/// "syncing · silver", "retrying · attempt 2 of 3", "failed", …
pub fn badge_text(s: &SyncState) -> String {
    let label = s.status.label();
    match s.status {
        SyncStatus::Syncing => match &s.step {
            Some(step) => format!("{label} · {step}"),
            None => label.to_owned(),
        },
        SyncStatus::Retrying => match (s.attempt, s.max_attempts) {
            // The next attempt is n + 1 of N.
            (Some(n), Some(max)) => format!("{label} · attempt {} of {max}", n + 1),
            _ => label.to_owned(),
        },
        _ => label.to_owned(),
    }
}
