//! `DatasetSync`, the Restate virtual object keyed by dataset id. Its
//! exclusive `sync` handler runs the seed's steps 2–9 as journaled actions:
//!
//! 1. `load_dataset`: the dataset row and the retry policy, read once, so a
//!    replay sees the same plan even if the configuration changed.
//! 2. `sync_to_bronze`: MCP `create_dataset` (downloads the Parquet file from
//!    this server's internal endpoint).
//! 3. `transform_to_silver`: MCP `transform_to_silver`.
//! 4. `update_dataset_metadata`: Postgres (table names, `synced`, when).
//!
//! Each step attempt is one journaled action that also keeps
//! `datasets.sync_status` and the `sync_events` timeline current (idempotent
//! writes). A step that fails with a retryable error is recorded as `retrying`
//! first, then waits on a durable timer (the handler is suspended, nothing is
//! held) and tries again, up to the configured attempts. A terminal error (bad
//! data, invalid input) fails the sync at once.

use super::{
    mcp::{McpClient, StepFailure},
    metrics::SyncMetrics,
    store::{Attempt, DatasetRef, Step, SyncStore},
};
use restate_sdk::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::{sync::Arc, time::Duration, time::Instant};
use uuid::Uuid;

/// The K/V key holding the object's last sync state (`restate kv get DatasetSync <id>`).
pub const STATE_KEY: &str = "sync";

/// Everything the handlers need; shared by every invocation.
pub struct SyncDeps {
    pub store: SyncStore,
    pub mcp: McpClient,
    /// Base URL of this server as the MCP server reaches it.
    pub internal_base_url: String,
    pub retry_attempts: u32,
    pub retry_interval: Duration,
    pub metrics: Arc<SyncMetrics>,
}

/// The body of a `sync` call: which outbox request this run serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncInput {
    pub request_id: Uuid,
}

/// The object's state and the handler's result.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SyncState {
    pub request_id: Option<Uuid>,
    /// syncing | retrying | synced | failed
    pub status: String,
    pub step: Option<String>,
    pub attempt: Option<u32>,
    pub max_attempts: Option<u32>,
    pub bronze_table: Option<String>,
    pub silver_table: Option<String>,
    pub error: Option<String>,
}

/// Read once per sync by the first journaled action.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    dataset: Option<DatasetRef>,
    max_attempts: u32,
    retry_interval_ms: u64,
}

/// Journaled actions that write to Postgres retry until it answers; the
/// writes are idempotent.
fn store_retry_policy() -> RunRetryPolicy {
    RunRetryPolicy::new()
        .initial_delay(Duration::from_millis(200))
        .exponentiation_factor(2.0)
        .max_delay(Duration::from_secs(30))
}

pub struct DatasetSync {
    deps: Arc<SyncDeps>,
}

impl DatasetSync {
    pub fn new(deps: Arc<SyncDeps>) -> Self {
        Self { deps }
    }
}

