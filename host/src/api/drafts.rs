//! Drafts, their payload previews, and the approval queue.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::{App, Body, Caller, IdPageQuery, Page, Params, PathId, Problem, workspace_access};
use crate::auth::{Principal, Scope};
use crate::model::MediaRef;
use crate::preview::{Content, Preview, Settings, preview};
use crate::store::{Approval, Draft, Store};

/// The longest draft text, in characters: above every platform's limit but Facebook's.
const MAX_TEXT_CHARS: usize = 10_000;
/// The most media references a draft may hold.
const MAX_MEDIA: usize = 20;
/// The longest media location (URL or id) and alt text, in bytes.
const MAX_LOCATION_BYTES: usize = 2048;
const MAX_ALT_BYTES: usize = 1500;

/// The caller's workspace, if it may act on drafts with `scope`.
fn drafts_workspace(caller: &Principal, scope: Scope) -> Result<&str, Problem> {
    let workspace_id = match caller {
        Principal::Customer { workspace_id } | Principal::ApiKey { workspace_id, .. } => workspace_id.as_str(),
        Principal::Operator | Principal::Reviewer { .. } => {
            return Err(Problem::forbidden("drafts belong to the workspace's customer and keys"));
        }
    };
    workspace_access(caller, workspace_id, scope)?;
    Ok(workspace_id)
}

/// Who acts, as the audit trail names them: `customer` or the key's id.
fn actor(caller: &Principal) -> &str {
    match caller {
        Principal::ApiKey { id, .. } => id,
        _ => "customer",
    }
}

/// A draft's content, as created or replaced.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftContent {
    text: String,
    #[serde(default)]
    media: Vec<MediaRef>,
}

impl DraftContent {
    /// Checks the bounds and returns the content digest.
    fn digest(&self) -> Result<String, Problem> {
        if self.text.chars().count() > MAX_TEXT_CHARS {
            return Err(Problem::invalid(format!("`text` is over {MAX_TEXT_CHARS} characters")));
        }
        if self.media.len() > MAX_MEDIA {
            return Err(Problem::invalid(format!("`media` holds over {MAX_MEDIA} items")));
        }
        if let Some(i) = self
            .media
            .iter()
            .position(|m| m.location.trim().is_empty() || m.location.len() > MAX_LOCATION_BYTES)
        {
            return Err(Problem::invalid(format!(
                "`media[{i}].location` must be 1 to {MAX_LOCATION_BYTES} bytes"
            )));
        }
        if let Some(i) = self
            .media
            .iter()
            .position(|m| m.alt_text.as_ref().is_some_and(|a| a.len() > MAX_ALT_BYTES))
        {
            return Err(Problem::invalid(format!("`media[{i}].alt_text` is over {MAX_ALT_BYTES} bytes")));
        }
        Ok(content_digest(&self.text, &self.media))
    }
}

/// sha256 of the content as canonical JSON: what an approval binds to.
fn content_digest(text: &str, media: &[MediaRef]) -> String {
    let canonical = serde_json::json!({ "text": text, "media": media }).to_string();
    crate::engine::sha256_hex(canonical.as_bytes())
}

/// Creates a draft: the customer, or a key with `drafts:write`.
#[utoipa::path(post, path = "/v1/drafts", tag = "drafts", request_body = DraftContent, responses((status = 201, body = Draft), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn create<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(body): Body<DraftContent>,
) -> Result<(StatusCode, Json<Draft>), Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsWrite)?;
    let digest = body.digest()?;
    let draft = app
        .store
        .create_draft(workspace_id, actor(&caller), &body.text, &body.media, &digest)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id))?;
    Ok((StatusCode::CREATED, Json(draft)))
}

/// `PATCH /v1/drafts/{id}`: the fields to replace.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftPatch {
    text: Option<String>,
    media: Option<Vec<MediaRef>>,
}

/// Changes a draft's text and/or media; an approval of the old content no longer counts.
#[utoipa::path(patch, path = "/v1/drafts/{id}", tag = "drafts", params(("id" = String, Path)), request_body = DraftPatch, responses((status = 200, body = Draft), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn update<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    Body(patch): Body<DraftPatch>,
) -> Result<Json<Draft>, Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsWrite)?;
    // A patch answers with the whole draft, so it needs the right to read it too.
    drafts_workspace(&caller, Scope::DraftsRead)?;
    let current = app
        .store
        .draft(workspace_id, &id)
        .await
        .map_err(|e| Problem::from_store(e, "draft", &id))?;
    let body = DraftContent {
        text: patch.text.unwrap_or(current.text),
        media: patch.media.unwrap_or(current.media),
    };
    let digest = body.digest()?;
    let draft = app
        .store
        .update_draft(workspace_id, actor(&caller), &id, &body.text, &body.media, &digest)
        .await
        .map_err(|e| Problem::from_store(e, "draft", &id))?;
    Ok(Json(draft))
}

/// Reads a draft: the customer, or a key with `drafts:read`.
#[utoipa::path(get, path = "/v1/drafts/{id}", tag = "drafts", params(("id" = String, Path)), responses((status = 200, body = Draft), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn get_one<S: Store>(State(app): State<Arc<App<S>>>, Caller(caller): Caller, PathId(id): PathId) -> Result<Json<Draft>, Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsRead)?;
    Ok(Json(
        app.store
            .draft(workspace_id, &id)
            .await
            .map_err(|e| Problem::from_store(e, "draft", &id))?,
    ))
}

