//! The policy lifecycle over HTTP: the active revision and its history,
//! uploads and rollbacks (the operator), gate provenance and sign-offs
//! (reviewers), and diffs of a candidate against recorded decisions.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::{App, Body, Caller, Params, PathId, Problem};
use crate::auth::Principal;
use crate::engine::{Chain, GateInfo};
use crate::lifecycle::{self, ActivationError, Candidate, DiffReport, MissingSignOff, RevisionGate};
use crate::provenance::{self, Source};
use crate::store::{Activation, SignOff, Store};

/// The gate contract every gate implements, as reviewers read it.
pub const GATE_WIT: &str = include_str!("../../../wit/gate.wit");
/// The world a gate component targets.
pub const GATE_WORLD: &str = "postgate:gate/safety-gate@0.1.0";
/// Requests carrying components may be this large.
pub const MAX_UPLOAD_BYTES: usize = 16 << 20;
/// The most activations a rollback reads to find the revision before the current one.
const MAX_HISTORY: i64 = 100_000;
/// The longest note on an activation or sign-off.
const MAX_NOTE_CHARS: usize = 2_000;

/// A stored revision, as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct RevisionView {
    /// `rev_…`: 16 hex digits of the manifest's sha256, which covers every pin.
    id: String,
    /// The policy's name.
    name: String,
    /// The gates in chain order, with their digests and modes.
    gates: Vec<RevisionGate>,
    /// The manifest, as written.
    manifest: String,
    /// Who first stored it.
    created_by: String,
    /// RFC 3339, UTC.
    created_at: String,
}

/// One entry of the activation history.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivationView {
    /// Position in the history: the cursor of `GET /v1/policy/revisions`.
    seq: i64,
    /// The revision activated.
    revision: String,
    /// `bootstrap`, `reload`, `upload` or `rollback`.
    action: String,
    /// Who activated it: `operator`, or `host` for the policy file.
    actor: String,
    /// Why, in their words.
    note: String,
    /// RFC 3339, UTC.
    activated_at: String,
}

impl From<Activation> for ActivationView {
    fn from(activation: Activation) -> Self {
        Self {
            seq: activation.seq,
            revision: activation.revision_id,
            action: activation.action,
            actor: activation.actor,
            note: activation.note,
            activated_at: activation.created_at,
        }
    }
}

/// The active policy.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActivePolicyView {
    /// The revision active in the database, which every process follows.
    revision: RevisionView,
    /// How it became active.
    activation: ActivationView,
    /// The revision the answering process runs: the same, unless it is still swapping.
    running: String,
    /// Distinct reviewers strict mode requires per gate component of an upload (0: strict mode off).
    sign_offs_required: usize,
}

/// One revision in the history, with how it became active.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The activation.
    #[serde(flatten)]
    activation: ActivationView,
    /// The policy's name.
    name: String,
    /// The gates in chain order, with their digests and modes.
    gates: Vec<RevisionGate>,
}

/// A page of the history, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HistoryPage {
    /// Activations, newest first.
    items: Vec<HistoryEntry>,
    /// Pass as `before` for the next, older page.
    next_cursor: Option<i64>,
}

/// `?before=SEQ&limit=N`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only activations older than this `seq` (the previous page's `next_cursor`).
    before: Option<i64>,
    /// At most this many (default 50, at most 200).
    limit: Option<i64>,
}

/// A policy to upload: its manifest and any components the server does not hold yet.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyUpload {
    /// The manifest (TOML). Every gate pins its component with `sha256`; `component` paths are ignored.
    manifest: String,
    /// Component files, base64; each is matched to the gates by its sha256.
    #[serde(default)]
    components: Vec<String>,
    /// Why, for the history.
    #[serde(default)]
    note: String,
}

