//! Durable storage: workspaces, money, tokens and the audit trail.
//!
//! One trait, [`Store`], implemented for SQLite (the embedded default: a
//! file in WAL mode) and PostgreSQL (to scale out), each with its own
//! migrations, applied at start. The backend is chosen once, from the URL,
//! and the server is built for it; no handler ever asks which one it has.
//! The SQL is portable (`$N` parameters, `RETURNING`), so both backends run
//! the same statements, written once in [`impl_store!`].

use std::future::Future;

use serde::Serialize;
use sqlx::FromRow;

use crate::auth::{NewToken, Scope};

#[macro_use]
mod revisions;
use crate::model::{self, GateRequest, MediaRef};
pub use revisions::{Activation, HistoryRow, ReplayInput, Revision, RevisionStore, SignOff};

/// Money, in integer cents.
pub type Cents = i64;

/// A workspace and its balance.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Workspace {
    /// `ws_…`.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The prepaid balance, in cents; never negative.
    pub balance_cents: Cents,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// One movement of a workspace's money.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// Position in the ledger: the pagination cursor.
    #[serde(skip)]
    pub seq: i64,
    /// `led_…`.
    pub id: String,
    /// `top_up` (later also charges and reversals).
    pub kind: String,
    /// Signed amount in cents.
    pub amount_cents: Cents,
    /// The balance right after this entry.
    pub balance_after_cents: Cents,
    /// The caller's reference that makes the entry idempotent.
    pub reference: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// An API key as its owner sees it: never the key itself.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// `key_…`.
    pub id: String,
    /// The owner's label.
    pub label: String,
    /// The key's first characters, to tell keys apart.
    pub display_prefix: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
    /// Requests per minute the key may make.
    pub rate_limit_per_minute: i64,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When it last authenticated a request.
    pub last_used_at: Option<String>,
    /// When it was revoked; a revoked key authenticates nothing.
    pub revoked_at: Option<String>,
}

/// The query that finds a token by its hash (`$1`).
const TOKEN_SQL: &str = "SELECT id, kind, workspace_id, scopes, hash, revoked_at, rate_limit_per_minute FROM tokens WHERE hash = $1";

/// A token's record, looked up by hash when a request arrives.
#[derive(Debug, Clone, FromRow)]
pub struct TokenRecord {
    /// `tok_…` for customers, `key_…` for API keys.
    pub id: String,
    /// `customer` or `api_key`.
    pub kind: String,
    /// The workspace it belongs to.
    pub workspace_id: String,
    /// Space-separated scopes (API keys).
    pub scopes: String,
    /// sha256 of the token.
    pub hash: String,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// Requests per minute the key may make.
    pub rate_limit_per_minute: i64,
}

#[derive(FromRow)]
struct ApiKeyRow {
    id: String,
    label: String,
    display_prefix: String,
    scopes: String,
    rate_limit_per_minute: i64,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            label: row.label,
            display_prefix: row.display_prefix,
            scopes: parse_scopes(&row.scopes),
            rate_limit_per_minute: row.rate_limit_per_minute,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// Scopes as stored: space-separated names.
pub fn scopes_text(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .filter_map(|s| serde_json::to_value(s).ok()?.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Scopes from their stored text; unknown names are dropped (they grant nothing).
pub fn parse_scopes(text: &str) -> Vec<Scope> {
    text.split_whitespace()
        .filter_map(|name| serde_json::from_value(serde_json::Value::String(name.to_owned())).ok())
        .collect()
}

/// A draft: text and media references, and the digest of that content.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Draft {
    /// `drf_…`.
    pub id: String,
    /// The post text.
    pub text: String,
    /// The media references.
    pub media: Vec<MediaRef>,
    /// sha256 of the content; an approval binds to it.
    pub content_digest: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// RFC 3339, UTC.
    pub updated_at: String,
}

#[derive(FromRow)]
struct DraftRow {
    id: String,
    text: String,
    media: String,
    content_digest: String,
    created_at: String,
    updated_at: String,
}

impl TryFrom<DraftRow> for Draft {
    type Error = StoreError;

    fn try_from(row: DraftRow) -> Result<Self, StoreError> {
        let media = serde_json::from_str(&row.media).map_err(|err| StoreError::Corrupt(format!("draft `{}` media: {err}", row.id)))?;
        Ok(Self {
            id: row.id,
            text: row.text,
            media,
            content_digest: row.content_digest,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// An item of the approval queue, with whether it still covers the draft's content.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Approval {
    /// `apr_…`.
    pub id: String,
    /// The draft submitted.
    pub draft_id: String,
    /// The content digest submitted (and, once approved, approved).
    pub content_digest: String,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    /// Who submitted it: `customer` or the key's id.
    pub submitted_by: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the customer decided.
    pub decided_at: Option<String>,
    /// The draft's digest now: when it differs, the draft changed and this item is void.
    #[serde(skip)]
    pub draft_digest: String,
}

/// A connected (or once connected) destination. Never holds its token.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Destination {
    /// `dst_…`.
    pub id: String,
    /// The workspace that connected it.
    pub workspace_id: String,
    /// The provider, e.g. `sandbox`.
    pub provider: String,
    /// False once disconnected: then it can no longer be used.
    pub connected: bool,
    /// `none`, `pending`, `approved` or `rejected`, as the operator set it.
    pub provider_review: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// When the customer disconnected it.
    pub disconnected_at: Option<String>,
}

/// The columns of a destination the API may show: never `sealed_token`.
const DESTINATION_COLUMNS: &str = "id, workspace_id, provider, connected, provider_review, created_at, disconnected_at";

/// One state change, as the audit trail records it.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the trail: the pagination cursor.
    #[serde(skip)]
    pub seq: i64,
    /// The workspace it concerns.
    pub workspace_id: Option<String>,
    /// Who did it: `operator`, `customer`, or a key's id.
    pub actor: String,
    /// What was done, e.g. `api_key.revoke`.
    pub action: String,
    /// The id of what it was done to.
    pub subject: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// How often a key called one route with one outcome.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct UsageCount {
    /// The HTTP method.
    pub method: String,
    /// The route pattern, e.g. `/v1/drafts/{id}`.
    pub route: String,
    /// The response status.
    pub status: i64,
    /// How many requests.
    pub count: i64,
}

/// What a new API key is to be.
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    /// The owner's label.
    pub label: &'a str,
    /// What it may do.
    pub scopes: &'a [Scope],
    /// Requests per minute it may make.
    pub rate_limit_per_minute: i64,
}

/// A reviewer as the operator sees them: never the token.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Reviewer {
    /// `rvw_…`.
    pub id: String,
    /// Who they are.
    pub label: String,
    /// The token's first characters.
    pub display_prefix: String,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A decision as recorded: what was asked, what every gate said, what it cost,
/// and its link in the workspace's hash chain.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct DecisionRecord {
    /// Position in the log: the pagination cursor.
    #[serde(skip)]
    pub seq: i64,
    /// `dec_…`.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// `dry_run` or `publication`.
    pub kind: String,
    /// The API key that asked, if one did.
    pub key_id: Option<String>,
    /// The draft.
    pub draft_id: String,
    /// The destination.
    pub destination_id: String,
    /// sha256 of the gate request, as canonical JSON.
    pub request_digest: String,
    /// The gate request itself, as canonical JSON: what `policy diff` replays
    /// against a candidate policy. Covered by `request_digest`. Written with
    /// the record; read only by the replay, so record reads leave it `None`.
    #[serde(skip)]
    #[sqlx(default)]
    pub request: Option<String>,
    /// The policy's name.
    pub policy: String,
    /// The policy revision the whole chain ran on.
    pub revision: String,
    /// `allow`, `deny` or `pending`.
    pub outcome: String,
    /// Every gate's result, as JSON: name, digest, verdict, code, message, evidence, time, fuel.
    pub gates: String,
    /// What was charged, in cents.
    pub charge_cents: Cents,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The hash of the workspace's previous record (64 zeros for the first).
    pub prev_hash: String,
    /// sha256 of `prev_hash` and this record's content.
    pub hash: String,
}

impl DecisionRecord {
    /// Turns an allow into a deny, with a host verdict saying why: the gates
    /// saw a balance that a concurrent charge spent before this one was taken.
    pub fn deny_unaffordable(&mut self) -> Result<(), StoreError> {
        self.outcome = "deny".into();
        self.gates = with_host_verdict(
            &self.gates,
            "insufficient_credit_at_charge",
            "the balance no longer covered the price when the charge was taken",
        )?;
        Ok(())
    }

