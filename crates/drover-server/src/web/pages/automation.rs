//! The automation page: packs, rules (with their switch and last match), actions and
//! datastore keys (secrets masked).

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use drover_proto::auth::Role;
use drover_proto::automation::MASK;
use serde::Deserialize;

use super::{Chrome, render, urlencode};
use crate::web::session::{self, Session};
use crate::web::{PageError, Web, csrf};

struct PackRow {
    name: String,
    version: String,
    actions: usize,
    rules: usize,
    builtin: bool,
}

struct RuleRow {
    reference: String,
    enabled: bool,
    trigger: String,
    action: String,
    last: String,
}

struct ActionRow {
    reference: String,
    runner: String,
    description: String,
}

struct KvRowView {
    scope: String,
    name: String,
    value: String,
    secret: bool,
}

#[derive(Template)]
#[template(path = "automation.html")]
struct AutomationPage {
    chrome: Chrome,
    csrf: String,
    operator: bool,
    packs: Vec<PackRow>,
    rules: Vec<RuleRow>,
    actions: Vec<ActionRow>,
    keys: Vec<KvRowView>,
}

/// `GET /ui/automation`.
pub(crate) async fn page(State(web): State<Arc<Web>>, s: Session) -> Result<Response, PageError> {
    let app = &web.app;
    let catalog = web.catalog().await?;
    let packs = catalog
        .packs
        .iter()
        .map(|p| PackRow {
            name: p.pack.name.clone(),
            version: p.pack.version.clone().unwrap_or_default(),
            actions: p.pack.actions.len(),
            rules: catalog
                .rules
                .iter()
                .filter(|r| r.pack == p.pack.name)
                .count(),
            builtin: p.builtin,
        })
        .collect();
    let recent = app.store.list_enforcements(None, 500).await?;
    let rules = catalog
        .rules
        .iter()
        .map(|r| {
            let reference = r.reference();
            let last = recent
                .iter()
                .find(|e| e.rule_ref == reference)
                .map(|e| format!("{} (event {})", e.status, e.event_id))
                .unwrap_or_default();
            RuleRow {
                reference,
                enabled: r.enabled,
                trigger: r.trigger.written.clone(),
                action: r.action.reference.clone(),
                last,
            }
        })
        .collect();
    let mut actions: Vec<ActionRow> = catalog
        .actions
        .values()
        .map(|a| ActionRow {
            reference: a.reference(),
            runner: a.runner.as_str().to_string(),
            description: a.description.clone().unwrap_or_default(),
        })
        .collect();
    actions.sort_by(|a, b| a.reference.cmp(&b.reference));
    let own = format!("user:{}", s.name);
    let keys = app
        .store
        .kv_list(None, "")
        .await?
        .into_iter()
        .filter(|k| k.scope == "system" || k.scope == own || s.role >= Role::Admin)
        .map(|k| KvRowView {
            value: if k.secret { MASK.to_string() } else { k.value },
            scope: k.scope,
            name: k.name,
            secret: k.secret,
        })
        .collect();
    render(&AutomationPage {
        chrome: Chrome::of("automation", &s),
        csrf: s.csrf.clone(),
        operator: s.role >= Role::Operator,
        packs,
        rules,
        actions,
        keys,
    })
}

/// The switch form's fields.
#[derive(Deserialize)]
pub(crate) struct SwitchForm {
    #[serde(default)]
    csrf: Option<String>,
}

/// `POST /ui/rules/{ref}/{enable|disable}`: switch a rule, back to the page.
pub(crate) async fn switch(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    s: Session,
    Path((reference, verb)): Path<(String, String)>,
    Form(f): Form<SwitchForm>,
) -> Result<Response, PageError> {
    session::refuse_cross_site(&headers)?;
    csrf::check(&s.csrf, f.csrf.as_deref())?;
    s.require(Role::Operator)?;
    let on = match verb.as_str() {
        "enable" => true,
        "disable" => false,
        other => return Err(PageError::not_found(format!("no `{other}` on rules"))),
    };
    let app = &web.app;
    let catalog = web.catalog().await?;
    if catalog.rule(&reference).is_none() {
        return Err(PageError::not_found(format!("no rule `{reference}`")));
    }
    app.store.set_rule_enabled(&reference, on, &s.name).await?;
    Ok(Redirect::to(&format!("/ui/automation#rule-{}", urlencode(&reference))).into_response())
}