/// A candidate policy to replay recorded decisions against.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DiffRequest {
    /// The candidate's manifest (TOML), as for `PUT /v1/policy`.
    manifest: String,
    /// Component files the server does not hold yet, base64.
    #[serde(default)]
    components: Vec<String>,
    /// Replay decisions recorded since this time: RFC 3339, or a duration back from now such as `2h`.
    since: String,
    /// Replay at most this many decisions (default 10,000, at most 100,000).
    limit: Option<i64>,
}

/// Which revision to reactivate.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    /// A revision that was active before; by default the one active before the current one.
    revision: Option<String>,
    /// Why, for the history.
    #[serde(default)]
    note: String,
}

/// A reviewer's sign-off.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignOffRequest {
    /// What was checked: source read, build reproduced, tests run.
    note: String,
}

/// A gate component as a reviewer inspects it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct GateDetail {
    /// The component's sha256.
    pub(crate) digest: String,
    /// Its size in bytes.
    pub(crate) size: usize,
    /// Its name in the active chain; otherwise as it describes itself.
    pub(crate) name: String,
    /// Its version.
    pub(crate) version: String,
    /// What it checks.
    pub(crate) summary: String,
    /// The WIT world it implements.
    pub(crate) world: &'static str,
    /// The WIT package of the gate contract: exactly what a gate sees and may return.
    pub(crate) wit: &'static str,
    /// Where it sits in the active chain (config, limits, mode, source reference), if it does.
    pub(crate) active: Option<GateInfo>,
    /// Reviewers' sign-offs of this digest.
    pub(crate) sign_offs: Vec<SignOff>,
    /// The source files the component was built from, embedded in it (and so
    /// covered by its digest); `postgate gate verify` rebuilds from them. Absent
    /// when the component was not built by `postgate gate build`.
    pub(crate) source: Option<Source>,
}

fn not_operator(caller: &Principal, what: &str) -> Result<(), Problem> {
    if *caller == Principal::Operator {
        Ok(())
    } else {
        Err(Problem::forbidden(&format!("only the operator {what}")))
    }
}

fn readers_only(caller: &Principal) -> Result<(), Problem> {
    if matches!(caller, Principal::ApiKey { .. }) {
        return Err(Problem::forbidden("API keys do not read the policy"));
    }
    Ok(())
}

fn note(text: &str) -> Result<&str, Problem> {
    if text.chars().count() > MAX_NOTE_CHARS {
        return Err(Problem::invalid(format!("`note` takes at most {MAX_NOTE_CHARS} characters")));
    }
    Ok(text.trim())
}

fn view(revision: crate::store::Revision) -> Result<RevisionView, Problem> {
    Ok(RevisionView {
        gates: serde_json::from_str(&revision.gates).map_err(Problem::internal)?,
        id: revision.id,
        name: revision.name,
        manifest: revision.manifest,
        created_by: revision.created_by,
        created_at: revision.created_at,
    })
}

fn refused(err: ActivationError) -> Problem {
    match err {
        ActivationError::Store(err) => Problem::internal(err),
        err @ ActivationError::File(_) => Problem::internal(err),
        ActivationError::UnknownRevision(id) => Problem::not_found("revision", &id),
        err @ (ActivationError::Policy(_) | ActivationError::Gate { .. } | ActivationError::Component { .. }) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "policy_invalid",
            "Policy refused",
            format!("{err}; the active policy stays"),
        ),
    }
}

fn decode(components: &[String]) -> Result<Vec<Vec<u8>>, Problem> {
    components
        .iter()
        .enumerate()
        .map(|(i, text)| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|err| Problem::invalid(format!("`components[{i}]` is not base64: {err}")))
        })
        .collect()
}

/// An uploaded candidate with every component it needs, the held ones included.
async fn candidate<S: Store>(app: &App<S>, manifest: &str, components: &[String]) -> Result<Candidate, Problem> {
    let candidate = Candidate::from_upload(manifest, decode(components)?).map_err(refused)?;
    candidate.with_held(&app.store).await.map_err(Problem::internal)
}

