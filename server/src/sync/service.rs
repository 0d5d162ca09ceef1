//! `DatasetSync`, the Restate virtual object keyed by dataset id. Its
//! exclusive `sync` handler runs the seed's steps 2–9 as journaled actions:
//!
//! 1. The plan: the dataset row and the retry policy, which the dispatcher
//!    sends in the input (journaled with it), so a replay sees the same plan
//!    even if the configuration changed. A call without it (an operator's
//!    own) reads them in a first journaled action, `load_dataset`.
//! 2. `sync_to_bronze`: MCP `create_dataset` (downloads the Parquet file from
//!    this server's internal endpoint).
//! 3. `transform_to_silver`: MCP `transform_to_silver`; its success is
//!    recorded with step 4, `update_dataset_metadata` (table names,
//!    `synced`, when), in one Postgres transaction inside the same journaled
//!    action.
//!
//! Its exclusive `delete` handler removes a dataset (see [`crate::removal`]):
//! MCP `drop_dataset`, retried with backoff until it succeeds; the local
//! Parquet file; then the row. Being exclusive, it runs after any sync of the
//! dataset already queued or running, and a sync that starts after it finds
//! no dataset.
//!
//! Each step attempt is one journaled action that also records the attempt
//! through the [`Ledger`] (status and timeline, idempotent writes). A step
//! that fails with a retryable error is recorded as `retrying` first, then
//! waits on a durable timer (the handler is suspended, nothing is held) and
//! tries again, up to the configured attempts. A terminal error (bad data,
//! invalid input) fails the sync at once.

use super::{
    ledger::{Attempt, Ledger, StepStart},
    metrics::SyncMetrics,
};
use app::{
    domain::{StepOutcome, SyncStatus, SyncStep},
    model::SyncState,
};
use contract::{
    client::{CallError, McpClient},
    tools::{
        CreateDataset, CreateDatasetArgs, DropArgs, DropDataset, DropResult, TransformArgs,
        TransformToSilver,
    },
};
use restate_sdk::prelude::*;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::{future::Future, sync::Arc, time::Duration, time::Instant};
use uuid::Uuid;

/// The K/V key holding the object's last sync record (`restate kv get DatasetSync <id>`).
pub const RECORD_KEY: &str = "sync";

/// Everything the handlers need; shared by every invocation.
pub struct SyncDeps {
    pub ledger: Ledger,
    pub mcp: McpClient,
    /// Base URL of this server's internal listener as the MCP server reaches it.
    pub internal_base_url: String,
    /// Signs each attempt's download URL for the dataset's tenant.
    pub signer: crate::auth::signed_url::UrlSigner,
    pub retry_attempts: u32,
    pub retry_interval: Duration,
    pub metrics: Arc<SyncMetrics>,
    /// `DATA_STORAGE_PATH/datasets`, where `delete` removes the local file.
    pub datasets_dir: std::path::PathBuf,
}

/// The longest wait between two attempts of a delete's lakehouse clean-up.
const DELETE_MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The wait before a delete's clean-up attempt `attempt + 1`: the retry
/// interval, doubling, at most [`DELETE_MAX_BACKOFF`] (or the interval, if longer).
fn delete_backoff(interval: Duration, attempt: u32) -> Duration {
    let doubled = interval.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    doubled.min(DELETE_MAX_BACKOFF.max(interval))
}

/// Read once per delete by its first journaled action.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DeletePlan {
    /// `None`: the row is gone already (a repeated delete) or not being deleted.
    tenant_id: Option<Uuid>,
    retry_interval_ms: u64,
}

/// The body of a `sync` call: which outbox request this run serves, and
/// what to sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncInput {
    pub request_id: Uuid,
    /// The dataset and the retry policy, as the dispatcher read them when it
    /// sent the request: journaled with the input, so a replay sees the same
    /// plan, and the sync needs no action of its own to read them. Without
    /// it (an operator's own call, a request sent by an older server) the
    /// handler reads them in its first journaled action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// The object's record of its last (or current) sync, kept in Restate's K/V
