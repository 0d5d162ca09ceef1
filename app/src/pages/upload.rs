//! Browser-side upload: XMLHttpRequest rather than `fetch`, because only XHR
//! reports upload progress.

use crate::model::{ErrorBody, UploadResponse};
use leptos::{html, prelude::*};
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{FormData, ProgressEvent, XmlHttpRequest};

/// Where the upload reports to.
pub struct Handlers {
    pub progress: WriteSignal<Option<f64>>,
    pub error: WriteSignal<Option<String>>,
    pub notice: WriteSignal<Option<String>>,
    pub on_uploaded: Callback<()>,
}

/// Fills the name field from the chosen file unless the user typed a name.
pub fn default_name_from_file(file: &NodeRef<html::Input>, name: &NodeRef<html::Input>) {
    let (Some(file), Some(name)) = (file.get_untracked(), name.get_untracked()) else {
        return;
    };
    let chosen = file.files().and_then(|files| files.get(0));
    if let Some(chosen) = chosen {
        let typed = name.value();
        let auto = name.dataset().get("auto").unwrap_or_default();
        if typed.trim().is_empty() || typed == auto {
            let suggested = crate::domain::name_from_file_name(&chosen.name()).to_owned();
            name.set_value(&suggested);
            let _ = name.dataset().set("auto", &suggested);
        }
    }
}

/// Moves a dropped file into the form's file input.
pub fn take_dropped_file(ev: &web_sys::DragEvent, file: &NodeRef<html::Input>) {
    let files = ev.data_transfer().and_then(|dt| dt.files());
    if let (Some(files), Some(input)) = (files, file.get_untracked()) {
        if files.length() > 0 {
            input.set_files(Some(&files));
        }
    }
}

fn message_from(xhr: &XmlHttpRequest) -> String {
    let status = xhr.status().unwrap_or(0);
    let body = xhr.response_text().ok().flatten().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&body) {
        Ok(err) => err.message,
        Err(_) if status == 0 => {
            "The upload was interrupted: the server could not be reached.".to_owned()
        }
        Err(_) => format!("The upload failed (HTTP {status})."),
    }
}

/// Sends the form. Progress, the outcome and errors go to `handlers`.
pub fn submit(form: &NodeRef<html::Form>, file: &NodeRef<html::Input>, handlers: Handlers) {
    let Some(form_el) = form.get_untracked() else {
        return;
    };
    let has_file = file
        .get_untracked()
        .and_then(|f| f.files())
        .is_some_and(|files| files.length() > 0);
    if !has_file {
        handlers
            .error
            .set(Some("Choose a file to upload first.".to_owned()));
        return;
    }
    let started = (|| -> Result<(), wasm_bindgen::JsValue> {
        let data = FormData::new_with_form(&form_el)?;
        let xhr = XmlHttpRequest::new()?;
        xhr.open("POST", "/api/datasets")?;
        xhr.set_request_header("Accept", "application/json")?;

        let progress = handlers.progress;
        let on_progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |ev: ProgressEvent| {
            if ev.length_computable() && ev.total() > 0.0 {
                progress.set(Some(ev.loaded() / ev.total()));
            }
        });
        xhr.upload()?
            .set_onprogress(Some(on_progress.as_ref().unchecked_ref()));

        let Handlers {
            progress,
            error,
            notice,
            on_uploaded,
        } = handlers;
        let done_xhr = xhr.clone();
        let form_for_reset = form_el.clone();
        let on_loadend = Closure::<dyn FnMut()>::new(move || {
            progress.set(None);
            let status = done_xhr.status().unwrap_or(0);
            if (200..300).contains(&status) {
                let body = done_xhr.response_text().ok().flatten().unwrap_or_default();
                match serde_json::from_str::<UploadResponse>(&body) {
                    Ok(done) => {
                        notice.set(Some(format!(
                            "Uploaded “{}”: {} rows, {} columns.",
                            done.dataset.name,
                            crate::format::thousands(done.dataset.row_count),
                            done.dataset.column_count
                        )));
                        form_for_reset.reset();
                        on_uploaded.run(());
                    }
                    Err(_) => error.set(Some("The server's answer could not be read.".to_owned())),
                }
            } else {
                error.set(Some(message_from(&done_xhr)));
            }
        });
        xhr.set_onloadend(Some(on_loadend.as_ref().unchecked_ref()));
        xhr.send_with_opt_form_data(Some(&data))?;
        progress.set(Some(0.0));
        // The browser calls these after this function returns; they are small
        // and live for one upload, so they are handed to the JS GC.
        on_progress.forget();
        on_loadend.forget();
        Ok(())
    })();
    if started.is_err() {
        error_fallback(form_el);
    }
}

/// If XHR cannot be set up, fall back to the plain form post.
fn error_fallback(form: web_sys::HtmlFormElement) {
    let _ = form.submit();
}