/// The active policy revision, how it became active, and what this process runs.
#[utoipa::path(get, path = "/v1/policy", tag = "policy", responses((status = 200, body = ActivePolicyView), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn active<S: Store>(State(app): State<Arc<App<S>>>, Caller(caller): Caller) -> Result<Json<ActivePolicyView>, Problem> {
    readers_only(&caller)?;
    let activation = lifecycle::active(&app.store)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| Problem::not_found("active policy revision", "(none: the policy file has broken gates)"))?;
    let revision = app
        .store
        .revision(&activation.revision_id)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| Problem::internal(format!("revision {} is activated but not stored", activation.revision_id)))?;
    Ok(Json(ActivePolicyView {
        revision: view(revision)?,
        activation: activation.into(),
        running: app.policy.current().revision().to_owned(),
        sign_offs_required: app.sign_offs_required,
    }))
}

/// The activation history, newest first: who activated which revision, when, how and why.
#[utoipa::path(get, path = "/v1/policy/revisions", tag = "policy", params(HistoryQuery), responses((status = 200, body = HistoryPage), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn history<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Params(query): Params<HistoryQuery>,
) -> Result<Json<HistoryPage>, Problem> {
    readers_only(&caller)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::invalid("`limit` must be 1 to 200"));
    }
    Ok(Json(history_page(&app.store, query.before.unwrap_or(i64::MAX), limit).await?))
}

/// A page of the activation history with each revision's gates.
async fn history_page<S: Store>(store: &S, before: i64, limit: i64) -> Result<HistoryPage, Problem> {
    let rows = store.history(before, limit).await.map_err(Problem::internal)?;
    let next_cursor = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|row| row.activation.seq))
        .flatten();
    let items = rows
        .into_iter()
        .map(|row| {
            Ok(HistoryEntry {
                name: row.name,
                gates: serde_json::from_str(&row.gates).map_err(Problem::internal)?,
                activation: row.activation.into(),
            })
        })
        .collect::<Result<_, Problem>>()?;
    Ok(HistoryPage { items, next_cursor })
}

/// Uploads a policy (the operator): validated, compiled, checked for sign-offs
/// in strict mode, stored as a revision and activated on every process.
/// Once every gate loads, its components are held even if strict mode refuses
/// the policy, so reviewers can inspect and sign them off.
#[utoipa::path(put, path = "/v1/policy", tag = "policy", request_body = PolicyUpload, responses((status = 201, body = RevisionView), (status = 409, description = "strict mode: gates lack sign-offs; `missing` lists them", body = Problem, content_type = "application/problem+json"), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn upload<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(upload): Body<PolicyUpload>,
) -> Result<(StatusCode, Json<RevisionView>), Problem> {
    not_operator(&caller, "uploads policies")?;
    let note = note(&upload.note)?.to_owned();
    let candidate = Arc::new(candidate(&app, &upload.manifest, &upload.components).await?);
    let chain = lifecycle::compile(&app.policy, Arc::clone(&candidate)).await.map_err(refused)?;
    // Every gate loads: hold the components, even if strict mode refuses
    // below, so that reviewers can read and sign off exactly these.
    candidate.hold(&app.store).await.map_err(refused)?;
    let missing = lifecycle::missing_sign_offs(&app.store, &candidate, app.sign_offs_required)
        .await
        .map_err(Problem::internal)?;
    if !missing.is_empty() {
        return Err(missing_sign_offs(&missing));
    }
    let activated = activate(&app, &candidate, chain, "upload", &note).await?;
    Ok((StatusCode::CREATED, Json(activated)))
}

/// Stores and activates `candidate` for every process, and runs `chain` (its compiled form) here now.
async fn activate<S: Store>(app: &App<S>, candidate: &Candidate, chain: Chain, action: &str, note: &str) -> Result<RevisionView, Problem> {
    let revision = candidate.revision("operator").map_err(Problem::internal)?;
    let seq = app
        .store
        .activate(&revision, action, "operator", note, false)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(|| Problem::internal(format!("revision {} was not activated", revision.id)))?;
    app.policy.install(seq, chain);
    tracing::info!(revision = %revision.id, action, "policy activated");
    // The revision as first stored, when this activates one stored before.
    let stored = app
        .store
        .revision(&revision.id)
        .await
        .map_err(Problem::internal)?
        .unwrap_or(revision);
    view(stored)
}