/// store for operators, and the handler's result: the same [`SyncState`] the
/// UI shows, plus the request it serves. The catalogue in Postgres is the
/// source of truth for the UI; this is what Restate itself knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SyncRecord {
    pub request_id: Uuid,
    #[serde(flatten)]
    pub state: SyncState,
}

/// Why a step attempt did not succeed, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub retryable: bool,
    pub message: String,
}

impl From<CallError> for StepFailure {
    fn from(e: CallError) -> Self {
        Self {
            retryable: e.retryable(),
            message: super::failure::call_failure(&e),
        }
    }
}

/// What the workflow needs to know about a dataset, read once per sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetRef {
    pub tenant_id: Uuid,
    pub name: String,
    pub schema: serde_json::Value,
    /// The version this sync brings to the lakehouse (journals written
    /// before versions existed replay as version 1).
    #[serde(default = "first_version")]
    pub version: i32,
    /// The first version whose rows silver holds (the latest replace).
    #[serde(default = "first_version")]
    pub base_version: i32,
}

fn first_version() -> i32 {
    1
}

/// What a sync does and how often it tries: in its input, or read once by
/// its first journaled action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub dataset: Option<DatasetRef>,
    pub max_attempts: u32,
    pub retry_interval_ms: u64,
}

/// The name of a step's `ctx.run` in the Restate journal.
fn run_name(step: SyncStep) -> &'static str {
    match step {
        SyncStep::Queued => "queued",
        SyncStep::Bronze => "sync_to_bronze",
        SyncStep::Silver => "transform_to_silver",
        SyncStep::Metadata => "update_dataset_metadata",
    }
}