#[restate_sdk::object]
impl DatasetSync {
    /// Syncs the dataset named by the key to bronze and silver, then records
    /// the result. Exclusive: syncs of one dataset run one after another.
    #[handler]
    async fn sync(
        &self,
        ctx: ObjectContext<'_>,
        input: Json<SyncInput>,
    ) -> Result<Json<SyncState>, HandlerError> {
        let dataset_id: Uuid = ctx
            .key()
            .parse()
            .map_err(|_| TerminalError::new("the DatasetSync key must be a dataset id (a UUID)"))?;
        let request_id = input.into_inner().request_id;

        let deps = self.deps.clone();
        let plan = ctx
            .run(move || async move {
                let dataset = deps.store.load_dataset(dataset_id).await?;
                if dataset.is_some() {
                    SyncMetrics::inc(&deps.metrics.syncs_started);
                }
                Ok(Json(Plan {
                    dataset,
                    max_attempts: deps.retry_attempts,
                    retry_interval_ms: deps.retry_interval.as_millis() as u64,
                }))
            })
            .name("load_dataset")
            .retry_policy(store_retry_policy())
            .await?
            .into_inner();
        let Some(dataset) = plan.dataset.clone() else {
            return Err(
                TerminalError::new(format!("dataset {dataset_id} no longer exists")).into(),
            );
        };

        let mut state = SyncState {
            request_id: Some(request_id),
            status: "syncing".to_owned(),
            ..SyncState::default()
        };
        let job = Job {
            dataset_id,
            request_id,
            tenant_id: dataset.tenant_id,
            plan,
        };

        let bronze_args = json!({
            "tenant_id": dataset.tenant_id.to_string(),
            "dataset_id": dataset_id.to_string(),
            "dataset_name": dataset.name,
            "parquet_url": format!(
                "{}/internal/storage/datasets/{dataset_id}.parquet",
                self.deps.internal_base_url
            ),
            "schema": dataset.schema,
            // The Parquet file never changes after upload, so a re-sync is
            // the same version: same table, no duplicated rows.
            "version": 1,
        });
        let bronze = self
            .run_step(&ctx, &job, Step::Bronze, bronze_args, &mut state)
            .await?;
        let bronze_table = output_str(&bronze, "bronze_table")?;
        state.bronze_table = Some(bronze_table.clone());

        let silver_args = json!({
            "tenant_id": dataset.tenant_id.to_string(),
            "bronze_table": bronze_table,
        });
        let silver = self
            .run_step(&ctx, &job, Step::Silver, silver_args, &mut state)
            .await?;
        let silver_table = output_str(&silver, "silver_table")?;
        state.silver_table = Some(silver_table.clone());

        let metadata_args = json!({"bronze_table": bronze_table, "silver_table": silver_table});
        self.run_step(&ctx, &job, Step::Metadata, metadata_args, &mut state)
            .await?;

        state.status = "synced".to_owned();
        state.step = None;
        state.attempt = None;
        state.max_attempts = None;
        ctx.set(STATE_KEY, Json(state.clone()));
        Ok(Json(state))
    }

    /// The last sync's state, readable while a sync runs.
    #[handler]
    async fn status(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Option<SyncState>>, HandlerError> {
        let state = ctx.get::<Json<SyncState>>(STATE_KEY).await?;
        Ok(Json(state.map(Json::into_inner)))
    }
}

struct Job {
    dataset_id: Uuid,
    request_id: Uuid,
    tenant_id: Uuid,
    plan: Plan,
}

fn output_str(output: &Value, field: &str) -> Result<String, HandlerError> {
    output
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| TerminalError::new(format!("the MCP result has no {field}")).into())
}