/// Strict mode's refusal, listing every gate short of sign-offs.
fn missing_sign_offs(missing: &[MissingSignOff]) -> Problem {
    let listed: Vec<String> = missing
        .iter()
        .map(|m| format!("`{}` ({}: {} of {})", m.gate, m.digest, m.have, m.need))
        .collect();
    Problem::new(
        StatusCode::CONFLICT,
        "sign_off_missing",
        "Sign-offs missing",
        format!(
            "strict mode: these gates lack reviewer sign-offs: {}; a reviewer signs each off with `POST /v1/gates/{{digest}}/sign-off`",
            listed.join(", ")
        ),
    )
    .with("missing", serde_json::to_value(missing).unwrap_or_default())
}

/// Reactivates an earlier revision (the operator), on every process.
#[utoipa::path(post, path = "/v1/policy/rollback", tag = "policy", request_body = Rollback, responses((status = 200, body = RevisionView), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn rollback<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(request): Body<Rollback>,
) -> Result<Json<RevisionView>, Problem> {
    not_operator(&caller, "rolls back the policy")?;
    let note = note(&request.note)?.to_owned();
    let mut history = app.store.activations(i64::MAX, MAX_HISTORY).await.map_err(Problem::internal)?;
    history.reverse();
    let current = history.last().map(|a| a.revision_id.clone());
    let target = match request.revision {
        // Revisions are stored only as they are activated: any stored one was active once.
        Some(id) => id,
        None => lifecycle::rollback_target(&history).map(str::to_owned).ok_or_else(|| {
            Problem::new(
                StatusCode::CONFLICT,
                "nothing_to_roll_back",
                "Nothing to roll back",
                "no revision was active before the current one",
            )
        })?,
    };
    if Some(&target) == current.as_ref() {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "already_active",
            "Already active",
            format!("revision `{target}` is the active one"),
        ));
    }
    let candidate = Arc::new(Candidate::stored(&app.store, &target).await.map_err(refused)?);
    let chain = lifecycle::compile(&app.policy, Arc::clone(&candidate)).await.map_err(refused)?;
    Ok(Json(activate(&app, &candidate, chain, "rollback", &note).await?))
}

/// Replays recorded decisions against a candidate policy and reports which
/// outcomes would change (the operator). Nothing is activated or written.
#[utoipa::path(post, path = "/v1/policy/diff", tag = "policy", request_body = DiffRequest, responses((status = 200, body = DiffReport), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn diff<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    Body(request): Body<DiffRequest>,
) -> Result<Json<DiffReport>, Problem> {
    // Diffing runs uploaded components over recorded traffic: the operator's, like loading a policy.
    not_operator(&caller, "diffs candidate policies")?;
    let limit = request.limit.unwrap_or(lifecycle::DIFF_LIMIT);
    if !(1..=lifecycle::MAX_DIFF_LIMIT).contains(&limit) {
        return Err(Problem::invalid(format!("`limit` must be 1 to {}", lifecycle::MAX_DIFF_LIMIT)));
    }
    let since = lifecycle::parse_since(&request.since).map_err(Problem::invalid)?;
    let candidate = Arc::new(candidate(&app, &request.manifest, &request.components).await?);
    let chain = lifecycle::compile(&app.policy, candidate).await.map_err(refused)?;
    let report = lifecycle::diff(&app.store, Arc::new(chain), &since, limit)
        .await
        .map_err(Problem::internal)?;
    Ok(Json(report))
}