/// The object's key: the dataset id.
fn dataset_key(key: &str) -> Result<Uuid, TerminalError> {
    key.parse()
        .map_err(|_| TerminalError::new("the DatasetSync key must be a dataset id (a UUID)"))
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
    ) -> Result<Json<SyncRecord>, HandlerError> {
        let dataset_id = dataset_key(ctx.key())?;
        let SyncInput { request_id, plan } = input.into_inner();

        let deps = self.deps.clone();
        let plan = match plan {
            Some(plan) => {
                SyncMetrics::inc(&deps.metrics.syncs_started);
                plan
            }
            None => ctx
                .run(move || async move {
                    let dataset = deps.ledger.load_dataset(dataset_id).await?;
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
                .into_inner(),
        };
        let Some(dataset) = plan.dataset.clone() else {
            return Err(
                TerminalError::new(format!("dataset {dataset_id} no longer exists")).into(),
            );
        };

        let mut job = Job {
            ctx: &ctx,
            tenant_id: dataset.tenant_id,
            dataset_id,
            plan,
            record: SyncRecord {
                request_id,
                state: SyncState {
                    dataset_id,
                    status: SyncStatus::Syncing,
                    step: None,
                    attempt: None,
                    max_attempts: None,
                    next_retry_at: None,
                    error: None,
                    bronze_table: None,
                    silver_table: None,
                    last_sync_at: None,
                },
            },
        };

        let tenant_id = dataset.tenant_id;
        let (version, base_version) = (dataset.version, dataset.base_version);
        let bronze_args = CreateDatasetArgs {
            tenant_id: tenant_id.to_string(),
            dataset_id: dataset_id.to_string(),
            dataset_name: dataset.name,
            // Signed afresh by each attempt (the link expires).
            parquet_url: String::new(),
            schema: dataset.schema,
            version: None,
        };
        // Bronze keeps every version: each is staged once (MCP skips a
        // version it already holds, so a retry or a re-sync adds no rows),
        // oldest first, the current one last.
        let bronze = self
            .run_step(&mut job, SyncStep::Bronze, move |deps, _| {
                let args = bronze_args.clone();
                async move {
                    let mut last = None;
                    for v in 1..=version {
                        let mut args = args.clone();
                        args.version = u32::try_from(v).ok();
                        args.parquet_url =
                            deps.signer
                                .sign(&deps.internal_base_url, tenant_id, dataset_id, v);
                        last = Some(deps.mcp.call::<CreateDataset>(&args).await?);
                    }
                    last.ok_or_else(|| StepFailure {
                        retryable: false,
                        message: format!("the dataset has no version to sync ({version})"),
                    })
                }
            })
            .await?;
        job.record.state.bronze_table = Some(bronze.bronze_table.clone());

        // Silver holds the versions since the last replace: the current
        // one alone after a replace, every one after appends. Its success
        // ends the sync: the same transaction records the tables and
        // `synced` (the seed's update_dataset_metadata).
        let silver_args = TransformArgs {
            tenant_id: dataset.tenant_id.to_string(),
            bronze_table: bronze.bronze_table.clone(),
            version: u32::try_from(version).ok(),
            base_version: u32::try_from(base_version).ok(),
        };
        let silver = self
            .run_step(&mut job, SyncStep::Silver, move |deps, a| {
                let args = silver_args.clone();
                async move {
                    let silver = deps.mcp.call::<TransformToSilver>(&args).await?;
                    // A newer sync may have built silver already (this one
                    // then changed nothing): the ledger records what silver
                    // holds, never less.
                    let held = i32::try_from(silver.version)
                        .ok()
                        .filter(|held| *held > 0)
                        .map_or(version, |held| held.max(version));
                    let detail = serde_json::to_value(&silver).map_err(|e| StepFailure {
                        retryable: false,
                        message: super::failure::internal_failure("recording silver", &e),
                    })?;
                    let started = Instant::now();
                    deps.ledger
                        .finish_sync(a, &detail, &args.bronze_table, &silver.silver_table, held)
                        .await
                        .map_err(|e| StepFailure {
                            retryable: true,
                            message: super::failure::internal_failure("updating the dataset", &e),
                        })?;
                    deps.metrics
                        .observe_step(SyncStep::Metadata, started.elapsed());
                    SyncMetrics::inc(&deps.metrics.syncs_succeeded);
                    Ok(silver)
                }
            })
            .await?;
        job.record.state.silver_table = Some(silver.silver_table.clone());

        let mut record = job.record;
        record.state.status = SyncStatus::Synced;
        record.state.step = None;
        record.state.attempt = None;
        record.state.max_attempts = None;
        ctx.set(RECORD_KEY, Json(record.clone()));
        Ok(Json(record))
    }

    /// Deletes the dataset named by the key, which the ledger marked
    /// `deleting`: drops its lakehouse tables and files (retried until done),
    /// removes its local file, then its row. Nothing is lost if MCP, the
    /// lakehouse or this process is down meanwhile: the journal resumes it.
    #[handler]
    async fn delete(
        &self,
        ctx: ObjectContext<'_>,
        input: Json<SyncInput>,
    ) -> Result<(), HandlerError> {
        let dataset_id = dataset_key(ctx.key())?;
        let request_id = input.into_inner().request_id;
        let deps = self.deps.clone();
        let plan = ctx
            .run(move || async move {
                Ok(Json(DeletePlan {
                    tenant_id: deps.ledger.load_deletion(dataset_id).await?,
                    retry_interval_ms: deps.retry_interval.as_millis() as u64,
                }))
            })
            .name("load_deletion")
            .retry_policy(store_retry_policy())
            .await?
            .into_inner();
        let Some(tenant_id) = plan.tenant_id else {
            tracing::info!(dataset = %dataset_id, %request_id, "nothing to delete");
            return Ok(());
        };
        let interval = Duration::from_millis(plan.retry_interval_ms);
        let args = DropArgs {
            tenant_id: tenant_id.to_string(),
            dataset_id: dataset_id.to_string(),
        };
        let mut attempt = 0u32;
        let dropped = loop {
            attempt += 1;
            let (deps, args) = (self.deps.clone(), args.clone());
            let wait = delete_backoff(interval, attempt);
            let outcome = ctx
                .run(move || async move {
                    let result: Result<DropResult, StepFailure> = deps
                        .mcp
                        .call::<DropDataset>(&args)
                        .await
                        .map_err(StepFailure::from);
                    if let Err(failure) = &result {
                        let next = failure
                            .retryable
                            .then(|| time::OffsetDateTime::now_utc() + wait);
                        deps.ledger
                            .delete_failed(dataset_id, &failure.message, attempt, next)
                            .await?;
                    }
                    Ok(Json(result))
                })
                .name("drop_dataset")
                .retry_policy(store_retry_policy())
                .await?
                .into_inner();
            match outcome {
                Ok(dropped) => break dropped,
                Err(failure) if failure.retryable => {
                    tracing::warn!(dataset = %dataset_id, attempt, error = %failure.message,
                        "the lakehouse clean-up of a deleted dataset will be retried");
                    ctx.sleep(wait).await?;
                }
                // It stays `deleting` (hidden) with the reason; deleting
                // again asks for another try.
                Err(failure) => return Err(TerminalError::new(failure.message).into()),
            }
        };
        tracing::info!(dataset = %dataset_id, tables = ?dropped.dropped_tables,
            files = dropped.removed_files, "lakehouse clean-up done");

        let deps = self.deps.clone();
        ctx.run(move || async move {
            // Retried until it works (an operator sees why in the CLI).
            crate::storage::remove_dataset_file(&deps.datasets_dir, dataset_id).await?;
            Ok(())
        })
        .name("remove_local_file")
        .retry_policy(store_retry_policy())
        .await?;
        let deps = self.deps.clone();
        ctx.run(move || async move {
            deps.ledger.finish_delete(dataset_id).await?;
            Ok(())
        })
        .name("delete_row")
        .retry_policy(store_retry_policy())
        .await?;
        ctx.clear_all();
        Ok(())
    }

    /// The last sync's record, readable while a sync runs.
    #[handler]
    async fn status(
        &self,
        ctx: SharedObjectContext<'_>,
    ) -> Result<Json<Option<SyncRecord>>, HandlerError> {
        let record = ctx.get::<Json<SyncRecord>>(RECORD_KEY).await?;
        Ok(Json(record.map(Json::into_inner)))
    }
}

/// One sync in progress: its context, ids, plan and the record kept in K/V.
struct Job<'a, 'ctx> {
    ctx: &'a ObjectContext<'ctx>,
    tenant_id: Uuid,
    dataset_id: Uuid,
    plan: Plan,
    record: SyncRecord,
}

impl Job<'_, '_> {
    fn save(&mut self, status: SyncStatus, error: Option<String>) {
        self.record.state.status = status;
        if error.is_some() {
            self.record.state.error = error;
        }
        self.ctx.set(RECORD_KEY, Json(self.record.clone()));
    }
}

/// The outcome an attempt's timeline row recorded, as the attempt's result;
/// `None` if it cannot stand for one (an output that no longer reads), so
/// the attempt runs again.
fn recorded_outcome<T: DeserializeOwned>(
    outcome: StepOutcome,
    error: Option<String>,
    detail: Option<serde_json::Value>,
) -> Option<Result<T, StepFailure>> {
    let failure = |retryable| {
        Some(Err(StepFailure {
            retryable,
            message: error.clone().unwrap_or_default(),
        }))
    };
    match outcome {
        StepOutcome::Succeeded => serde_json::from_value(detail.unwrap_or(serde_json::Value::Null))
            .ok()
            .map(Ok),
        StepOutcome::Retrying => failure(true),
        StepOutcome::Failed => failure(false),
        StepOutcome::Running => None,
    }
}

impl DatasetSync {
    /// Runs one step with its attempts; returns its output, or fails the
    /// invocation with a terminal error once the step has failed for good.
    /// `work` does one attempt's work; it is called once per attempt.
    async fn run_step<T, F, Fut>(
        &self,
        job: &mut Job<'_, '_>,
        step: SyncStep,
        work: F,
    ) -> Result<T, HandlerError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(Arc<SyncDeps>, Attempt) -> Fut,
        Fut: Future<Output = Result<T, StepFailure>> + Send + 'static,
    {
        let max_attempts = job.plan.max_attempts.max(1);
        let interval = Duration::from_millis(job.plan.retry_interval_ms);
        for attempt in 1..=max_attempts {
            let a = Attempt {
                tenant_id: job.tenant_id,
                dataset_id: job.dataset_id,
                request_id: job.record.request_id,
                step,
                attempt,
                max_attempts,
            };
            job.record.state.step = Some(step);
            job.record.state.attempt = i32::try_from(attempt).ok();
            job.record.state.max_attempts = i32::try_from(max_attempts).ok();
            job.save(SyncStatus::Syncing, None);

            // One journaled action per attempt: the ledger's writes around
            // the work run inside it (each is idempotent), so an attempt
            // costs one round trip to Restate. A failed ledger write fails
            // the action, which the SDK retries (the MCP tools are
            // idempotent too).
            let deps = self.deps.clone();
            let attempt_work = work(deps.clone(), a);
            let outcome = job
                .ctx
                .run(move || async move {
                    match deps.ledger.step_started(a).await? {
                        StepStart::Run => {}
                        StepStart::Stop => {
                            return Ok(Json(Err(StepFailure {
                                retryable: false,
                                message: "the dataset is being deleted".to_owned(),
                            })));
                        }
                        // Ended before the process died: that outcome stands.
                        StepStart::Recorded {
                            outcome,
                            error,
                            detail,
                        } => {
                            if let Some(recorded) = recorded_outcome::<T>(outcome, error, detail) {
                                return Ok(Json(recorded));
                            }
                        }
                    }
                    let started = Instant::now();
                    let result = attempt_work.await;
                    deps.metrics.observe_step(step, started.elapsed());
                    match &result {
                        // transform_to_silver closes its row as the sync ends.
                        Ok(_) if step == SyncStep::Silver => {}
                        Ok(output) => {
                            let detail = serde_json::to_value(output)?;
                            deps.ledger.step_succeeded(a, &detail).await?;
                        }
                        Err(failure) if failure.retryable && a.attempt < a.max_attempts => {
                            // Recorded before the wait begins, so the UI shows
                            // `retrying` (and when) during it.
                            let next = time::OffsetDateTime::now_utc() + interval;
                            deps.ledger.step_retrying(a, &failure.message, next).await?;
                            SyncMetrics::inc(&deps.metrics.step_retries);
                        }
                        Err(failure) => {
                            deps.ledger.step_failed(a, &failure.message).await?;
                            SyncMetrics::inc(&deps.metrics.syncs_failed);
                        }
                    }
                    Ok(Json(result))
                })
                .name(run_name(step))
                .retry_policy(store_retry_policy())
                .await;
            let outcome = match outcome {
                Ok(outcome) => outcome.into_inner(),
                // Cancelled by an operator (or killed) while the step ran.
                Err(e) => return Err(self.record_abort(job, a, e).await),
            };

            match outcome {
                Ok(output) => return Ok(output),
                Err(failure) if failure.retryable && attempt < max_attempts => {
                    job.save(SyncStatus::Retrying, Some(failure.message));
                    if let Err(e) = job.ctx.sleep(interval).await {
                        // `restate invocations cancel` during the wait.
                        return Err(self.record_abort(job, a, e).await);
                    }
                }
                Err(failure) => {
                    job.save(SyncStatus::Failed, Some(failure.message.clone()));
                    return Err(TerminalError::new(failure.message).into());
                }
            }
        }
        unreachable!("the last attempt either returns or fails")
    }

    /// The invocation ends early (an operator cancelled it): record `failed`
    /// with the reason, so the dataset does not stay `syncing`/`retrying`.
    async fn record_abort(
        &self,
        job: &mut Job<'_, '_>,
        a: Attempt,
        error: TerminalError,
    ) -> HandlerError {
        let message = format!(
            "the sync was stopped: {}",
            super::failure::scrub(error.message())
        );
        let (deps, text) = (self.deps.clone(), message.clone());
        let recorded = job
            .ctx
            .run(move || async move {
                deps.ledger.step_failed(a, &text).await?;
                SyncMetrics::inc(&deps.metrics.syncs_failed);
                Ok(())
            })
            .name("mark_stopped")
            .retry_policy(store_retry_policy())
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record a stopped sync");
        }
        job.save(SyncStatus::Failed, Some(message));
        error.into()
    }
}