impl DatasetSync {
    /// Runs one step with its attempts; returns its output, or fails the
    /// invocation with a terminal error once the step has failed for good.
    async fn run_step(
        &self,
        ctx: &ObjectContext<'_>,
        job: &Job,
        step: Step,
        args: Value,
        state: &mut SyncState,
    ) -> Result<Value, HandlerError> {
        let max_attempts = job.plan.max_attempts.max(1);
        for attempt in 1..=max_attempts {
            let a = Attempt {
                dataset_id: job.dataset_id,
                request_id: job.request_id,
                step,
                attempt,
                max_attempts,
            };
            state.status = "syncing".to_owned();
            state.step = Some(step.as_str().to_owned());
            state.attempt = Some(attempt);
            state.max_attempts = Some(max_attempts);
            ctx.set(STATE_KEY, Json(state.clone()));

            // One journaled action per attempt: the status writes around the
            // work run inside it (each is idempotent), so an attempt costs one
            // round trip to Restate. A failed status write fails the action,
            // which the SDK retries (the MCP tools are idempotent too).
            let interval = Duration::from_millis(job.plan.retry_interval_ms);
            let (deps, step_args, tenant_id) = (self.deps.clone(), args.clone(), job.tenant_id);
            let outcome = ctx
                .run(move || async move {
                    deps.store.step_started(tenant_id, a).await?;
                    let started = Instant::now();
                    let result = execute(&deps, a, step_args).await;
                    deps.metrics.observe_step(step, started.elapsed());
                    match &result {
                        // update_dataset_metadata closes its own timeline row.
                        Ok(_) if step == Step::Metadata => {}
                        Ok(output) => deps.store.step_succeeded(a, output).await?,
                        Err(failure) if failure.retryable && a.attempt < a.max_attempts => {
                            // Recorded before the wait begins, so the UI shows
                            // `retrying` (and when) during it.
                            let next = time::OffsetDateTime::now_utc() + interval;
                            deps.store.step_retrying(a, &failure.message, next).await?;
                            SyncMetrics::inc(&deps.metrics.step_retries);
                        }
                        Err(failure) => {
                            deps.store.step_failed(a, &failure.message).await?;
                            SyncMetrics::inc(&deps.metrics.syncs_failed);
                        }
                    }
                    Ok(Json(result))
                })
                .name(step.run_name())
                .retry_policy(store_retry_policy())
                .await;
            let outcome = match outcome {
                Ok(outcome) => outcome.into_inner(),
                // Cancelled by an operator (or killed) while the step ran.
                Err(e) => return Err(self.record_abort(ctx, a, e, state).await),
            };

            match outcome {
                Ok(output) => return Ok(output),
                Err(failure) if failure.retryable && attempt < max_attempts => {
                    state.status = "retrying".to_owned();
                    state.error = Some(failure.message);
                    ctx.set(STATE_KEY, Json(state.clone()));
                    if let Err(e) = ctx.sleep(interval).await {
                        // `restate invocations cancel` during the wait.
                        return Err(self.record_abort(ctx, a, e, state).await);
                    }
                }
                Err(failure) => {
                    state.status = "failed".to_owned();
                    state.error = Some(failure.message.clone());
                    ctx.set(STATE_KEY, Json(state.clone()));
                    return Err(TerminalError::new(failure.message).into());
                }
            }
        }
        unreachable!("the last attempt either returns or fails")
    }
}

impl DatasetSync {
    /// The invocation ends early (an operator cancelled it): record `failed`
    /// with the reason, so the dataset does not stay `syncing`/`retrying`.
    async fn record_abort(
        &self,
        ctx: &ObjectContext<'_>,
        a: Attempt,
        error: TerminalError,
        state: &mut SyncState,
    ) -> HandlerError {
        let message = format!("the sync was stopped: {}", error.message());
        let (deps, text) = (self.deps.clone(), message.clone());
        let recorded = ctx
            .run(move || async move {
                deps.store.step_failed(a, &text).await?;
                SyncMetrics::inc(&deps.metrics.syncs_failed);
                Ok(())
            })
            .name("mark_stopped")
            .retry_policy(store_retry_policy())
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a stopped sync");
        }
        state.status = "failed".to_owned();
        state.error = Some(message);
        ctx.set(STATE_KEY, Json(state.clone()));
        error.into()
    }
}

/// The work of one step attempt. Never panics on bad input: every problem is
/// a [`StepFailure`] that says whether retrying may help.
async fn execute(deps: &SyncDeps, a: Attempt, args: Value) -> Result<Value, StepFailure> {
    match a.step {
        Step::Bronze => deps.mcp.call("create_dataset", args).await,
        Step::Silver => deps.mcp.call("transform_to_silver", args).await,
        Step::Metadata => {
            let field = |name: &str| args.get(name).and_then(Value::as_str).unwrap_or_default();
            deps.store
                .mark_synced(a, field("bronze_table"), field("silver_table"))
                .await
                .map_err(|e| StepFailure::retryable(format!("updating the dataset failed: {e}")))?;
            SyncMetrics::inc(&deps.metrics.syncs_succeeded);
            Ok(json!({}))
        }
    }
}
