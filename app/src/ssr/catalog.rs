//! Reading the dataset catalogue in Postgres. Every query here is static and
//! checked at compile time (`.sqlx/`); every one that serves a page takes the
//! tenant explicitly. Writes belong to the server (the upload route and the
//! sync ledger).

use crate::{
    domain::{StepOutcome, SyncStatus, SyncStep},
    model::{ColumnSchema, DatasetSummary, SyncEvent, SyncState},
};
use sqlx::{types::Json, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A row of the `dataset_summaries` view (see the migrations), read whole as
/// one composite value so every query can name it in one word.
#[derive(Debug, sqlx::Type)]
#[sqlx(type_name = "dataset_summaries")]
pub struct SummaryRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: String,
    pub file_name: String,
    pub source_format: String,
    pub row_count: i64,
    pub size_bytes: i64,
    pub column_count: i64,
    pub sync_status: SyncStatus,
    pub sync_step: Option<SyncStep>,
    pub sync_attempt: Option<i32>,
    pub sync_max_attempts: Option<i32>,
    pub sync_next_retry_at: Option<OffsetDateTime>,
    pub sync_error: Option<String>,
    pub bronze_table: Option<String>,
    pub silver_table: Option<String>,
    pub last_sync_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// RFC 3339 in UTC with milliseconds (`2026-11-25T19:44:38.123Z`), as every
/// timestamp the app shows.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

impl SummaryRecord {
    pub fn sync_state(&self) -> SyncState {
        SyncState {
            dataset_id: self.id,
            status: self.sync_status,
            step: self.sync_step,
            attempt: self.sync_attempt,
            max_attempts: self.sync_max_attempts,
            next_retry_at: self.sync_next_retry_at.map(rfc3339),
            error: self.sync_error.clone(),
            bronze_table: self.bronze_table.clone(),
            silver_table: self.silver_table.clone(),
            last_sync_at: self.last_sync_at.map(rfc3339),
        }
    }
}

impl From<SummaryRecord> for DatasetSummary {
    fn from(r: SummaryRecord) -> Self {
        DatasetSummary {
            sync: r.sync_state(),
            created_at: rfc3339(r.created_at),
            id: r.id,
            name: r.name,
            file_name: r.file_name,
            source_format: r.source_format,
            row_count: r.row_count,
            column_count: r.column_count,
            size_bytes: r.size_bytes,
        }
    }
}

/// Where a page of the dataset list goes on: the datasets older than this
/// one, in the list's order (newest first, then by id). Written as
/// `<microseconds since the epoch>_<id>`, an opaque token to its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetCursor {
    pub created_at: OffsetDateTime,
    pub id: Uuid,
}

impl DatasetCursor {
    pub fn parse(token: &str) -> Option<Self> {
        let (micros, id) = token.split_once('_')?;
        let micros: i64 = micros.parse().ok()?;
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
        Some(Self {
            created_at,
            id: Uuid::parse_str(id).ok()?,
        })
    }

    pub fn token(&self) -> String {
        format!(
            "{}_{}",
            self.created_at.unix_timestamp_nanos() / 1_000,
            self.id
        )
    }
}

/// One page of the tenant's datasets, newest first.
pub struct DatasetPage {
    pub datasets: Vec<DatasetSummary>,
    /// Where the next (older) page starts, if there is one.
    pub next: Option<DatasetCursor>,
}

/// At most `limit` of the tenant's datasets older than `after` (from the
/// newest when `None`): keyset pagination on the (tenant, created_at, id)
/// index, so every page costs the same however deep it is.
pub async fn list_datasets(
    db: &PgPool,
    tenant_id: Uuid,
    after: Option<DatasetCursor>,
    limit: u32,
) -> Result<DatasetPage, sqlx::Error> {
    let rows = sqlx::query_scalar!(
        r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s
           WHERE s.tenant_id = $1
             AND ($2::timestamptz IS NULL OR (s.created_at, s.id) < ($2::timestamptz, $3::uuid))
           ORDER BY s.created_at DESC, s.id DESC
           LIMIT $4"#,
        tenant_id,
        after.map(|c| c.created_at),
        after.map(|c| c.id),
        i64::from(limit) + 1,
    )
    .fetch_all(db)
    .await?;
    let more = rows.len() > limit as usize;
    let mut datasets = Vec::with_capacity(rows.len().min(limit as usize));
    let mut next = None;
    for record in rows.into_iter().take(limit as usize) {
        next = Some(DatasetCursor {
            created_at: record.created_at,
            id: record.id,
        });
        datasets.push(record.into());
    }
    Ok(DatasetPage {
        datasets,
        next: if more { next } else { None },
    })
}

/// One dataset of the tenant with its schema, if it exists.
pub async fn find_dataset(
    db: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<(DatasetSummary, Vec<ColumnSchema>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s AS "s!: SummaryRecord", d.schema AS "schema!: Json<Vec<ColumnSchema>>"
           FROM dataset_summaries s JOIN datasets d ON d.id = s.id
           WHERE s.tenant_id = $1 AND s.id = $2"#,
        tenant_id,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.s.into(), r.schema.0)))
}

/// One dataset's sync state and its tenant, whichever tenant it is: what the
/// live-event fan-out reads for each notification.
pub async fn sync_state(db: &PgPool, id: Uuid) -> Result<Option<(Uuid, SyncState)>, sqlx::Error> {
    let row = sqlx::query_scalar!(
        r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s WHERE s.id = $1"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.tenant_id, r.sync_state())))
}

/// Datasets (of every tenant) whose row changed at or after `since`, with
/// their tenant: what a live-event listener re-reads after a gap.
pub async fn sync_states_changed_since(
    db: &PgPool,
    since: OffsetDateTime,
) -> Result<Vec<(Uuid, SyncState)>, sqlx::Error> {
    let rows = sqlx::query_scalar!(
        r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s WHERE s.updated_at >= $1"#,
        since,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.tenant_id, r.sync_state()))
        .collect())
}

/// A dataset's sync timeline, oldest first.
pub async fn sync_events(
    db: &PgPool,
    tenant_id: Uuid,
    dataset_id: Uuid,
) -> Result<Vec<SyncEvent>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, request_id, step AS "step: SyncStep", attempt, max_attempts,
                  outcome AS "outcome: StepOutcome", started_at, finished_at, next_retry_at, error,
                  (EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::bigint AS duration_ms
           FROM sync_events WHERE tenant_id = $1 AND dataset_id = $2
           ORDER BY started_at, id"#,
        tenant_id,
        dataset_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SyncEvent {
            id: r.id,
            request_id: r.request_id,
            step: r.step,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            outcome: r.outcome,
            started_at: rfc3339(r.started_at),
            finished_at: r.finished_at.map(rfc3339),
            duration_ms: r.duration_ms,
            next_retry_at: r.next_retry_at.map(rfc3339),
            error: r.error,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        let t = time::macros::datetime!(2026-11-25 21:44:38.123456 +02:00);
        assert_eq!(rfc3339(t), "2026-11-25T19:44:38.123Z");
    }
}
