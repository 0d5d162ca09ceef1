//! Reading the dataset catalogue in Postgres. Every query here is static and
//! checked at compile time (`.sqlx/`); every one that serves a page takes the
//! tenant explicitly. Writes belong to the server (the upload route and the
//! sync ledger).

use crate::{
    domain::{StepOutcome, SyncStatus, SyncStep, VersionMode},
    model::{ColumnSchema, DatasetSummary, DatasetVersion, StagedVersion, SyncEvent, SyncState},
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
    pub version: i32,
    pub synced_version: Option<i32>,
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
            version: r.version,
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

/// A dataset's versions, newest first.
pub async fn dataset_versions(
    db: &PgPool,
    tenant_id: Uuid,
    dataset_id: Uuid,
) -> Result<Vec<DatasetVersion>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT v.version, v.mode AS "mode: VersionMode", v.file_name, v.source_format,
                  v.row_count, jsonb_array_length(v.schema)::bigint AS "column_count!",
                  v.size_bytes, u.email AS "uploaded_by?", v.created_at
           FROM dataset_versions v LEFT JOIN users u ON u.id = v.uploaded_by
           WHERE v.tenant_id = $1 AND v.dataset_id = $2
           ORDER BY v.version DESC"#,
        tenant_id,
        dataset_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DatasetVersion {
            version: r.version,
            mode: r.mode,
            file_name: r.file_name,
            source_format: r.source_format,
            row_count: r.row_count,
            column_count: r.column_count,
            size_bytes: r.size_bytes,
            uploaded_by: r.uploaded_by,
            created_at: rfc3339(r.created_at),
        })
        .collect())
}

/// A file staged onto the tenant's dataset, with its schema difference.
pub async fn staged_version(
    db: &PgPool,
    tenant_id: Uuid,
    dataset_id: Uuid,
    staged_id: Uuid,
) -> Result<Option<StagedVersion>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT s.id, s.file_name, s.source_format, s.row_count, s.size_bytes, s.created_at,
                  s.schema AS "schema!: Json<Vec<ColumnSchema>>",
                  d.name AS dataset_name, d.version,
                  d.schema AS "current!: Json<Vec<ColumnSchema>>"
           FROM staged_versions s JOIN datasets d ON d.id = s.dataset_id
           WHERE s.tenant_id = $1 AND s.dataset_id = $2 AND s.id = $3
             AND d.sync_status <> 'deleting'"#,
        tenant_id,
        dataset_id,
        staged_id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let diff = crate::domain::schema_diff(&r.current.0, &r.schema.0);
        StagedVersion {
            id: r.id,
            dataset_id,
            dataset_name: r.dataset_name,
            current_version: r.version,
            file_name: r.file_name,
            source_format: r.source_format,
            row_count: r.row_count,
            size_bytes: r.size_bytes,
            columns: r.schema.0,
            append_conflicts: diff.append_conflicts(),
            diff,
            created_at: rfc3339(r.created_at),
        }
    }))
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

/// A dataset as the query page sees it.
#[derive(Debug, Clone)]
pub struct QueryDataset {
    pub id: Uuid,
    pub name: String,
    pub schema: Vec<ColumnSchema>,
    pub status: crate::domain::SyncStatus,
    /// Silver holds the current version.
    pub lakehouse_current: bool,
}

/// Every dataset of the tenant the query page may read (not those being
/// deleted), oldest first: the order that decides repeated names.
pub async fn query_datasets(
    db: &PgPool,
    tenant_id: Uuid,
) -> Result<Vec<QueryDataset>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT id, name, schema AS "schema!: Json<Vec<ColumnSchema>>",
                  sync_status AS "status!: crate::domain::SyncStatus",
                  (sync_status = 'synced' AND synced_version IS NOT DISTINCT FROM version)
                    AS "lakehouse_current!"
           FROM datasets WHERE tenant_id = $1 AND sync_status <> 'deleting'
           ORDER BY created_at, id"#,
        tenant_id,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| QueryDataset {
            id: r.id,
            name: r.name,
            schema: r.schema.0,
            status: r.status,
            lakehouse_current: r.lakehouse_current,
        })
        .collect())
}

/// Queries kept per user in the query page's history.
pub const QUERY_HISTORY_KEPT: i64 = 50;