    /// The hash this record must carry: over the previous hash and every field but `seq` and `hash`.
    pub fn expected_hash(&self) -> String {
        let content = serde_json::json!([
            self.id,
            self.workspace_id,
            self.kind,
            self.key_id,
            self.draft_id,
            self.destination_id,
            self.request_digest,
            self.policy,
            self.revision,
            self.outcome,
            self.gates,
            self.charge_cents,
            self.created_at,
        ]);
        crate::engine::sha256_hex(format!("{}\n{content}", self.prev_hash).as_bytes())
    }
}

/// A publication: queued once every gate allowed and the charge was taken.
#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Publication {
    /// `pub_…`.
    pub id: String,
    /// The workspace.
    pub workspace_id: String,
    /// The draft published.
    pub draft_id: String,
    /// Where to.
    pub destination_id: String,
    /// The decision that allowed it.
    pub decision_id: String,
    /// `queued`; then `delivering` while its provider is called; then
    /// `delivered`, `failed` (it never reached the provider; the charge was
    /// reversed) or `unknown` (the outcome is not known; never retried blindly).
    pub state: String,
    /// What it cost, in cents.
    pub charge_cents: Cents,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The provider's id for the post, once delivered.
    pub provider_post_id: Option<String>,
    /// Why it failed, or why its outcome is unknown.
    pub detail: Option<String>,
    /// When its state last changed after queueing.
    pub updated_at: Option<String>,
}

impl Publication {
    /// The queued publication an allowed, charged `record` creates.
    pub fn queued(record: &DecisionRecord, charge_cents: Cents) -> Self {
        Self {
            id: new_id("pub"),
            workspace_id: record.workspace_id.clone(),
            draft_id: record.draft_id.clone(),
            destination_id: record.destination_id.clone(),
            decision_id: record.id.clone(),
            state: "queued".into(),
            charge_cents,
            created_at: record.created_at.clone(),
            provider_post_id: None,
            detail: None,
            updated_at: None,
        }
    }
}

/// A publication claimed for delivery, with what its provider needs.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    /// The publication.
    pub publication_id: String,
    /// Its destination.
    pub destination_id: String,
    /// The destination's provider.
    pub provider: String,
    /// The destination's sealed token, if it is still connected.
    pub sealed_token: Option<String>,
    /// The post text.
    pub text: String,
    /// The media references, as JSON.
    pub media: String,
}

/// How a delivery ended.
#[derive(Debug, Clone)]
pub enum Delivered {
    /// The provider accepted it: its post id.
    Posted(String),
    /// It never reached the provider: the publication fails and its charge is reversed.
    NotSent(String),
    /// It may have reached the provider: recorded as `unknown`, never retried blindly.
    Unknown(String),
}

/// Which decisions to list; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    /// One workspace's.
    pub workspace_id: Option<String>,
    /// One key's requests.
    pub key_id: Option<String>,
    /// One decision.
    pub id: Option<String>,
    /// One outcome: `allow`, `deny` or `pending`.
    pub outcome: Option<String>,
    /// Made at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Made before this RFC 3339 time.
    pub until: Option<String>,
}

/// What a publication request came to.
#[derive(Debug, Clone)]
pub enum Published {
    /// Decided now: the record, and the publication when it was allowed and charged.
    Decided(DecisionRecord, Option<Publication>),
    /// The idempotency key was used before with the same request: its first answer.
    Replayed(DecisionRecord, Option<Publication>),
    /// The idempotency key was used before with another request.
    KeyReused,
}

/// A link of a decision chain that does not hold.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BrokenLink {
    /// The workspace whose chain breaks.
    pub workspace_id: String,
    /// The first decision that does not verify.
    pub decision_id: String,
    /// Why: its content changed, or it does not follow the record before it.
    pub problem: String,
}

/// The outcome of walking every workspace's decision chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChainReport {
    /// Records checked.
    pub decisions: u64,
    /// The first broken link of each broken chain; empty when all verify.
    pub broken: Vec<BrokenLink>,
}