/// Signs off a gate component the server holds (reviewers only). Audited; a repeat changes nothing.
#[utoipa::path(post, path = "/v1/gates/{id}/sign-off", tag = "gates", params(("id" = String, Path, description = "the component's sha256")), request_body = SignOffRequest, responses((status = 201, body = SignOff), (status = 200, description = "signed off before", body = SignOff), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn sign_off<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(digest): PathId,
    Body(request): Body<SignOffRequest>,
) -> Result<(StatusCode, Json<SignOff>), Problem> {
    let Principal::Reviewer { id: reviewer } = caller else {
        return Err(Problem::forbidden(
            "only reviewers sign off gates, never the operator who uploads them",
        ));
    };
    let (sign_off, created) = record_sign_off(&app.store, &reviewer, &digest, &request.note).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(sign_off)))
}

/// Records `reviewer`'s sign-off of `digest`, checked.
pub async fn record_sign_off<S: Store>(store: &S, reviewer: &str, digest: &str, text: &str) -> Result<(SignOff, bool), Problem> {
    if !crate::policy::is_sha256(digest) {
        return Err(Problem::invalid(format!(
            "`{digest}` is not a sha256: expected 64 lowercase hex digits"
        )));
    }
    let text = note(text)?;
    if text.is_empty() {
        return Err(Problem::invalid("`note` must say what was checked"));
    }
    store
        .sign_off(digest, reviewer, text)
        .await
        .map_err(|err| Problem::from_store(err, "gate component", digest))
}

/// A gate by its name in the active chain, or any held component by its sha256:
/// digest, size, self-description, WIT world and contract, place in the chain,
/// sign-offs, and the source embedded at build time.
#[utoipa::path(get, path = "/v1/gates/{id}", tag = "gates", params(("id" = String, Path, description = "a gate name of the active chain, or a component's sha256")), responses((status = 200, body = GateDetail), (status = "4XX", description = "a problem: see its `type` and `detail`", body = Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
pub async fn gate<S: Store>(
    State(app): State<Arc<App<S>>>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<Json<GateDetail>, Problem> {
    readers_only(&caller)?;
    Ok(Json(gate_detail(&app, &id).await?))
}

/// What [`gate`] answers, for the API and the console.
pub async fn gate_detail<S: Store>(app: &App<S>, id: &str) -> Result<GateDetail, Problem> {
    let chain = app.policy.current();
    let active = chain.gates().into_iter().find(|gate| gate.name == id || gate.digest == id);
    let digest = match &active {
        Some(gate) => gate.digest.clone(),
        None if crate::policy::is_sha256(id) => id.to_owned(),
        None => return Err(Problem::not_found("gate", id)),
    };
    let mut held = app
        .store
        .components(std::slice::from_ref(&digest))
        .await
        .map_err(Problem::internal)?;
    let bytes = held.remove(&digest).ok_or_else(|| Problem::not_found("gate component", &digest))?;
    // Uploads refuse a malformed section, so a held component's reads.
    let source = provenance::embedded(&bytes).map_err(|err| Problem::internal(format!("held component {digest}: {err}")))?;
    let size = bytes.len();
    let description = match &active {
        // The running chain described its gates when it loaded them.
        Some(gate) => crate::engine::Description {
            name: gate.name.clone(),
            version: gate.version.clone(),
            summary: gate.summary.clone(),
        },
        None => {
            // Compiling (on a cache miss) takes milliseconds: not on the async workers.
            let policy = Arc::clone(&app.policy);
            tokio::task::spawn_blocking(move || policy.runtime().inspect(&bytes))
                .await
                .map_err(Problem::internal)?
                .map_err(|err| Problem::internal(format!("held component {digest}: {err}")))?
                .description
                .unwrap_or_else(|| crate::engine::Description {
                    name: String::new(),
                    version: String::new(),
                    summary: String::new(),
                })
        }
    };
    Ok(GateDetail {
        source,
        size,
        name: description.name,
        version: description.version,
        summary: description.summary,
        world: GATE_WORLD,
        wit: GATE_WIT,
        sign_offs: app
            .store
            .sign_offs(std::slice::from_ref(&digest))
            .await
            .map_err(Problem::internal)?,
        digest,
        active,
    })
}