/// Records one query of the query page, and forgets the user's oldest
/// beyond [`QUERY_HISTORY_KEPT`].
pub async fn record_query(
    db: &PgPool,
    tenant_id: Uuid,
    user_id: Uuid,
    sql: &str,
    engine: crate::model::QueryEngine,
    outcome: Result<&crate::model::QueryAnswer, &str>,
) -> Result<(), sqlx::Error> {
    let (ran_on, rows, elapsed, error) = match outcome {
        Ok(a) => (
            Some(a.engine.as_str()),
            i32::try_from(a.rows.len()).ok(),
            i64::try_from(a.elapsed_ms).ok(),
            None,
        ),
        Err(e) => (None, None, None, Some(e)),
    };
    let mut tx = db.begin().await?;
    // A history line is not worth a wait for the disk (a flush of the
    // write-ahead log, milliseconds here, longer than many queries): it
    // commits without one. A crash of Postgres itself may lose the last
    // lines; never a dataset.
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    sqlx::query!(
        "INSERT INTO query_history (tenant_id, user_id, sql, engine, ran_on, row_count, elapsed_ms, error)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant_id,
        user_id,
        sql,
        engine.as_str(),
        ran_on,
        rows,
        elapsed,
        error,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "DELETE FROM query_history WHERE user_id = $1 AND id NOT IN (
           SELECT id FROM query_history WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
        user_id,
        QUERY_HISTORY_KEPT,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The user's latest queries, newest first.
pub async fn query_history(
    db: &PgPool,
    user_id: Uuid,
) -> Result<Vec<crate::model::QueryHistoryEntry>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT sql, engine, ran_on, row_count, elapsed_ms, error, created_at
         FROM query_history WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        user_id,
        QUERY_HISTORY_KEPT,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| crate::model::QueryHistoryEntry {
            sql: r.sql,
            engine: crate::model::QueryEngine::parse(&r.engine).unwrap_or_default(),
            ran_on: r.ran_on,
            row_count: r.row_count.map(i64::from),
            elapsed_ms: r.elapsed_ms,
            error: r.error,
            at: rfc3339(r.created_at),
        })
        .collect())
}

/// How the datasets list is narrowed and ordered (`/?q=…&status=…&sort=…`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Part of the name, any case.
    pub search: Option<String>,
    pub status: Option<crate::domain::SyncStatus>,
    pub sort: crate::model::DatasetSort,
}

/// Where a page of a sorted, filtered list goes on: the last row's sort key
/// and id. Its token starts with the sort's letter, so a token from one
/// order is never read as another's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListCursor {
    Date(OffsetDateTime, Uuid),
    Name(String, Uuid),
    Size(i64, Uuid),
}

impl ListCursor {
    pub fn parse(token: &str, sort: crate::model::DatasetSort) -> Option<Self> {
        use crate::model::DatasetSort;
        let (key, id) = token.rsplit_once('.')?;
        let id = Uuid::parse_str(id).ok()?;
        match (sort, key.split_at_checked(1)?) {
            (DatasetSort::Date, ("d", micros)) => {
                let micros: i64 = micros.parse().ok()?;
                let at =
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()?;
                Some(Self::Date(at, id))
            }
            (DatasetSort::Size, ("s", size)) => Some(Self::Size(size.parse().ok()?, id)),
            (DatasetSort::Name, ("n", hex)) => {
                let bytes: Option<Vec<u8>> = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                    .collect();
                Some(Self::Name(String::from_utf8(bytes?).ok()?, id))
            }
            _ => None,
        }
    }

    pub fn token(&self) -> String {
        match self {
            Self::Date(at, id) => format!("d{}.{id}", at.unix_timestamp_nanos() / 1_000),
            Self::Size(size, id) => format!("s{size}.{id}"),
            Self::Name(name, id) => {
                let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
                format!("n{hex}.{id}")
            }
        }
    }
}