/// Lists drafts: the customer, or a key with `drafts:read`.
#[utoipa::path(get, path = "/v1/drafts", tag = "drafts", params(IdPageQuery), responses((status = 200, body = Page<Draft>), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn list<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<IdPageQuery>,
) -> Result<Json<Page<Draft>>, Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsRead)?;
    let (after, limit) = query.bounds()?;
    let drafts = app
        .store
        .drafts(workspace_id, after, limit)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id))?;
    Ok(Json(Page::of(drafts, limit, |d| &d.id)))
}

/// `?destination=ID` (or `?provider=NAME`) and, for instances that set it, `&max_characters=N`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PreviewQuery {
    /// A destination of the workspace: its provider's rules apply.
    destination: Option<String>,
    /// A provider, to preview without a destination.
    provider: Option<String>,
    /// The instance's character limit (Mastodon).
    max_characters: Option<usize>,
}

/// Renders a draft for a platform: never calls a provider, never needs a token.
#[utoipa::path(get, path = "/v1/drafts/{id}/preview", tag = "drafts", params(("id" = String, Path), PreviewQuery), responses((status = 200, body = Preview), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn preview_draft<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    Params(query): Params<PreviewQuery>,
) -> Result<Json<Preview>, Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsRead)?;
    let draft = app
        .store
        .draft(workspace_id, &id)
        .await
        .map_err(|e| Problem::from_store(e, "draft", &id))?;
    let provider = match (query.destination, query.provider) {
        (Some(destination), None) => {
            workspace_access(&caller, workspace_id, Scope::DestinationsRead)?;
            app.store
                .destination(workspace_id, &destination)
                .await
                .map_err(|e| Problem::from_store(e, "destination", &destination))?
                .provider
        }
        (None, Some(provider)) => provider,
        _ => return Err(Problem::invalid("name either `destination` or `provider`")),
    };
    let settings = Settings {
        max_characters: query.max_characters,
    };
    Ok(Json(preview(
        &provider,
        Content {
            text: &draft.text,
            media: &draft.media,
        },
        settings,
    )))
}

/// An approval-queue item as the queue shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct QueueItem {
    #[serde(flatten)]
    approval: Approval,
    /// False once the draft was edited after submission: the item no longer covers it.
    current: bool,
}

impl From<Approval> for QueueItem {
    fn from(approval: Approval) -> Self {
        let current = approval.content_digest == approval.draft_digest;
        Self { approval, current }
    }
}

/// Puts a draft's current content in the approval queue: the customer, or a key with `drafts:write`.
#[utoipa::path(post, path = "/v1/drafts/{id}/submit", tag = "approvals", params(("id" = String, Path)), responses((status = 201, body = QueueItem), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn submit<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<(StatusCode, Json<QueueItem>), Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsWrite)?;
    let approval = app
        .store
        .submit_draft(workspace_id, &id, actor(&caller))
        .await
        .map_err(|e| Problem::from_store(e, "draft", &id))?;
    Ok((StatusCode::CREATED, Json(approval.into())))
}

/// The approval queue: the customer, or a key with `drafts:read`.
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals", params(IdPageQuery), responses((status = 200, body = Page<QueueItem>), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn queue<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<IdPageQuery>,
) -> Result<Json<Page<QueueItem>>, Problem> {
    let workspace_id = drafts_workspace(&caller, Scope::DraftsRead)?;
    let (after, limit) = query.bounds()?;
    let items = app
        .store
        .approvals(workspace_id, after, limit)
        .await
        .map_err(|e| Problem::from_store(e, "workspace", workspace_id))?;
    Ok(Json(Page::of(
        items.into_iter().map(QueueItem::from).collect(),
        limit,
        |i: &QueueItem| &i.approval.id,
    )))
}

/// Approves an item: the customer only. An API key can never approve.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", params(("id" = String, Path)), responses((status = 200, body = QueueItem), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn approve<S: Store>(state: State<Arc<App<S>>>, caller: Caller, id: PathId) -> Result<Json<QueueItem>, Problem> {
    decide(state, caller, id, true).await
}

/// Rejects an item: the customer only.
#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "approvals", params(("id" = String, Path)), responses((status = 200, body = QueueItem), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn reject<S: Store>(state: State<Arc<App<S>>>, caller: Caller, id: PathId) -> Result<Json<QueueItem>, Problem> {
    decide(state, caller, id, false).await
}

async fn decide<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
    approve: bool,
) -> Result<Json<QueueItem>, Problem> {
    let workspace_id = match &caller {
        Principal::Customer { workspace_id } => workspace_id,
        Principal::ApiKey { .. } => {
            return Err(Problem::forbidden(
                "an API key can never approve or reject: only the customer decides",
            ));
        }
        Principal::Operator | Principal::Reviewer { .. } => {
            return Err(Problem::forbidden("only the workspace's customer approves its drafts"));
        }
    };
    let approval = app
        .store
        .decide(workspace_id, &id, approve)
        .await
        .map_err(|e| Problem::from_store(e, "approval", &id))?;
    Ok(Json(approval.into()))
}
