//! Live sync states in the browser: one `EventSource` on `/api/events` per
//! page, feeding a map of dataset id → latest [`SyncState`] that every island
//! on the page reads (badges, the dataset page's sync section). The pages are
//! islands (see `pages/mod.rs`), so this is page-global state rather than
//! context. It starts (the event stream and the clock) only once every island
//! has hydrated ([`super::HydrationDone`] is the last island on the page): until
//! then the map is empty and the clock unset, so every island renders the
//! state the server gave it and hydration matches the server's HTML.

use crate::model::{LiveEvent, SyncState};
use leptos::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

#[derive(Clone, Copy)]
pub struct LiveSync {
    /// Latest state per dataset, with a revision bumped on every event (also
    /// for timeline-only changes).
    states: RwSignal<HashMap<Uuid, (u64, SyncState)>>,
    /// Milliseconds since the epoch, ticking once a second in the browser
    /// (`None` on the server): for "next retry in …" and "… ago".
    now_ms: RwSignal<Option<f64>>,
    /// Bumped after each upload from this page, so the list fetches again.
    uploads: RwSignal<u64>,
    /// Bumped when a dataset appears (a status event about one the page has
    /// not seen) or is removed, so lists fetch again.
    membership: RwSignal<u64>,
    /// Datasets deleted while the page was open.
    removed: RwSignal<std::collections::HashSet<Uuid>>,
}

impl LiveSync {
    fn new() -> Self {
        Self {
            states: RwSignal::new(HashMap::new()),
            now_ms: RwSignal::new(None),
            uploads: RwSignal::new(0),
            membership: RwSignal::new(0),
            removed: RwSignal::new(Default::default()),
        }
    }

    pub fn state_of(&self, id: Uuid) -> Option<SyncState> {
        self.states.with(|m| m.get(&id).map(|(_, s)| s.clone()))
    }

    /// Changes whenever an event about the dataset arrives.
    pub fn revision_of(&self, id: Uuid) -> u64 {
        self.states.with(|m| m.get(&id).map_or(0, |(rev, _)| *rev))
    }

    pub fn now_ms(&self) -> Option<f64> {
        self.now_ms.get()
    }

    /// Changes after every upload made from this page.
    pub fn uploads(&self) -> u64 {
        self.uploads.get()
    }

    pub fn uploaded(&self) {
        self.uploads.update(|n| *n += 1);
    }

    /// Changes whenever a dataset of the tenant appears or is removed.
    pub fn membership(&self) -> u64 {
        self.membership.get()
    }

    /// Whether the dataset was deleted while the page was open.
    pub fn is_removed(&self, id: Uuid) -> bool {
        self.removed.with(|r| r.contains(&id))
    }

    #[cfg_attr(not(feature = "hydrate"), expect(dead_code))]
    fn apply(&self, event: LiveEvent) {
        match event {
            LiveEvent::Snapshot { seq, states } => {
                self.states.update(|m| {
                    for s in states {
                        m.insert(s.dataset_id, (seq, s));
                    }
                });
                // Datasets may have come or gone between the page's render
                // and this (re)connection, with no event to say so: lists
                // fetch their page again.
                self.membership.update(|n| *n += 1);
            }
            LiveEvent::Status { seq, state } => {
                let id = state.dataset_id;
                let new = self
                    .states
                    .try_update(|m| m.insert(id, (seq, state)).is_none())
                    .unwrap_or(false);
                if new {
                    self.membership.update(|n| *n += 1);
                }
            }
            LiveEvent::Removed { dataset_id, .. } => {
                // Its last state stays (so nothing about it fetches again);
                // badges read `removed`.
                self.removed.update(|r| {
                    r.insert(dataset_id);
                });
                self.membership.update(|n| *n += 1);
            }
        }
    }
}

/// The page's live map: in the browser one per page, on the server a fresh
/// empty one.
pub fn use_live_sync() -> LiveSync {
    #[cfg(feature = "hydrate")]
    {
        thread_local! {
            static LIVE: LiveSync = {
                // Owned by a root of its own that lives as long as the page,
                // not by whichever island asked first.
                let owner = Owner::new_root(None);
                let live = owner.with(LiveSync::new);
                std::mem::forget(owner);
                live
            };
        }
        LIVE.with(|live| *live)
    }
    #[cfg(not(feature = "hydrate"))]
    LiveSync::new()
}

/// Connects the event stream and starts the clock (once every island has hydrated).
#[cfg(feature = "hydrate")]
pub fn start() {
    browser::connect(use_live_sync());
}

#[cfg(feature = "hydrate")]
mod browser {
    use super::LiveSync;
    use crate::model::LiveEvent;
    use leptos::prelude::*;
    use wasm_bindgen::{closure::Closure, JsCast};
    use web_sys::{EventSource, MessageEvent};

    pub fn connect(live: LiveSync) {
        let Ok(source) = EventSource::new("/api/events") else {
            return;
        };
        // The browser reconnects by itself; each connection starts with a
        // snapshot, so nothing is missed across a gap.
        for kind in ["snapshot", "status", "removed"] {
            let on_event = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let Some(text) = ev.data().as_string() else {
                    return;
                };
                match serde_json::from_str::<LiveEvent>(&text) {
                    Ok(event) => live.apply(event),
                    Err(e) => leptos::logging::warn!("unreadable live event: {e}"),
                }
            });
            let _ =
                source.add_event_listener_with_callback(kind, on_event.as_ref().unchecked_ref());
            // Lives as long as the page.
            on_event.forget();
        }
        std::mem::forget(source);

        let tick = Closure::<dyn FnMut()>::new(move || live.now_ms.set(Some(js_sys::Date::now())));
        live.now_ms.set(Some(js_sys::Date::now()));
        if let Some(window) = web_sys::window() {
            let _ = window.set_interval_with_callback_and_timeout_and_arguments_0(
                tick.as_ref().unchecked_ref(),
                1000,
            );
        }
        tick.forget();
    }
}