/// Walks every workspace's decision chain, a page at a time, and reports the first broken link of each.
pub async fn verify_chains<S: Store>(store: &S) -> Result<ChainReport, StoreError> {
    let mut last_hash: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut broken: Vec<BrokenLink> = Vec::new();
    let mut decisions = 0;
    let mut after = 0;
    loop {
        let page = store.decisions(&DecisionFilter::default(), after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for record in page {
            decisions += 1;
            if broken.iter().any(|b| b.workspace_id == record.workspace_id) {
                continue;
            }
            let expected_prev = last_hash.get(&record.workspace_id).map_or(GENESIS_HASH, String::as_str);
            let problem = if record.prev_hash != expected_prev {
                Some("it does not follow the record before it (`prev_hash` differs)")
            } else if record.hash != record.expected_hash() {
                Some("its content no longer matches its hash")
            } else {
                None
            };
            match problem {
                Some(problem) => broken.push(BrokenLink {
                    workspace_id: record.workspace_id,
                    decision_id: record.id,
                    problem: problem.into(),
                }),
                None => {
                    last_hash.insert(record.workspace_id, record.hash);
                }
            }
        }
    }
    Ok(ChainReport { decisions, broken })
}

/// The hash before a workspace's first decision.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What a top-up did.
#[derive(Debug, Clone)]
pub enum TopUp {
    /// The credit was applied now.
    Applied(LedgerEntry),
    /// The reference was used before with the same amount: nothing changed.
    Replayed(LedgerEntry),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The workspace or key does not exist (or is not the caller's).
    #[error("not found")]
    NotFound,
    /// The request contradicts what is stored, e.g. a reference reused with another amount.
    #[error("{0}")]
    Conflict(String),
    /// The balance is below what the operation requires.
    #[error("balance of {balance_cents} cents is below the required {required_cents}")]
    InsufficientBalance {
        /// The current balance.
        balance_cents: Cents,
        /// What the operation requires.
        required_cents: Cents,
    },
    /// A stored value could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The write could not be recorded (the writer or its commit failed): nothing of it was stored.
    #[error("{0}")]
    Unavailable(String),
}

/// The operations the API needs from storage.
pub trait Store: RevisionStore + Clone + Send + Sync + 'static {
    /// Whether the database answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Creates a workspace with its first customer token; audited.
    fn create_workspace(&self, name: &str, customer: &NewToken) -> impl Future<Output = Result<Workspace, StoreError>> + Send;
    /// The workspace `id`.
    fn workspace(&self, id: &str) -> impl Future<Output = Result<Workspace, StoreError>> + Send;
    /// Credits a workspace, once per `reference`; audited.
    fn top_up(&self, workspace_id: &str, amount_cents: Cents, reference: &str) -> impl Future<Output = Result<TopUp, StoreError>> + Send;
    /// Ledger entries after cursor `after` (a `seq`), oldest first.
    fn ledger(&self, workspace_id: &str, after: i64, limit: i64) -> impl Future<Output = Result<Vec<LedgerEntry>, StoreError>> + Send;
    /// The token with this hash.
    fn token(&self, hash: &str) -> impl Future<Output = Result<Option<TokenRecord>, StoreError>> + Send;
    /// Records that the token `id` authenticated a request now.
    fn touch_token(&self, id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Creates an API key if the balance is at least `min_balance_cents`; audited.
    fn create_api_key(
        &self,
        workspace_id: &str,
        key: NewKey<'_>,
        token: &NewToken,
        min_balance_cents: Cents,
    ) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;
    /// The workspace's API keys with ids after `after`, in id order.
    fn api_keys(&self, workspace_id: &str, after: &str, limit: i64) -> impl Future<Output = Result<Vec<ApiKey>, StoreError>> + Send;
    /// Revokes a key of the workspace (idempotent); audited.
    fn revoke_api_key(&self, workspace_id: &str, key_id: &str) -> impl Future<Output = Result<ApiKey, StoreError>> + Send;
    /// Stores a new draft; audited as `actor`'s.
    fn create_draft(
        &self,
        workspace_id: &str,
        actor: &str,
        text: &str,
        media: &[MediaRef],
        digest: &str,
    ) -> impl Future<Output = Result<Draft, StoreError>> + Send;
    /// The workspace's draft `id`.
    fn draft(&self, workspace_id: &str, id: &str) -> impl Future<Output = Result<Draft, StoreError>> + Send;
    /// The workspace's drafts with ids after `after`, in id order.
    fn drafts(&self, workspace_id: &str, after: &str, limit: i64) -> impl Future<Output = Result<Vec<Draft>, StoreError>> + Send;
    /// Replaces a draft's content (which voids approvals of the old content); audited as `actor`'s.
    fn update_draft(
        &self,
        workspace_id: &str,
        actor: &str,
        id: &str,
        text: &str,
        media: &[MediaRef],
        digest: &str,
    ) -> impl Future<Output = Result<Draft, StoreError>> + Send;
    /// Puts the draft's current content in the approval queue (once per content); audited.
    fn submit_draft(
        &self,
        workspace_id: &str,
        draft_id: &str,
        submitted_by: &str,
    ) -> impl Future<Output = Result<Approval, StoreError>> + Send;
    /// The workspace's approval queue, ids after `after`, in id order.
    fn approvals(&self, workspace_id: &str, after: &str, limit: i64) -> impl Future<Output = Result<Vec<Approval>, StoreError>> + Send;
    /// The customer approves or rejects a pending item whose content is current; audited.
    fn decide(&self, workspace_id: &str, approval_id: &str, approve: bool) -> impl Future<Output = Result<Approval, StoreError>> + Send;
    /// Records a consent flow in progress, known by the hash of its state.
    fn begin_consent(&self, workspace_id: &str, provider: &str, state_hash: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Uses a consent (once, within `max_age`): the workspace and provider it was for.
    fn take_consent(
        &self,
        state_hash: &str,
        max_age: std::time::Duration,
    ) -> impl Future<Output = Result<(String, String), StoreError>> + Send;
    /// Stores a connected destination with its sealed token; audited.
    fn connect_destination(
        &self,
        id: &str,
        workspace_id: &str,
        provider: &str,
        sealed_token: &str,
    ) -> impl Future<Output = Result<Destination, StoreError>> + Send;
    /// Destinations of a workspace (of every workspace when `None`) with ids after `after`, in id order.
    fn destinations(
        &self,
        workspace_id: Option<&str>,
        after: &str,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<Destination>, StoreError>> + Send;
    /// The workspace's destination `id`.
    fn destination(&self, workspace_id: &str, id: &str) -> impl Future<Output = Result<Destination, StoreError>> + Send;
    /// Disconnects a destination and wipes its token; audited.
    fn disconnect_destination(&self, workspace_id: &str, id: &str) -> impl Future<Output = Result<Destination, StoreError>> + Send;
    /// Sets a destination's provider-review state (operator); audited.
    fn set_review(&self, id: &str, review: &str) -> impl Future<Output = Result<Destination, StoreError>> + Send;
    /// Attributes one API-key request to its key, and marks the key as used.
    fn record_usage(
        &self,
        key_id: &str,
        workspace_id: &str,
        method: &str,
        route: &str,
        status: u16,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A key's request counts by method, route and status.
    fn usage(&self, workspace_id: &str, key_id: &str) -> impl Future<Output = Result<Vec<UsageCount>, StoreError>> + Send;
    /// Mints a reviewer (operator); audited.
    fn create_reviewer(&self, label: &str, token: &NewToken) -> impl Future<Output = Result<Reviewer, StoreError>> + Send;
    /// The id of the unrevoked reviewer holding the token with this hash.
    fn reviewer_by_hash(&self, hash: &str) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;
    /// The operator's safety flags.
    fn flags(&self) -> impl Future<Output = Result<model::Flags, StoreError>> + Send;
    /// Replaces the safety flags (operator); audited.
    fn set_flags(&self, flags: &model::Flags) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The facts a decision rests on, read from the store (a gate request
    /// without its key), and whether idempotency key `claim` was claimed before.
    fn facts(
        &self,
        workspace_id: &str,
        draft_id: &str,
        destination_id: &str,
        claim: Option<&str>,
    ) -> impl Future<Output = Result<Facts, StoreError>> + Send;
    /// Decides a publication atomically: replays an earlier answer to the same
    /// idempotency key; otherwise, when `record` allows, takes `price` with a
    /// guarded debit (an allow that the balance no longer covers becomes a
    /// deny), writes the ledger entry, the publication and the decision record
    /// in one transaction.
    fn publish(
        &self,
        idempotency_key: &str,
        fingerprint: &str,
        record: DecisionRecord,
        price: Cents,
    ) -> impl Future<Output = Result<Published, StoreError>> + Send;
    /// The earlier answer to a claimed idempotency key: replayed, or refused for another request.
    fn idempotent_answer(
        &self,
        workspace_id: &str,
        key: &str,
        fingerprint: &str,
    ) -> impl Future<Output = Result<Published, StoreError>> + Send;
    /// Claims the oldest queued publication for delivery (it becomes
    /// `delivering`, so no other worker or process sends it), with what its provider needs.
    fn claim_delivery(&self) -> impl Future<Output = Result<Option<Delivery>, StoreError>> + Send;
    /// Records how a delivery in `from_state` (`delivering`, or `unknown`
    /// when the operator reconciles it) ended. `NotSent` fails the
    /// publication and reverses its charge with a ledger entry, atomically
    /// and at most once. A reconciliation is audited.
    fn finish_delivery(
        &self,
        publication_id: &str,
        from_state: &str,
        delivered: &Delivered,
    ) -> impl Future<Output = Result<Publication, StoreError>> + Send;
    /// Marks publications left `delivering` since before `cutoff` as
    /// `unknown`: their worker died mid-call, and sending again could post twice.
    fn abandon_deliveries(&self, cutoff: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Appends a decision to its workspace's hash chain (fills `seq`, `prev_hash`, `hash`).
    fn record_decision(&self, record: DecisionRecord) -> impl Future<Output = Result<DecisionRecord, StoreError>> + Send;
    /// Decisions matching `filter`, after cursor `after`, oldest first.
    fn decisions(
        &self,
        filter: &DecisionFilter,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<DecisionRecord>, StoreError>> + Send;
    /// The publication `id` of a workspace.
    fn publication(&self, workspace_id: &str, id: &str) -> impl Future<Output = Result<Publication, StoreError>> + Send;
    /// The audit trail of a workspace (of all, when `None`) after cursor `after`, oldest first.
    fn audit_trail(
        &self,
        workspace_id: Option<&str>,
        after: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<AuditRecord>, StoreError>> + Send;
}

/// The columns of the structs read back from each table, in their field order.
const DECISION_COLUMNS: &str = "seq, id, workspace_id, kind, key_id, draft_id, destination_id, request_digest, policy, revision, outcome, gates, charge_cents, created_at, prev_hash, hash";
const LEDGER_COLUMNS: &str = "seq, id, kind, amount_cents, balance_after_cents, reference, created_at";
const API_KEY_COLUMNS: &str = "id, label, display_prefix, scopes, rate_limit_per_minute, created_at, last_used_at, revoked_at";
const PUBLICATION_COLUMNS: &str =
    "id, workspace_id, draft_id, destination_id, decision_id, state, charge_cents, created_at, provider_post_id, detail, updated_at";

/// The columns of an approval joined with its draft's current digest.
const APPROVAL_COLUMNS: &str =
    "a.id, a.draft_id, a.content_digest, a.status, a.submitted_by, a.created_at, a.decided_at, d.content_digest AS draft_digest";

/// An id with a type prefix and 20 alphanumeric characters: the creation
/// time in milliseconds (8 base-62 digits, so ids sort by time), then 12
/// random ones (71 bits). Time-ordered ids keep inserts at the right edge
/// of the id indexes: with random ids, every insert into a table of
/// millions dirties a random index page, and the write volume grows with history.
pub fn new_id(prefix: &str) -> String {
    use rand::Rng as _;
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut time = [b'0'; 8];
    for digit in time.iter_mut().rev() {
        *digit = DIGITS[(millis % 62) as usize];
        millis /= 62;
    }
    let random: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("{prefix}_{}{random}", String::from_utf8_lossy(&time))
}

/// Now, RFC 3339 in UTC with microseconds.
pub fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

/// The gates' results with one more, from the host, that denies.
fn with_host_verdict(gates: &str, code: &str, message: &str) -> Result<String, StoreError> {
    let mut results: Vec<serde_json::Value> =
        serde_json::from_str(gates).map_err(|err| StoreError::Corrupt(format!("gate results: {err}")))?;
    results.push(serde_json::json!({ "gate": "host", "outcome": "deny", "code": code, "message": message }));
    serde_json::to_string(&results).map_err(|err| StoreError::Corrupt(format!("gate results: {err}")))
}

/// Media references as stored: JSON.
fn media_json(media: &[MediaRef]) -> Result<String, StoreError> {
    serde_json::to_string(media).map_err(|err| StoreError::Corrupt(format!("media: {err}")))
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}

/// Implements [`Store`] for a backend: the statements are portable, so both
/// backends share this one text; only the pool type, how a writing
/// transaction begins, and how a workspace row is locked differ.
/// What a decision rests on.
#[expect(
    clippy::large_enum_variant,
    reason = "built and moved once per decision; a box would only add an allocation"
)]
pub enum Facts {
    /// The idempotency key asked about was claimed before: there is nothing to decide.
    Claimed,
    /// The gate request, without the asking key.
    Unclaimed(GateRequest),
}

/// Everything a decision reads, in one round trip: a decision's latency is
/// mostly statements, not work. `$1` draft, `$2` destination, `$3`
/// workspace, `$4` idempotency key (or NULL). There is always a row, so a
/// claimed key is found even when the draft or destination is not. An
/// approval of the current content wins; otherwise the latest item says
/// where things stand.
const FACTS_SQL: &str = "SELECT d.text, d.media, d.content_digest, t.provider, t.connected, t.provider_review, w.balance_cents, \
        f.publishing_mode, f.kill_switch, f.blocked_terms, a.status AS approval_status, a.content_digest AS approved_digest, c.claimed \
    FROM (SELECT EXISTS (SELECT 1 FROM idempotency WHERE workspace_id = $3 AND key = $4) AS claimed) c \
    JOIN flags f ON f.id = 1 \
    LEFT JOIN drafts d ON d.id = $1 AND d.workspace_id = $3 \
    LEFT JOIN destinations t ON t.id = $2 AND t.workspace_id = $3 \
    LEFT JOIN workspaces w ON w.id = $3 \
    LEFT JOIN approvals a ON a.id = ( \
        SELECT id FROM approvals WHERE draft_id = d.id \
        ORDER BY (status = 'approved' AND content_digest = d.content_digest) DESC, created_at DESC, id DESC LIMIT 1)";

/// The row [`FACTS_SQL`] reads; the draft's, destination's and workspace's columns are NULL when they are not found.
#[derive(FromRow)]
struct FactsRow {
    text: Option<String>,
    media: Option<String>,
    content_digest: Option<String>,
    provider: Option<String>,
    connected: Option<bool>,
    provider_review: Option<String>,
    balance_cents: Option<Cents>,
    publishing_mode: String,
    kill_switch: bool,
    blocked_terms: String,
    approval_status: Option<String>,
    approved_digest: Option<String>,
    claimed: bool,
}

impl FactsRow {
    /// The facts: a claim, or the gate request (the asking key is the caller's to add).
    fn into_facts(self, workspace_id: &str, draft_id: &str, destination_id: &str) -> Result<Facts, StoreError> {
        if self.claimed {
            return Ok(Facts::Claimed);
        }
        let (Some(text), Some(media), Some(content_digest), Some(provider), Some(connected), Some(provider_review), Some(balance_cents)) = (
            self.text,
            self.media,
            self.content_digest,
            self.provider,
            self.connected,
            self.provider_review,
            self.balance_cents,
        ) else {
            return Err(StoreError::NotFound);
        };
        let media = serde_json::from_str(&media).map_err(|err| StoreError::Corrupt(format!("draft `{draft_id}` media: {err}")))?;
        Ok(Facts::Unclaimed(GateRequest {
            workspace_id: workspace_id.to_owned(),
            key: None,
            draft: model::Draft {
                id: draft_id.to_owned(),
                text,
                media,
                content_digest,
            },
            destination: model::Destination {
                id: destination_id.to_owned(),
                workspace_id: workspace_id.to_owned(),
                provider,
                connected,
                provider_review: match provider_review.as_str() {
                    "pending" => model::ProviderReview::Pending,
                    "approved" => model::ProviderReview::Approved,
                    "rejected" => model::ProviderReview::Rejected,
                    _ => model::ProviderReview::None,
                },
            },
            approval: model::Approval {
                status: match self.approval_status.as_deref() {
                    None => model::ApprovalStatus::None,
                    Some("approved") => model::ApprovalStatus::Approved,
                    Some("rejected") => model::ApprovalStatus::Rejected,
                    Some(_) => model::ApprovalStatus::Pending,
                },
                content_digest: self.approved_digest,
            },
            account: model::Account { balance_cents },
            flags: flags_from_row(&self.publishing_mode, self.kill_switch, &self.blocked_terms)?,
        }))
    }
}

/// The safety flags as the `flags` row stores them.
fn flags_from_row(mode: &str, kill_switch: bool, terms: &str) -> Result<model::Flags, StoreError> {
    let publishing_mode = if mode == "live" {
        model::PublishingMode::Live
    } else {
        model::PublishingMode::Preview
    };
    let blocked_terms = serde_json::from_str(terms).map_err(|err| StoreError::Corrupt(format!("blocked terms: {err}")))?;
    Ok(model::Flags {
        publishing_mode,
        kill_switch,
        blocked_terms,
    })
}

macro_rules! impl_store {
    // `$fields` are the backend's own fields beside the pool; `$writes` its
    // own way of writing decisions, charges and usage.
    ($store:ident, $db:ty, $begin:expr, { $($fields:tt)* }, { $($writes:tt)* }) => {
        /// The store on this backend.
        #[derive(Clone)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
            $($fields)*
        }

        impl $store {
            async fn write(&self) -> Result<sqlx::Transaction<'static, $db>, sqlx::Error> {
                self.pool.begin_with($begin).await
            }

            async fn ledger_entry(&self, workspace_id: &str, reference: &str) -> Result<Option<LedgerEntry>, sqlx::Error> {
                sqlx::query_as::<_, LedgerEntry>(
                    sqlx::AssertSqlSafe(format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE workspace_id = $1 AND reference = $2")),
                )
                .bind(workspace_id)
                .bind(reference)
                .fetch_optional(&self.pool)
                .await
            }
        }

        impl Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_workspace(&self, name: &str, customer: &NewToken) -> Result<Workspace, StoreError> {
                let workspace = Workspace { id: new_id("ws"), name: name.to_owned(), balance_cents: 0, created_at: now() };
                let mut tx = self.write().await?;
                sqlx::query("INSERT INTO workspaces (id, name, balance_cents, created_at) VALUES ($1, $2, 0, $3)")
                    .bind(&workspace.id)
                    .bind(&workspace.name)
                    .bind(&workspace.created_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO tokens (id, kind, workspace_id, label, scopes, hash, display_prefix, created_at) VALUES ($1, 'customer', $2, 'first customer token', '', $3, $4, $5)",
                )
                .bind(new_id("tok"))
                .bind(&workspace.id)
                .bind(&customer.hash)
                .bind(&customer.display_prefix)
                .bind(&workspace.created_at)
                .execute(&mut *tx)
                .await?;
                audit(&mut tx, Some(&workspace.id), "operator", "workspace.create", &workspace.id).await?;
                tx.commit().await?;
                Ok(workspace)
            }

            async fn workspace(&self, id: &str) -> Result<Workspace, StoreError> {
                sqlx::query_as::<_, Workspace>("SELECT id, name, balance_cents, created_at FROM workspaces WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)
            }

            async fn top_up(&self, workspace_id: &str, amount_cents: Cents, reference: &str) -> Result<TopUp, StoreError> {
                let replay = |entry: LedgerEntry| {
                    if entry.amount_cents == amount_cents {
                        Ok(TopUp::Replayed(entry))
                    } else {
                        Err(StoreError::Conflict(format!(
                            "reference `{reference}` already credited {} cents, not {amount_cents}",
                            entry.amount_cents
                        )))
                    }
                };
                if let Some(entry) = self.ledger_entry(workspace_id, reference).await? {
                    return replay(entry);
                }
                let mut tx = self.write().await?;
                let balance: Option<(Cents,)> =
                    sqlx::query_as("UPDATE workspaces SET balance_cents = balance_cents + $1 WHERE id = $2 RETURNING balance_cents")
                        .bind(amount_cents)
                        .bind(workspace_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((balance_after_cents,)) = balance else { return Err(StoreError::NotFound) };
                let inserted = sqlx::query_as::<_, LedgerEntry>(
                    sqlx::AssertSqlSafe(format!("INSERT INTO ledger (id, workspace_id, kind, amount_cents, balance_after_cents, reference, created_at) VALUES ($1, $2, 'top_up', $3, $4, $5, $6) RETURNING {LEDGER_COLUMNS}")),
                )
                .bind(new_id("led"))
                .bind(workspace_id)
                .bind(amount_cents)
                .bind(balance_after_cents)
                .bind(reference)
                .bind(now())
                .fetch_one(&mut *tx)
                .await;
                match inserted {
                    Ok(entry) => {
                        audit(&mut tx, Some(workspace_id), "operator", "credits.top_up", &entry.id).await?;
                        tx.commit().await?;
                        Ok(TopUp::Applied(entry))
                    }
                    // A concurrent retry with the same reference won the race: replay it.
                    Err(err) if is_unique_violation(&err) => {
                        tx.rollback().await?;
                        replay(self.ledger_entry(workspace_id, reference).await?.ok_or(StoreError::NotFound)?)
                    }
                    Err(err) => Err(err.into()),
                }
            }

            async fn ledger(&self, workspace_id: &str, after: i64, limit: i64) -> Result<Vec<LedgerEntry>, StoreError> {
                Ok(sqlx::query_as::<_, LedgerEntry>(
                    sqlx::AssertSqlSafe(format!("SELECT {LEDGER_COLUMNS} FROM ledger WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT $3")),
                )
                .bind(workspace_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn create_api_key(&self, workspace_id: &str, new: NewKey<'_>, token: &NewToken, min_balance_cents: Cents) -> Result<ApiKey, StoreError> {
                let mut tx = self.write().await?;
                let balance: Option<(Cents,)> = sqlx::query_as("SELECT balance_cents FROM workspaces WHERE id = $1")
                    .bind(workspace_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((balance_cents,)) = balance else { return Err(StoreError::NotFound) };
                if balance_cents < min_balance_cents {
                    return Err(StoreError::InsufficientBalance { balance_cents, required_cents: min_balance_cents });
                }
                let key = ApiKey {
                    id: new_id("key"),
                    label: new.label.to_owned(),
                    display_prefix: token.display_prefix.clone(),
                    scopes: new.scopes.to_vec(),
                    rate_limit_per_minute: new.rate_limit_per_minute,
                    created_at: now(),
                    last_used_at: None,
                    revoked_at: None,
                };
                sqlx::query(
                    "INSERT INTO tokens (id, kind, workspace_id, label, scopes, hash, display_prefix, created_at, rate_limit_per_minute) VALUES ($1, 'api_key', $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&key.id)
                .bind(workspace_id)
                .bind(&key.label)
                .bind(scopes_text(new.scopes))
                .bind(&token.hash)
                .bind(&key.display_prefix)
                .bind(&key.created_at)
                .bind(key.rate_limit_per_minute)
                .execute(&mut *tx)
                .await?;
                audit(&mut tx, Some(workspace_id), "customer", "api_key.create", &key.id).await?;
                tx.commit().await?;
                Ok(key)
            }

            async fn api_keys(&self, workspace_id: &str, after: &str, limit: i64) -> Result<Vec<ApiKey>, StoreError> {
                let rows = sqlx::query_as::<_, ApiKeyRow>(
                    sqlx::AssertSqlSafe(format!("SELECT {API_KEY_COLUMNS} FROM tokens WHERE workspace_id = $1 AND kind = 'api_key' AND id > $2 ORDER BY id LIMIT $3")),
                )
                .bind(workspace_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(ApiKey::from).collect())
            }

            async fn revoke_api_key(&self, workspace_id: &str, key_id: &str) -> Result<ApiKey, StoreError> {
                let mut tx = self.write().await?;
                let revoked = sqlx::query(
                    "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND workspace_id = $3 AND kind = 'api_key' AND revoked_at IS NULL",
                )
                .bind(now())
                .bind(key_id)
                .bind(workspace_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if revoked == 1 {
                    audit(&mut tx, Some(workspace_id), "customer", "api_key.revoke", key_id).await?;
                }
                let row = sqlx::query_as::<_, ApiKeyRow>(
                    sqlx::AssertSqlSafe(format!("SELECT {API_KEY_COLUMNS} FROM tokens WHERE id = $1 AND workspace_id = $2 AND kind = 'api_key'")),
                )
                .bind(key_id)
                .bind(workspace_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
                tx.commit().await?;
                Ok(row.into())
            }

            async fn create_draft(&self, workspace_id: &str, actor: &str, text: &str, media: &[MediaRef], digest: &str) -> Result<Draft, StoreError> {
                let id = new_id("drf");
                let at = now();
                let mut tx = self.write().await?;
                sqlx::query("INSERT INTO drafts (id, workspace_id, text, media, content_digest, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)")
                    .bind(&id)
                    .bind(workspace_id)
                    .bind(text)
                    .bind(media_json(media)?)
                    .bind(digest)
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                audit(&mut tx, Some(workspace_id), actor, "draft.create", &id).await?;
                tx.commit().await?;
                self.draft(workspace_id, &id).await
            }

            async fn draft(&self, workspace_id: &str, id: &str) -> Result<Draft, StoreError> {
                sqlx::query_as::<_, DraftRow>("SELECT id, text, media, content_digest, created_at, updated_at FROM drafts WHERE id = $1 AND workspace_id = $2")
                    .bind(id)
                    .bind(workspace_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)?
                    .try_into()
            }

            async fn drafts(&self, workspace_id: &str, after: &str, limit: i64) -> Result<Vec<Draft>, StoreError> {
                sqlx::query_as::<_, DraftRow>(
                    "SELECT id, text, media, content_digest, created_at, updated_at FROM drafts WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3",
                )
                .bind(workspace_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(Draft::try_from)
                .collect()
            }

            async fn update_draft(&self, workspace_id: &str, actor: &str, id: &str, text: &str, media: &[MediaRef], digest: &str) -> Result<Draft, StoreError> {
                let mut tx = self.write().await?;
                let updated = sqlx::query("UPDATE drafts SET text = $1, media = $2, content_digest = $3, updated_at = $4 WHERE id = $5 AND workspace_id = $6")
                    .bind(text)
                    .bind(media_json(media)?)
                    .bind(digest)
                    .bind(now())
                    .bind(id)
                    .bind(workspace_id)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if updated == 0 {
                    return Err(StoreError::NotFound);
                }
                audit(&mut tx, Some(workspace_id), actor, "draft.update", id).await?;
                tx.commit().await?;
                self.draft(workspace_id, id).await
            }

            async fn submit_draft(&self, workspace_id: &str, draft_id: &str, submitted_by: &str) -> Result<Approval, StoreError> {
                let mut tx = self.write().await?;
                let digest: Option<(String,)> = sqlx::query_as("SELECT content_digest FROM drafts WHERE id = $1 AND workspace_id = $2")
                    .bind(draft_id)
                    .bind(workspace_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((digest,)) = digest else { return Err(StoreError::NotFound) };
                let existing: Option<(String,)> = sqlx::query_as(
                    "SELECT id FROM approvals WHERE draft_id = $1 AND content_digest = $2 AND status IN ('pending', 'approved')",
                )
                .bind(draft_id)
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?;
                let id = match existing {
                    Some((id,)) => id,
                    None => {
                        let id = new_id("apr");
                        let inserted = sqlx::query(
                            "INSERT INTO approvals (id, workspace_id, draft_id, content_digest, status, submitted_by, created_at) VALUES ($1, $2, $3, $4, 'pending', $5, $6)",
                        )
                        .bind(&id)
                        .bind(workspace_id)
                        .bind(draft_id)
                        .bind(&digest)
                        .bind(submitted_by)
                        .bind(now())
                        .execute(&mut *tx)
                        .await;
                        match inserted {
                            Ok(_) => {}
                            // A racing submission of the same content won: answer with its item.
                            Err(err) if is_unique_violation(&err) => {
                                tx.rollback().await?;
                                let (winner,): (String,) = sqlx::query_as(
                                    "SELECT id FROM approvals WHERE draft_id = $1 AND content_digest = $2 AND status IN ('pending', 'approved')",
                                )
                                .bind(draft_id)
                                .bind(&digest)
                                .fetch_one(&self.pool)
                                .await?;
                                return self.approval(workspace_id, &winner).await;
                            }
                            Err(err) => return Err(err.into()),
                        }
                        audit(&mut tx, Some(workspace_id), submitted_by, "draft.submit", &id).await?;
                        id
                    }
                };
                tx.commit().await?;
                self.approval(workspace_id, &id).await
            }

            async fn approvals(&self, workspace_id: &str, after: &str, limit: i64) -> Result<Vec<Approval>, StoreError> {
                Ok(sqlx::query_as::<_, Approval>(sqlx::AssertSqlSafe(format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN drafts d ON d.id = a.draft_id WHERE a.workspace_id = $1 AND a.id > $2 ORDER BY a.id LIMIT $3"
                )))
                .bind(workspace_id)
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn decide(&self, workspace_id: &str, approval_id: &str, approve: bool) -> Result<Approval, StoreError> {
                let current = self.approval(workspace_id, approval_id).await?;
                if current.status != "pending" {
                    return Err(StoreError::Conflict(format!("this item was already {}", current.status)));
                }
                if current.content_digest != current.draft_digest {
                    return Err(StoreError::Conflict("the draft changed after it was submitted; submit it again".into()));
                }
                let status = if approve { "approved" } else { "rejected" };
                let mut tx = self.write().await?;
                // Guarded on the status and on the draft still holding the submitted content.
                let decided = sqlx::query(
                    "UPDATE approvals SET status = $1, decided_at = $2 WHERE id = $3 AND workspace_id = $4 AND status = 'pending' AND content_digest = (SELECT content_digest FROM drafts WHERE id = approvals.draft_id)",
                )
                .bind(status)
                .bind(now())
                .bind(approval_id)
                .bind(workspace_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if decided == 0 {
                    return Err(StoreError::Conflict("the item or its draft changed meanwhile; look again".into()));
                }
                audit(&mut tx, Some(workspace_id), "customer", if approve { "approval.approve" } else { "approval.reject" }, approval_id).await?;
                tx.commit().await?;
                self.approval(workspace_id, approval_id).await
            }

            async fn begin_consent(&self, workspace_id: &str, provider: &str, state_hash: &str) -> Result<(), StoreError> {
                sqlx::query("INSERT INTO consents (state_hash, workspace_id, provider, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(state_hash)
                    .bind(workspace_id)
                    .bind(provider)
                    .bind(now())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_consent(&self, state_hash: &str, max_age: std::time::Duration) -> Result<(String, String), StoreError> {
                // One statement marks it used, so two racing callbacks cannot both take it.
                let consent: Option<(String, String, String)> = sqlx::query_as(
                    "UPDATE consents SET used_at = $1 WHERE state_hash = $2 AND used_at IS NULL RETURNING workspace_id, provider, created_at",
                )
                .bind(now())
                .bind(state_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some((workspace_id, provider, created_at)) = consent else { return Err(StoreError::NotFound) };
                let fresh = humantime::parse_rfc3339(&created_at)
                    .ok()
                    .and_then(|at| at.elapsed().ok())
                    .is_some_and(|age| age <= max_age);
                if !fresh {
                    return Err(StoreError::Conflict("the consent expired; start connecting again".into()));
                }
                Ok((workspace_id, provider))
            }

            async fn connect_destination(&self, id: &str, workspace_id: &str, provider: &str, sealed_token: &str) -> Result<Destination, StoreError> {
                let mut tx = self.write().await?;
                sqlx::query(
                    "INSERT INTO destinations (id, workspace_id, provider, connected, provider_review, sealed_token, created_at) VALUES ($1, $2, $3, TRUE, 'none', $4, $5)",
                )
                .bind(id)
                .bind(workspace_id)
                .bind(provider)
                .bind(sealed_token)
                .bind(now())
                .execute(&mut *tx)
                .await?;
                audit(&mut tx, Some(workspace_id), "customer", "destination.connect", id).await?;
                tx.commit().await?;
                self.destination_by_id(id).await
            }

            async fn destinations(&self, workspace_id: Option<&str>, after: &str, limit: i64) -> Result<Vec<Destination>, StoreError> {
                let filter = if workspace_id.is_some() { "workspace_id = $3 AND" } else { "" };
                let mut query = sqlx::query_as::<_, Destination>(sqlx::AssertSqlSafe(format!(
                    "SELECT {DESTINATION_COLUMNS} FROM destinations WHERE {filter} id > $1 ORDER BY id LIMIT $2"
                )))
                .bind(after)
                .bind(limit);
                if let Some(workspace_id) = workspace_id {
                    query = query.bind(workspace_id);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn destination(&self, workspace_id: &str, id: &str) -> Result<Destination, StoreError> {
                Some(self.destination_by_id(id).await?).filter(|d| d.workspace_id == workspace_id).ok_or(StoreError::NotFound)
            }

            async fn disconnect_destination(&self, workspace_id: &str, id: &str) -> Result<Destination, StoreError> {
                let mut tx = self.write().await?;
                let changed = sqlx::query(
                    "UPDATE destinations SET connected = FALSE, sealed_token = NULL, disconnected_at = $1 WHERE id = $2 AND workspace_id = $3 AND connected = TRUE",
                )
                .bind(now())
                .bind(id)
                .bind(workspace_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 1 {
                    audit(&mut tx, Some(workspace_id), "customer", "destination.disconnect", id).await?;
                }
                tx.commit().await?;
                self.destination(workspace_id, id).await
            }

            async fn create_reviewer(&self, label: &str, token: &NewToken) -> Result<Reviewer, StoreError> {
                let reviewer = Reviewer { id: new_id("rvw"), label: label.to_owned(), display_prefix: token.display_prefix.clone(), created_at: now() };
                let mut tx = self.write().await?;
                sqlx::query("INSERT INTO reviewers (id, label, hash, display_prefix, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(&reviewer.id)
                    .bind(&reviewer.label)
                    .bind(&token.hash)
                    .bind(&reviewer.display_prefix)
                    .bind(&reviewer.created_at)
                    .execute(&mut *tx)
                    .await?;
                global_audit(&mut tx, "operator", "reviewer.create", &reviewer.id).await?;
                tx.commit().await?;
                Ok(reviewer)
            }

            async fn reviewer_by_hash(&self, hash: &str) -> Result<Option<String>, StoreError> {
                let found: Option<(String, String)> = sqlx::query_as("SELECT id, hash FROM reviewers WHERE hash = $1 AND revoked_at IS NULL")
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(found.filter(|(_, stored)| crate::auth::same_hash(stored, hash)).map(|(id, _)| id))
            }

            async fn flags(&self) -> Result<model::Flags, StoreError> {
                let (mode, kill_switch, terms): (String, bool, String) =
                    sqlx::query_as("SELECT publishing_mode, kill_switch, blocked_terms FROM flags WHERE id = 1").fetch_one(&self.pool).await?;
                flags_from_row(&mode, kill_switch, &terms)
            }

            async fn set_flags(&self, flags: &model::Flags) -> Result<(), StoreError> {
                let mode = match flags.publishing_mode {
                    model::PublishingMode::Preview => "preview",
                    model::PublishingMode::Live => "live",
                };
                let terms = serde_json::to_string(&flags.blocked_terms).map_err(|err| StoreError::Corrupt(format!("blocked terms: {err}")))?;
                let mut tx = self.write().await?;
                sqlx::query("UPDATE flags SET publishing_mode = $1, kill_switch = $2, blocked_terms = $3, updated_at = $4 WHERE id = 1")
                    .bind(mode)
                    .bind(flags.kill_switch)
                    .bind(&terms)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                let subject = format!("publishing_mode={mode} kill_switch={} blocked_terms={}", flags.kill_switch, flags.blocked_terms.len());
                global_audit(&mut tx, "operator", "flags.set", &subject).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn idempotent_answer(&self, workspace_id: &str, key: &str, fingerprint: &str) -> Result<Published, StoreError> {
                let mut conn = self.pool.acquire().await?;
                earlier_answer(&mut conn, workspace_id, key, fingerprint).await?.ok_or(StoreError::NotFound)
            }

            async fn decisions(&self, filter: &DecisionFilter, after: i64, limit: i64) -> Result<Vec<DecisionRecord>, StoreError> {
                // Each given field adds one condition and one parameter, numbered from $3.
                let conditions = [
                    ("workspace_id =", &filter.workspace_id),
                    ("key_id =", &filter.key_id),
                    ("id =", &filter.id),
                    ("outcome =", &filter.outcome),
                    ("created_at >=", &filter.since),
                    ("created_at <", &filter.until),
                ];
                let given: Vec<(&str, &String)> = conditions.iter().filter_map(|(sql, value)| value.as_ref().map(|v| (*sql, v))).collect();
                let filters: String = given.iter().enumerate().map(|(i, (sql, _))| format!(" AND {sql} ${}", i + 3)).collect();
                let mut query = sqlx::query_as::<_, DecisionRecord>(sqlx::AssertSqlSafe(format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE seq > $1{filters} ORDER BY seq LIMIT $2"
                )))
                .bind(after)
                .bind(limit);
                for (_, value) in given {
                    query = query.bind(value.clone());
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn publication(&self, workspace_id: &str, id: &str) -> Result<Publication, StoreError> {
                sqlx::query_as::<_, Publication>(
                    sqlx::AssertSqlSafe(format!("SELECT {PUBLICATION_COLUMNS} FROM publications WHERE id = $1 AND workspace_id = $2")),
                )
                .bind(id)
                .bind(workspace_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)
            }

            async fn usage(&self, workspace_id: &str, key_id: &str) -> Result<Vec<UsageCount>, StoreError> {
                let owned: Option<(String,)> = sqlx::query_as("SELECT id FROM tokens WHERE id = $1 AND workspace_id = $2 AND kind = 'api_key'")
                    .bind(key_id)
                    .bind(workspace_id)
                    .fetch_optional(&self.pool)
                    .await?;
                if owned.is_none() {
                    return Err(StoreError::NotFound);
                }
                Ok(sqlx::query_as::<_, UsageCount>(
                    "SELECT method, route, status, COUNT(*) AS count FROM usage WHERE key_id = $1 GROUP BY method, route, status ORDER BY route, method, status",
                )
                .bind(key_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn audit_trail(&self, workspace_id: Option<&str>, after: i64, limit: i64) -> Result<Vec<AuditRecord>, StoreError> {
                let filter = if workspace_id.is_some() { "workspace_id = $3 AND" } else { "" };
                let mut query = sqlx::query_as::<_, AuditRecord>(sqlx::AssertSqlSafe(format!(
                    "SELECT seq, workspace_id, actor, action, subject, created_at FROM audit WHERE {filter} seq > $1 ORDER BY seq LIMIT $2"
                )))
                .bind(after)
                .bind(limit);
                if let Some(workspace_id) = workspace_id {
                    query = query.bind(workspace_id);
                }
                Ok(query.fetch_all(&self.pool).await?)
            }

            async fn set_review(&self, id: &str, review: &str) -> Result<Destination, StoreError> {
                let mut tx = self.write().await?;
                let workspace: Option<(String,)> = sqlx::query_as("UPDATE destinations SET provider_review = $1 WHERE id = $2 RETURNING workspace_id")
                    .bind(review)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some((workspace_id,)) = workspace else { return Err(StoreError::NotFound) };
                audit(&mut tx, Some(&workspace_id), "operator", &format!("destination.review.{review}"), id).await?;
                tx.commit().await?;
                self.destination_by_id(id).await
            }

            async fn claim_delivery(&self) -> Result<Option<Delivery>, StoreError> {
                // A read first: an idle worker polls without taking the write lock.
                let (queued,): (bool,) = sqlx::query_as("SELECT EXISTS (SELECT 1 FROM publications WHERE state = 'queued')").fetch_one(&self.pool).await?;
                if !queued {
                    return Ok(None);
                }
                let mut tx = self.write().await?;
                // Two processes may pick the same row; the state check lets one have it.
                let claimed: Option<(String,)> = sqlx::query_as(
                    "UPDATE publications SET state = 'delivering', updated_at = $1 \
                     WHERE id = (SELECT id FROM publications WHERE state = 'queued' ORDER BY created_at, id LIMIT 1) AND state = 'queued' RETURNING id",
                )
                .bind(now())
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                let Some((id,)) = claimed else { return Ok(None) };
                Ok(Some(
                    sqlx::query_as::<_, Delivery>(
                        "SELECT p.id AS publication_id, p.destination_id, t.provider, t.sealed_token, d.text, d.media \
                         FROM publications p JOIN destinations t ON t.id = p.destination_id JOIN drafts d ON d.id = p.draft_id WHERE p.id = $1",
                    )
                    .bind(&id)
                    .fetch_one(&self.pool)
                    .await?,
                ))
            }

            async fn finish_delivery(&self, publication_id: &str, from_state: &str, delivered: &Delivered) -> Result<Publication, StoreError> {
                let (state, post_id, detail) = match delivered {
                    Delivered::Posted(post_id) => ("delivered", Some(post_id.as_str()), None),
                    Delivered::NotSent(why) => ("failed", None, Some(why.as_str())),
                    Delivered::Unknown(why) => ("unknown", None, Some(why.as_str())),
                };
                let at = now();
                let mut tx = self.write().await?;
                let finished: Option<Publication> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE publications SET state = $1, provider_post_id = $2, detail = $3, updated_at = $4 \
                     WHERE id = $5 AND state = $6 RETURNING {PUBLICATION_COLUMNS}"
                )))
                .bind(state)
                .bind(post_id)
                .bind(detail)
                .bind(&at)
                .bind(publication_id)
                .bind(from_state)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(publication) = finished else {
                    let exists: Option<(String,)> =
                        sqlx::query_as("SELECT id FROM publications WHERE id = $1").bind(publication_id).fetch_optional(&mut *tx).await?;
                    return Err(match exists {
                        Some(_) => StoreError::Conflict(format!("publication `{publication_id}` is not {from_state}")),
                        None => StoreError::NotFound,
                    });
                };
                let (workspace_id, charge_cents) = (publication.workspace_id.clone(), publication.charge_cents);
                if state == "failed" && charge_cents > 0 {
                    let (balance_after_cents,): (Cents,) =
                        sqlx::query_as("UPDATE workspaces SET balance_cents = balance_cents + $1 WHERE id = $2 RETURNING balance_cents")
                            .bind(charge_cents)
                            .bind(&workspace_id)
                            .fetch_one(&mut *tx)
                            .await?;
                    // The unique reference makes a second reversal of the same publication impossible.
                    sqlx::query(
                        "INSERT INTO ledger (id, workspace_id, kind, amount_cents, balance_after_cents, reference, created_at) VALUES ($1, $2, 'reversal', $3, $4, $5, $6)",
                    )
                    .bind(new_id("led"))
                    .bind(&workspace_id)
                    .bind(charge_cents)
                    .bind(balance_after_cents)
                    .bind(format!("reversal:{publication_id}"))
                    .bind(&at)
                    .execute(&mut *tx)
                    .await?;
                }
                if from_state == "unknown" {
                    audit(&mut tx, Some(&workspace_id), "operator", &format!("publication.resolved.{state}"), publication_id).await?;
                }
                tx.commit().await?;
                Ok(publication)
            }

            async fn abandon_deliveries(&self, cutoff: &str) -> Result<u64, StoreError> {
                let mut tx = self.write().await?;
                let abandoned = sqlx::query(
                    "UPDATE publications SET state = 'unknown', detail = 'the delivery was interrupted; whether the provider received it is not known', updated_at = $1 \
                     WHERE state = 'delivering' AND updated_at < $2",
                )
                .bind(now())
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok(abandoned)
            }

            $($writes)*
        }

        impl $store {
            async fn destination_by_id(&self, id: &str) -> Result<Destination, StoreError> {
                sqlx::query_as::<_, Destination>(sqlx::AssertSqlSafe(format!("SELECT {DESTINATION_COLUMNS} FROM destinations WHERE id = $1")))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or(StoreError::NotFound)
            }

            async fn approval(&self, workspace_id: &str, id: &str) -> Result<Approval, StoreError> {
                sqlx::query_as::<_, Approval>(sqlx::AssertSqlSafe(format!(
                    "SELECT {APPROVAL_COLUMNS} FROM approvals a JOIN drafts d ON d.id = a.draft_id WHERE a.id = $1 AND a.workspace_id = $2"
                )))
                .bind(id)
                .bind(workspace_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(StoreError::NotFound)
            }
        }

        /// The earlier answer to `key`, if any: replayed for the same request, refused for another.
        async fn earlier_answer(
            conn: &mut <$db as sqlx::Database>::Connection,
            workspace_id: &str,
            key: &str,
            fingerprint: &str,
        ) -> Result<Option<Published>, StoreError> {
            let claimed: Option<(String, String)> = sqlx::query_as("SELECT fingerprint, decision_id FROM idempotency WHERE workspace_id = $1 AND key = $2")
                .bind(workspace_id)
                .bind(key)
                .fetch_optional(&mut *conn)
                .await?;
            let Some((earlier_fingerprint, decision_id)) = claimed else { return Ok(None) };
            if earlier_fingerprint != fingerprint {
                return Ok(Some(Published::KeyReused));
            }
            let record = sqlx::query_as::<_, DecisionRecord>(
                sqlx::AssertSqlSafe(format!("SELECT {DECISION_COLUMNS} FROM decisions WHERE id = $1")),
            )
            .bind(&decision_id)
            .fetch_one(&mut *conn)
            .await?;
            let publication = sqlx::query_as::<_, Publication>(
                sqlx::AssertSqlSafe(format!("SELECT {PUBLICATION_COLUMNS} FROM publications WHERE decision_id = $1")),
            )
            .bind(&decision_id)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(Some(Published::Replayed(record, publication)))
        }

        /// Appends an audit record of no workspace (policies, reviewers, flags) inside the caller's transaction.
        async fn global_audit(tx: &mut sqlx::Transaction<'static, $db>, actor: &str, action: &str, subject: &str) -> Result<(), sqlx::Error> {
            audit(tx, None, actor, action, subject).await
        }

        /// Appends an audit record, of `workspace_id` if any, inside the caller's transaction.
        async fn audit(tx: &mut sqlx::Transaction<'static, $db>, workspace_id: Option<&str>, actor: &str, action: &str, subject: &str) -> Result<(), sqlx::Error> {
            sqlx::query("INSERT INTO audit (workspace_id, actor, action, subject, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(workspace_id)
                .bind(actor)
                .bind(action)
                .bind(subject)
                .bind(now())
                .execute(&mut **tx)
                .await?;
            Ok(())
        }
    };
}

/// Work to run on a store, whichever backend it turns out to be: written once, generic over the backend.
pub trait WithStore {
    /// What the work gives back.
    type Output;
    /// Runs on the opened, migrated store.
    fn run<S: Store>(self, store: S) -> impl Future<Output = Self::Output>;
}

/// Opens the database at `url` (`postgres://…`, `postgresql://…` or `sqlite:…`), migrates it,
/// and runs `work` on it. The backend is chosen here, once; an error says why it cannot open.
pub async fn with_store<W: WithStore>(url: &str, work: W) -> anyhow::Result<W::Output> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::connect(url)
            .await
            .map_err(|err| anyhow::anyhow!("cannot open the PostgreSQL database: {err}"))?;
        tracing::info!(backend = "postgresql", "database ready");
        Ok(work.run(store).await)
    } else if url.starts_with("sqlite:") {
        let store = sqlite::connect(url)
            .await
            .map_err(|err| anyhow::anyhow!("cannot open the SQLite database: {err}"))?;
        tracing::info!(backend = "sqlite", "database ready");
        Ok(work.run(store).await)
    } else {
        anyhow::bail!("--database-url must start with `postgres://` or `sqlite:`")
    }
}

/// The default database: the SQLite file `postgate.db` in the data directory.
pub fn default_url(data_dir: &std::path::Path) -> String {
    format!("sqlite://{}", data_dir.join("postgate.db").display())
}

/// SQLite, the embedded default.
pub mod sqlite {
    use super::*;

    mod writer;

    // IMMEDIATE takes the write lock up front, so a transaction that reads
    // then writes never fails to upgrade under concurrency. Decisions,
    // charges and usage go through the one writer task instead.
    impl_store!(SqliteStore, sqlx::Sqlite, "BEGIN IMMEDIATE", { writer: writer::Writer, }, {
        async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
            self.writer.token(hash).await
        }

        async fn facts(&self, workspace_id: &str, draft_id: &str, destination_id: &str, claim: Option<&str>) -> Result<Facts, StoreError> {
            self.writer.facts(workspace_id, draft_id, destination_id, claim).await
        }

        async fn touch_token(&self, id: &str) -> Result<(), StoreError> {
            self.writer.touch(id).await
        }

        async fn record_decision(&self, record: DecisionRecord) -> Result<DecisionRecord, StoreError> {
            self.writer.record(record).await
        }

        async fn publish(&self, idempotency_key: &str, fingerprint: &str, record: DecisionRecord, price: Cents) -> Result<Published, StoreError> {
            let workspace_id = record.workspace_id.clone();
            match self.writer.publish(idempotency_key, fingerprint, record, price).await? {
                writer::Recorded::Decided(record, publication) => Ok(Published::Decided(record, publication)),
                // A racing retry claimed the key first, and its claim is committed: answer as it did.
                writer::Recorded::AlreadyClaimed => self.idempotent_answer(&workspace_id, idempotency_key, fingerprint).await,
            }
        }

        async fn record_usage(&self, key_id: &str, workspace_id: &str, method: &str, route: &str, status: u16) -> Result<(), StoreError> {
            self.writer
                .usage(writer::Usage {
                    key_id: key_id.to_owned(),
                    workspace_id: workspace_id.to_owned(),
                    method: method.to_owned(),
                    route: route.to_owned(),
                    status,
                })
                .await
        }
    });

    impl_revision_store!(SqliteStore, None);

    /// Opens (creating if missing) the SQLite file at `url` in WAL mode, migrates it, and starts its writer.
    pub async fn connect(url: &str) -> anyhow::Result<SqliteStore> {
        use std::str::FromStr as _;
        // The pool, the writer and the reader each open the database: in memory, each would get its own.
        if url.contains(":memory:") || url.contains("mode=memory") {
            anyhow::bail!("an in-memory SQLite database cannot be shared by the server's connections; name a file");
        }
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            // FULL: a committed change survives a power loss, not only a crash.
            .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
            .foreign_keys(true)
            // Readers map the file: under a steady stream of commits each read
            // transaction starts with a cold page cache, and copying every page
            // in through read() is most of a decision's database time.
            .pragma("mmap_size", "1073741824")
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(6)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("migrations/sqlite").run(&pool).await?;
        let writer = writer::Writer::start(options.get_filename())?;
        Ok(SqliteStore { pool, writer })
    }
}

/// PostgreSQL, to scale out: every write is its own transaction, and
/// row locks order them across host processes.
pub mod postgres {
    use super::*;

    impl_store!(PgStore, sqlx::Postgres, "BEGIN", {}, {
        async fn token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
            Ok(sqlx::query_as(TOKEN_SQL).bind(hash).fetch_optional(&self.pool).await?)
        }

        async fn facts(&self, workspace_id: &str, draft_id: &str, destination_id: &str, claim: Option<&str>) -> Result<Facts, StoreError> {
            let facts: Option<FactsRow> = sqlx::query_as(FACTS_SQL)
                .bind(draft_id)
                .bind(destination_id)
                .bind(workspace_id)
                .bind(claim)
                .fetch_optional(&self.pool)
                .await?;
            facts
                .ok_or(StoreError::NotFound)?
                .into_facts(workspace_id, draft_id, destination_id)
        }

        async fn touch_token(&self, id: &str) -> Result<(), StoreError> {
            sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now())
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn record_decision(&self, record: DecisionRecord) -> Result<DecisionRecord, StoreError> {
            let mut tx = self.write().await?;
            let (record, _) = write_decision(&mut tx, record, None, 0).await?;
            tx.commit().await?;
            Ok(record)
        }

        async fn publish(
            &self,
            idempotency_key: &str,
            fingerprint: &str,
            record: DecisionRecord,
            price: Cents,
        ) -> Result<Published, StoreError> {
            let workspace_id = record.workspace_id.clone();
            let mut tx = self.write().await?;
            match write_decision(&mut tx, record, Some((idempotency_key, fingerprint)), price).await {
                Ok((record, publication)) => {
                    tx.commit().await?;
                    Ok(Published::Decided(record, publication))
                }
                // A racing retry with the same key committed first: undo everything, answer as it did.
                Err(StoreError::Database(err)) if is_unique_violation(&err) => {
                    tx.rollback().await?;
                    self.idempotent_answer(&workspace_id, idempotency_key, fingerprint).await
                }
                Err(err) => Err(err),
            }
        }

        async fn record_usage(&self, key_id: &str, workspace_id: &str, method: &str, route: &str, status: u16) -> Result<(), StoreError> {
            let at = now();
            let mut tx = self.pool.begin().await?;
            sqlx::query("INSERT INTO usage (key_id, workspace_id, method, route, status, at) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(key_id)
                .bind(workspace_id)
                .bind(method)
                .bind(route)
                .bind(i64::from(status))
                .bind(&at)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE tokens SET last_used_at = $1 WHERE id = $2")
                .bind(&at)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
    });

    // Two processes starting on an empty database must not both bootstrap.
    impl_revision_store!(PgStore, Some("LOCK TABLE policy_activations IN EXCLUSIVE MODE"));

    /// Writes a decision at the head of its workspace's chain inside `tx`:
    /// with its charge, ledger entry and queued publication when it is an
    /// affordable allowed publication, and with its idempotency claim when
    /// given. Two round trips hold the workspace's row lock: the lock (with
    /// the debit), and one statement writing every row.
    async fn write_decision(
        tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        mut record: DecisionRecord,
        claim: Option<(&str, &str)>,
        price: Cents,
    ) -> Result<(DecisionRecord, Option<Publication>), StoreError> {
        // The workspace's row lock orders its chain and its charges across processes.
        let mut locked: Option<(Cents, String)> = None;
        if record.kind == "publication" && record.outcome == "allow" {
            locked = sqlx::query_as(
                "UPDATE workspaces SET balance_cents = balance_cents - $1 WHERE id = $2 AND balance_cents >= $1 RETURNING balance_cents, chain_head",
            )
            .bind(price)
            .bind(&record.workspace_id)
            .fetch_optional(&mut **tx)
            .await?;
            if locked.is_none() {
                // The gates saw a balance that a concurrent charge has since spent: deny.
                record.deny_unaffordable()?;
            }
        }
        let publication = locked.is_some().then(|| Publication::queued(&record, price));
        let (balance_after_cents, head) = match locked {
            Some(locked) => locked,
            None => sqlx::query_as("UPDATE workspaces SET chain_head = chain_head WHERE id = $1 RETURNING balance_cents, chain_head")
                .bind(&record.workspace_id)
                .fetch_optional(&mut **tx)
                .await?
                .ok_or(StoreError::NotFound)?,
        };
        record.charge_cents = if publication.is_some() { price } else { 0 };
        record.prev_hash = head;
        record.hash = record.expected_hash();
        let (key, fingerprint) = claim.unzip();
        let (seq,): (i64,) = sqlx::query_as(
            "WITH d AS (INSERT INTO decisions (id, workspace_id, kind, key_id, draft_id, destination_id, request_digest, policy, revision, outcome, gates, charge_cents, created_at, prev_hash, hash, request) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $21) RETURNING seq), \
             h AS (UPDATE workspaces SET chain_head = $15 WHERE id = $2), \
             l AS (INSERT INTO ledger (id, workspace_id, kind, amount_cents, balance_after_cents, reference, created_at) \
                 SELECT $16, $2, 'charge', -$12::bigint, $17, 'publication:' || $18::text, $13 WHERE $18::text IS NOT NULL), \
             p AS (INSERT INTO publications (id, workspace_id, draft_id, destination_id, decision_id, state, charge_cents, created_at) \
                 SELECT $18::text, $2, $5, $6, $1, 'queued', $12, $13 WHERE $18::text IS NOT NULL), \
             i AS (INSERT INTO idempotency (workspace_id, key, fingerprint, decision_id, created_at) \
                 SELECT $2, $19::text, $20::text, $1, $13 WHERE $19::text IS NOT NULL) \
             SELECT seq FROM d",
        )
        .bind(&record.id)
        .bind(&record.workspace_id)
        .bind(&record.kind)
        .bind(&record.key_id)
        .bind(&record.draft_id)
        .bind(&record.destination_id)
        .bind(&record.request_digest)
        .bind(&record.policy)
        .bind(&record.revision)
        .bind(&record.outcome)
        .bind(&record.gates)
        .bind(record.charge_cents)
        .bind(&record.created_at)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .bind(new_id("led"))
        .bind(balance_after_cents)
        .bind(publication.as_ref().map(|p| p.id.clone()))
        .bind(key)
        .bind(fingerprint)
        .bind(&record.request)
        .fetch_one(&mut **tx)
        .await?;
        record.seq = seq;
        Ok((record, publication))
    }

    /// Connects to PostgreSQL at `url` and migrates it.
    pub async fn connect(url: &str) -> anyhow::Result<PgStore> {
        let pool = sqlx::postgres::PgPoolOptions::new().max_connections(8).connect(url).await?;
        sqlx::migrate!("migrations/postgres").run(&pool).await?;
        Ok(PgStore { pool })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_sort_by_creation_time_and_differ() {
        let first = super::new_id("dec");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let second = super::new_id("dec");
        assert!(first < second, "{first} then {second}");
        assert_eq!(first.len(), "dec_".len() + 20);
        assert!(first[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(super::new_id("dec"), super::new_id("dec"));
    }
}
