//! Small pieces shared by the pages.

use crate::domain::SyncStatus;
use leptos::prelude::*;

/// A dataset's sync status as a coloured badge.
#[component]
pub fn SyncBadge(status: SyncStatus) -> impl IntoView {
    view! {
        <span class=format!("badge badge-{}", status.as_str()) data-status=status.as_str()>
            {status.label()}
        </span>
    }
}
