//! The OpenAPI document, generated from the handlers' annotations and the
//! types they take and return, served at `GET /openapi.json`.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{accounts, decisions, destinations, drafts, policy, publications, usage};
use crate::server;

/// Every route of the API and server.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "postgate",
        description = "Safety-gated publishing API: drafts, previews and approvals for automation; \
nothing is published or charged unless every gate allows it. Errors are RFC 9457 problem+json; \
send `Authorization: Bearer <token>`."
    ),
    paths(
        server::healthz, server::readyz, server::metrics, server::gates,
        accounts::create_reviewer, accounts::create_workspace, accounts::top_up, accounts::balance, accounts::ledger, accounts::audit,
        accounts::create_api_key, accounts::list_api_keys, accounts::revoke_api_key, usage::key_usage,
        destinations::connect, destinations::callback, destinations::sandbox_consent, destinations::list,
        destinations::disconnect, destinations::review,
        drafts::create, drafts::update, drafts::get_one, drafts::list, drafts::preview_draft,
        drafts::submit, drafts::queue, drafts::approve, drafts::reject,
        decisions::get_flags, decisions::set_flags, decisions::dry_run, decisions::list, decisions::verify, decisions::get_one,
        publications::publish, publications::get_one, publications::resolve,
        policy::active, policy::history, policy::upload, policy::rollback, policy::diff, policy::sign_off, policy::gate,
    ),
    // Schemas only query parameters name are not collected from the paths.
    components(schemas(crate::model::Outcome)),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

/// Declares the bearer-token scheme the routes name.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}