/// `text` for `ILIKE '%…%'`: its `\`, `%` and `_` taken literally.
fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// One page of the tenant's datasets, narrowed by `query` and in its order,
/// after `after`: keyset pagination for each order, on indexes of its own.
pub async fn browse_datasets(
    db: &PgPool,
    tenant_id: Uuid,
    query: &ListQuery,
    after: Option<ListCursor>,
    limit: u32,
) -> Result<(Vec<DatasetSummary>, Option<ListCursor>), sqlx::Error> {
    use crate::model::DatasetSort;
    let pattern = query.search.as_deref().map(like_pattern);
    let status = query.status;
    let fetch = i64::from(limit) + 1;
    let rows: Vec<SummaryRecord> = match query.sort {
        DatasetSort::Date => {
            let (at, id) = match &after {
                Some(ListCursor::Date(at, id)) => (Some(*at), Some(*id)),
                _ => (None, None),
            };
            sqlx::query_scalar!(
                r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s
                   WHERE s.tenant_id = $1
                     AND ($2::text IS NULL OR s.name ILIKE $2)
                     AND ($3::sync_status IS NULL OR s.sync_status = $3)
                     AND ($4::timestamptz IS NULL OR (s.created_at, s.id) < ($4::timestamptz, $5::uuid))
                   ORDER BY s.created_at DESC, s.id DESC
                   LIMIT $6"#,
                tenant_id,
                pattern,
                status as Option<crate::domain::SyncStatus>,
                at,
                id,
                fetch,
            )
            .fetch_all(db)
            .await?
        }
        DatasetSort::Name => {
            let (name, id) = match &after {
                Some(ListCursor::Name(name, id)) => (Some(name.clone()), Some(*id)),
                _ => (None, None),
            };
            sqlx::query_scalar!(
                r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s
                   WHERE s.tenant_id = $1
                     AND ($2::text IS NULL OR s.name ILIKE $2)
                     AND ($3::sync_status IS NULL OR s.sync_status = $3)
                     AND ($4::text IS NULL OR (lower(s.name), s.id) > ($4::text, $5::uuid))
                   ORDER BY lower(s.name), s.id
                   LIMIT $6"#,
                tenant_id,
                pattern,
                status as Option<crate::domain::SyncStatus>,
                name,
                id,
                fetch,
            )
            .fetch_all(db)
            .await?
        }
        DatasetSort::Size => {
            let (size, id) = match &after {
                Some(ListCursor::Size(size, id)) => (Some(*size), Some(*id)),
                _ => (None, None),
            };
            sqlx::query_scalar!(
                r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s
                   WHERE s.tenant_id = $1
                     AND ($2::text IS NULL OR s.name ILIKE $2)
                     AND ($3::sync_status IS NULL OR s.sync_status = $3)
                     AND ($4::bigint IS NULL OR (s.size_bytes, s.id) < ($4::bigint, $5::uuid))
                   ORDER BY s.size_bytes DESC, s.id DESC
                   LIMIT $6"#,
                tenant_id,
                pattern,
                status as Option<crate::domain::SyncStatus>,
                size,
                id,
                fetch,
            )
            .fetch_all(db)
            .await?
        }
    };
    let more = rows.len() > limit as usize;
    let mut datasets = Vec::with_capacity(rows.len().min(limit as usize));
    let mut next = None;
    for record in rows.into_iter().take(limit as usize) {
        next = Some(match query.sort {
            DatasetSort::Date => ListCursor::Date(record.created_at, record.id),
            DatasetSort::Name => ListCursor::Name(record.name.to_lowercase(), record.id),
            DatasetSort::Size => ListCursor::Size(record.size_bytes, record.id),
        });
        datasets.push(record.into());
    }
    Ok((datasets, if more { next } else { None }))
}

#[cfg(test)]
mod list_tests {
    use super::*;
    use crate::model::DatasetSort;

    #[test]
    fn cursors_round_trip_and_belong_to_their_order() {
        let id = Uuid::new_v4();
        let at = OffsetDateTime::from_unix_timestamp(1_767_225_600).unwrap();
        for (cursor, sort) in [
            (ListCursor::Date(at, id), DatasetSort::Date),
            (
                ListCursor::Name("año.2024 ünï".into(), id),
                DatasetSort::Name,
            ),
            (ListCursor::Size(12_345, id), DatasetSort::Size),
        ] {
            let token = cursor.token();
            assert_eq!(
                ListCursor::parse(&token, sort),
                Some(cursor.clone()),
                "{token}"
            );
            let other = if sort == DatasetSort::Size {
                DatasetSort::Name
            } else {
                DatasetSort::Size
            };
            assert_eq!(ListCursor::parse(&token, other), None, "{token}");
        }
        assert_eq!(ListCursor::parse("garbage", DatasetSort::Date), None);
    }

    #[test]
    fn searches_take_wildcards_literally() {
        assert_eq!(like_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
