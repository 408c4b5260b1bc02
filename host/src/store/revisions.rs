//! Storage of policy revisions, their gate components, reviewers' sign-offs,
//! the activation history, and the recorded decision inputs a candidate
//! policy is replayed against.

use std::collections::HashMap;

use serde::Serialize;
use sqlx::FromRow;

use super::StoreError;

/// A policy revision as stored: the manifest text and the gates it pins.
#[derive(Debug, Clone, FromRow)]
pub struct Revision {
    /// `rev_` and the first 16 hex digits of the manifest's sha256.
    pub id: String,
    /// The policy's name.
    pub name: String,
    /// The manifest, as written.
    pub manifest: String,
    /// The gates as JSON: name, digest and mode of each, in chain order.
    pub gates: String,
    /// Who first stored it: `operator`, or the host file it was read from.
    pub created_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// One activation: which revision became active, how, by whom and why.
#[derive(Debug, Clone, FromRow)]
pub struct Activation {
    /// Position in the history; the highest is the active revision.
    pub seq: i64,
    /// The revision activated.
    pub revision_id: String,
    /// `bootstrap`, `reload` (the host file, on SIGHUP), `upload` or `rollback`.
    pub action: String,
    /// Who activated it.
    pub actor: String,
    /// Why, in their words.
    pub note: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// An activation with the revision it activated: one entry of the history.
#[derive(Debug, Clone, FromRow)]
pub struct HistoryRow {
    /// The activation.
    #[sqlx(flatten)]
    pub activation: Activation,
    /// The policy's name.
    pub name: String,
    /// The manifest, as written.
    pub manifest: String,
    /// The gates as JSON: name, digest and mode of each, in chain order.
    pub gates: String,
}

/// A reviewer's sign-off of one gate component.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct SignOff {
    /// The component's sha256.
    pub digest: String,
    /// The reviewer (`rvw_…`).
    pub reviewer_id: String,
    /// What they checked.
    pub note: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A recorded decision's input, for replay.
#[derive(Debug, Clone, FromRow)]
pub struct ReplayInput {
    /// Position in the log: the replay cursor.
    pub seq: i64,
    /// `dec_…`.
    pub id: String,
    /// The outcome it had.
    pub outcome: String,
    /// The revision it ran on.
    pub revision: String,
    /// sha256 of `request`, as recorded in the hash chain.
    pub request_digest: String,
    /// The gate request as canonical JSON.
    pub request: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Policy revisions and what they need, on either backend.
pub trait RevisionStore {
    /// Holds components by digest; a component already held is left as it is.
    fn hold_components(&self, components: &HashMap<String, Vec<u8>>) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The held components among `digests`.
    fn components(&self, digests: &[String]) -> impl Future<Output = Result<HashMap<String, Vec<u8>>, StoreError>> + Send;
    /// Stores `revision` unless stored already, and activates it, auditing
    /// who did; with `only_first`, only when nothing was ever activated.
    /// Returns the activation's `seq` when it was activated.
    fn activate(
        &self,
        revision: &Revision,
        action: &str,
        actor: &str,
        note: &str,
        only_first: bool,
    ) -> impl Future<Output = Result<Option<i64>, StoreError>> + Send;
    /// A stored revision.
    fn revision(&self, id: &str) -> impl Future<Output = Result<Option<Revision>, StoreError>> + Send;
    /// Activations newest first, below `before` (a `seq`; `i64::MAX` for the newest).
    fn activations(&self, before: i64, limit: i64) -> impl Future<Output = Result<Vec<Activation>, StoreError>> + Send;
    /// Activations with their revisions, newest first, below `before`.
    fn history(&self, before: i64, limit: i64) -> impl Future<Output = Result<Vec<HistoryRow>, StoreError>> + Send;
    /// Records a reviewer's sign-off of a held component; `false` when they had signed it off already.
    fn sign_off(&self, digest: &str, reviewer_id: &str, note: &str) -> impl Future<Output = Result<(SignOff, bool), StoreError>> + Send;
    /// Every sign-off of the components among `digests` by reviewers not revoked.
    fn sign_offs(&self, digests: &[String]) -> impl Future<Output = Result<Vec<SignOff>, StoreError>> + Send;
    /// Recorded decision inputs from `since` (RFC 3339) on, oldest first, after cursor `after`.
    fn replay_inputs(&self, since: &str, after: i64, limit: i64) -> impl Future<Output = Result<Vec<ReplayInput>, StoreError>> + Send;
}

/// `$1, $2, …` for `count` parameters.
pub(super) fn placeholders(count: usize) -> String {
    (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Implements [`RevisionStore`] on a backend's store with its pool; the SQL is common to both.
/// `$lock` is the statement, if any, that makes "activate only the first"
/// atomic on the backend (SQLite's `BEGIN IMMEDIATE` already is).
macro_rules! impl_revision_store {
    ($store:ident, $lock:expr) => {
        impl super::revisions::RevisionStore for $store {
            async fn hold_components(&self, components: &std::collections::HashMap<String, Vec<u8>>) -> Result<(), StoreError> {
                let mut tx = self.write().await?;
                for (digest, bytes) in components {
                    sqlx::query("INSERT INTO gate_components (digest, bytes, size, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING")
                        .bind(digest)
                        .bind(bytes)
                        .bind(i64::try_from(bytes.len()).unwrap_or(i64::MAX))
                        .bind(now())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn components(&self, digests: &[String]) -> Result<std::collections::HashMap<String, Vec<u8>>, StoreError> {
                if digests.is_empty() {
                    return Ok(Default::default());
                }
                let sql = format!("SELECT digest, bytes FROM gate_components WHERE digest IN ({})", super::revisions::placeholders(digests.len()));
                let mut query = sqlx::query_as::<_, (String, Vec<u8>)>(sqlx::AssertSqlSafe(sql));
                for digest in digests {
                    query = query.bind(digest);
                }
                Ok(query.fetch_all(&self.pool).await?.into_iter().collect())
            }

            async fn activate(&self, revision: &super::revisions::Revision, action: &str, actor: &str, note: &str, only_first: bool) -> Result<Option<i64>, StoreError> {
                let mut tx = self.write().await?;
                let lock: Option<&str> = $lock;
                if let Some(lock) = lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                sqlx::query("INSERT INTO policy_revisions (id, name, manifest, gates, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING")
                    .bind(&revision.id)
                    .bind(&revision.name)
                    .bind(&revision.manifest)
                    .bind(&revision.gates)
                    .bind(&revision.created_by)
                    .bind(&revision.created_at)
                    .execute(&mut *tx)
                    .await?;
                let guard = if only_first { " WHERE NOT EXISTS (SELECT 1 FROM policy_activations)" } else { "" };
                let activated: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO policy_activations (revision_id, action, actor, note, created_at) SELECT $1, $2, $3, $4, $5{guard} RETURNING seq"
                )))
                .bind(&revision.id)
                .bind(action)
                .bind(actor)
                .bind(note)
                .bind(now())
                .fetch_optional(&mut *tx)
                .await?;
                if activated.is_some() {
                    global_audit(&mut tx, actor, &format!("policy.{action}"), &revision.id).await?;
                }
                tx.commit().await?;
                Ok(activated)
            }

            async fn revision(&self, id: &str) -> Result<Option<super::revisions::Revision>, StoreError> {
                Ok(sqlx::query_as("SELECT id, name, manifest, gates, created_by, created_at FROM policy_revisions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn activations(&self, before: i64, limit: i64) -> Result<Vec<super::revisions::Activation>, StoreError> {
                Ok(sqlx::query_as("SELECT seq, revision_id, action, actor, note, created_at FROM policy_activations WHERE seq < $1 ORDER BY seq DESC LIMIT $2")
                    .bind(before)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn history(&self, before: i64, limit: i64) -> Result<Vec<super::revisions::HistoryRow>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT a.seq, a.revision_id, a.action, a.actor, a.note, a.created_at, r.name, r.manifest, r.gates \
                     FROM policy_activations a JOIN policy_revisions r ON r.id = a.revision_id WHERE a.seq < $1 ORDER BY a.seq DESC LIMIT $2",
                )
                .bind(before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn sign_off(&self, digest: &str, reviewer_id: &str, note: &str) -> Result<(super::revisions::SignOff, bool), StoreError> {
                let mut tx = self.write().await?;
                let held: Option<String> = sqlx::query_scalar("SELECT digest FROM gate_components WHERE digest = $1")
                    .bind(digest)
                    .fetch_optional(&mut *tx)
                    .await?;
                if held.is_none() {
                    return Err(StoreError::NotFound);
                }
                let created = sqlx::query("INSERT INTO gate_sign_offs (digest, reviewer_id, note, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (digest, reviewer_id) DO NOTHING")
                    .bind(digest)
                    .bind(reviewer_id)
                    .bind(note)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
                if created {
                    global_audit(&mut tx, reviewer_id, "gate.sign_off", digest).await?;
                }
                let signed: super::revisions::SignOff = sqlx::query_as("SELECT digest, reviewer_id, note, created_at FROM gate_sign_offs WHERE digest = $1 AND reviewer_id = $2")
                    .bind(digest)
                    .bind(reviewer_id)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok((signed, created))
            }

            async fn sign_offs(&self, digests: &[String]) -> Result<Vec<super::revisions::SignOff>, StoreError> {
                if digests.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT s.digest, s.reviewer_id, s.note, s.created_at FROM gate_sign_offs s JOIN reviewers r ON r.id = s.reviewer_id \
                     WHERE r.revoked_at IS NULL AND s.digest IN ({}) ORDER BY s.created_at",
                    super::revisions::placeholders(digests.len())
                );
                let mut query = sqlx::query_as::<_, super::revisions::SignOff>(sqlx::AssertSqlSafe(sql));
                for digest in digests {
                    query = query.bind(digest);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn replay_inputs(&self, since: &str, after: i64, limit: i64) -> Result<Vec<super::revisions::ReplayInput>, StoreError> {
                Ok(sqlx::query_as(
                    "SELECT seq, id, outcome, revision, request_digest, request, created_at FROM decisions \
                     WHERE seq > $1 AND created_at >= $2 AND request IS NOT NULL ORDER BY seq LIMIT $3",
                )
                .bind(after)
                .bind(since)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
