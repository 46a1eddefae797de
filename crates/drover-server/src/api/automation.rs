//! Packs, actions and rules: install and remove packs, list and run actions, list,
//! switch and test rules.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use drover_core::automation::action::{Action, runner_parameters};
use drover_core::automation::jinja;
use drover_core::automation::pack::PackFile;
use drover_core::automation::params::MASK;
use drover_core::automation::rule::{Rule, RuleKind};
use drover_proto::automation::{
    ActionRun, ActionSummary, CheckInfo, EnforcementInfo, PackInfo, PackInstall, PackInstalled,
    ParamInfo, RuleInfo, RuleTest, RuleTestResult,
};
use drover_proto::executions::Execution;
use drover_proto::page::Page;
use drover_store::{EnforcementRow, NewAction, PackWrite};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::paging::{self, PageParams};
use crate::auth::{ApiCaller, Operator};
use crate::automation::catalog::{Catalog, PackEntry, check_pack};
use crate::automation::prepare::{self, KvSnapshot};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, Params, Path};
use crate::state::AppState;

/// Most files in one pack.
const MAX_PACK_FILES: usize = 2000;

async fn catalog(state: &AppState) -> ApiResult<Arc<Catalog>> {
    state
        .automation
        .catalog
        .get(state)
        .await
        .map_err(ApiError::internal)
}

fn pack_info(entry: &PackEntry, catalog: &Catalog) -> PackInfo {
    let p = &entry.pack;
    PackInfo {
        name: p.name.clone(),
        version: p.version.clone(),
        description: p.description.clone(),
        builtin: entry.builtin,
        actions: p.actions.iter().map(Action::reference).collect(),
        rules: catalog
            .rules
            .iter()
            .filter(|r| r.pack == p.name)
            .map(Rule::reference)
            .collect(),
        ignored: p.ignored.clone(),
        installed_at: entry.installed.as_ref().map(|i| i.0),
        installed_by: entry.installed.as_ref().map(|i| i.1.clone()),
    }
}

/// `GET /packs`: every pack, built in and installed.
#[utoipa::path(get, path = "/packs", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(PageParams),
    responses((status = 200, description = "A page of packs, by name", body = Page<PackInfo>)))]
pub(crate) async fn list_packs(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(q): Params<PageParams>,
) -> ApiResult<Json<Page<PackInfo>>> {
    let limit = paging::limit(q.limit)?;
    let c = catalog(&state).await?;
    let packs = c.packs.iter().map(|p| pack_info(p, &c)).collect();
    Ok(Json(paging::page_after(
        packs,
        q.after.as_deref(),
        limit,
        |p| p.name.clone(),
    )))
}

/// `POST /packs`: install or replace a pack (StackStorm's layout). Every file is
/// checked first — action metadata, rules, workflows, policies, the actions they use —
/// and any error refuses the whole pack; a replaced pack changes in one transaction.
#[utoipa::path(post, path = "/packs", tag = "automation",
    security(("api_token" = ["operator"])),
    request_body = PackInstall,
    responses(
        (status = 200, description = "Installed (or unchanged)", body = PackInstalled),
        (status = 400, description = "Bad request body", body = drover_proto::error::ApiError),
        (status = 409, description = "A built-in pack has that name", body = drover_proto::error::ApiError),
        (status = 422, description = "The pack has errors (each with file, line, field)", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn install_pack(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Body(req): Body<PackInstall>,
) -> ApiResult<Json<PackInstalled>> {
    if req.files.is_empty() || req.files.len() > MAX_PACK_FILES {
        return Err(ApiError::bad_request(format!(
            "files: a pack has 1 to {MAX_PACK_FILES} files"
        )));
    }
    for f in &req.files {
        if f.path.starts_with('/') || f.path.split('/').any(|p| p == ".." || p.is_empty()) {
            return Err(ApiError::bad_request(format!(
                "files: `{}` is not a relative path inside the pack",
                f.path
            )));
        }
    }
    let files: Vec<PackFile> = req
        .files
        .iter()
        .map(|f| PackFile {
            path: f.path.clone(),
            text: f.text.clone(),
        })
        .collect();
    let current = catalog(&state).await?;
    let known = |r: &str| current.actions.contains_key(r);
    let checked = check_pack("", &files, &known).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        ApiError::unprocessable(format!(
            "the pack has {} error{}:\n{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            lines.join("\n")
        ))
    })?;
    let name = checked.pack.name.clone();
    if current.pack(&name).is_some_and(|p| p.builtin) {
        return Err(ApiError::conflict(format!(
            "`{name}` is a built-in pack; choose another name"
        )));
    }
    let hash = checked.pack.content_hash();
    let previous = current.pack(&name).and_then(|p| p.pack.version.clone());
    let unchanged = current
        .pack(&name)
        .is_some_and(|p| p.pack.content_hash() == hash);
    let replaced = state
        .store
        .install_pack(
            &PackWrite {
                name: name.clone(),
                version: checked.pack.version.clone().unwrap_or_default(),
                description: checked.pack.description.clone().unwrap_or_default(),
                content_hash: hash,
                files: serde_json::to_value(&req.files).map_err(ApiError::internal)?,
            },
            &caller.name,
        )
        .await?;
    let now = catalog(&state).await?;
    let entry = now
        .pack(&name)
        .ok_or_else(|| ApiError::internal("the pack vanished after it was installed"))?;
    Ok(Json(PackInstalled {
        pack: pack_info(entry, &now),
        replaced: replaced.or(previous).filter(|_| !unchanged),
        unchanged,
    }))
}

/// `DELETE /packs/{name}`: remove an installed pack, its actions and rules.
#[utoipa::path(delete, path = "/packs/{name}", tag = "automation",
    security(("api_token" = ["operator"])),
    params(("name" = String, Path, description = "Pack name")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such pack", body = drover_proto::error::ApiError),
        (status = 409, description = "Built in, or other packs use its actions", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn remove_pack(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let c = catalog(&state).await?;
    let Some(entry) = c.pack(&name) else {
        return Err(ApiError::not_found(format!("no pack `{name}`")));
    };
    if entry.builtin {
        return Err(ApiError::conflict(format!(
            "`{name}` is built in and cannot be removed"
        )));
    }
    let prefix = format!("{name}.");
    let users: Vec<String> = c
        .rules
        .iter()
        .filter(|r| r.pack != name && r.action.reference.starts_with(&prefix))
        .map(Rule::reference)
        .chain(
            c.workflows
                .iter()
                .filter(|(a, wf)| {
                    !a.starts_with(&prefix)
                        && wf.spec.actions().iter().any(|u| u.starts_with(&prefix))
                })
                .map(|(a, _)| a.clone()),
        )
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "other packs use `{name}`'s actions: {}",
            users.join(", ")
        )));
    }
    state.store.remove_pack(&name, &caller.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn summary(a: &Action, detail: bool) -> ActionSummary {
    let runner = runner_parameters(a.runner);
    let parameters = if detail {
        a.effective_parameters()
            .iter()
            .map(|p| ParamInfo {
                name: p.name.clone(),
                type_: p.type_.clone(),
                description: p.description.clone(),
                required: p.required,
                secret: p.secret,
                immutable: p.immutable,
                position: p.position,
                default: p
                    .default
                    .clone()
                    .map(|d| if p.secret { json!(MASK) } else { d }),
                enum_: p.enum_.clone(),
                runner: runner.contains(&p.name) && !a.parameters.contains(&p.name),
            })
            .collect()
    } else {
        Vec::new()
    };
    ActionSummary {
        reference: a.reference(),
        pack: a.pack.clone(),
        name: a.name.clone(),
        runner_type: a.runner.as_str().to_string(),
        description: a.description.clone(),
        enabled: a.enabled,
        entry_point: a.entry_point.clone(),
        tags: a.tags.clone(),
        parameters,
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ActionListParams {
    /// Only actions of this pack.
    #[serde(default)]
    pack: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[serde(default)]
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Cursor: the `next` of the previous page (an action ref).
    #[serde(default)]
    after: Option<String>,
}

/// `GET /actions`: every action, by ref.
#[utoipa::path(get, path = "/actions", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(ActionListParams),
    responses((status = 200, description = "A page of actions, by ref", body = Page<ActionSummary>)))]
pub(crate) async fn list_actions(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(p): Params<ActionListParams>,
) -> ApiResult<Json<Page<ActionSummary>>> {
    let limit = paging::limit(p.limit)?;
    let c = catalog(&state).await?;
    let out: Vec<ActionSummary> = c
        .actions
        .values()
        .filter(|a| p.pack.as_ref().is_none_or(|pk| &a.pack == pk))
        .map(|a| summary(a, false))
        .collect();
    Ok(Json(paging::page_after(
        out,
        p.after.as_deref(),
        limit,
        |a| a.reference.clone(),
    )))
}

/// `GET /actions/{ref}`: one action with its parameters (runner ones included).
#[utoipa::path(get, path = "/actions/{ref}", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(("ref" = String, Path, description = "Action ref (`pack.name`)")),
    responses(
        (status = 200, description = "The action", body = ActionSummary),
        (status = 404, description = "No such action", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get_action(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> ApiResult<Json<ActionSummary>> {
    let c = catalog(&state).await?;
    let a = c
        .actions
        .get(&reference)
        .ok_or_else(|| ApiError::not_found(format!("no action `{reference}`")))?;
    Ok(Json(summary(a, true)))
}

/// Records a run of `reference` for `actor` with `given`: checked against the
/// parameter schema first (a violation is a 400 naming the parameter, and nothing
/// runs). Shared by the API and the dashboard.
pub(crate) async fn run_action(
    state: &Arc<AppState>,
    actor: &str,
    reference: &str,
    given: serde_json::Map<String, Value>,
) -> ApiResult<Execution> {
    let c = catalog(state).await?;
    let a = c
        .actions
        .get(reference)
        .ok_or_else(|| ApiError::not_found(format!("no action `{reference}`")))?;
    if !a.enabled {
        return Err(ApiError::conflict(format!(
            "action `{reference}` is disabled"
        )));
    }
    let kv = KvSnapshot::load(state).await.map_err(ApiError::internal)?;
    // Values given with Jinja (`cmd="echo {{ st2kv.system.x }}"`) render against the
    // datastore, as StackStorm renders live parameters.
    let env = jinja::shared();
    let ctx = minijinja::context! { st2kv => jinja::st2kv(kv.for_user(actor)) };
    let given = match jinja::render_json(env, &Value::Object(given), &ctx, true) {
        Ok(Value::Object(m)) => m,
        Ok(_) => serde_json::Map::new(),
        Err(e) => return Err(ApiError::bad_request(format!("parameters: {e}"))),
    };
    let id = uuid::Uuid::now_v7().to_string();
    let prepared =
        prepare::prepare(state, a, &given, &kv, actor, &id).map_err(ApiError::bad_request)?;
    Ok(state
        .store
        .create_action(&NewAction {
            id,
            action_ref: a.reference(),
            actor: actor.to_string(),
            spec: prepared.spec,
            params: prepared.params,
            ..NewAction::default()
        })
        .await?)
}

/// `POST /actions/{ref}/run`: run an action now.
#[utoipa::path(post, path = "/actions/{ref}/run", tag = "automation",
    security(("api_token" = ["operator"])),
    params(("ref" = String, Path, description = "Action ref (`pack.name`)")),
    request_body = ActionRun,
    responses(
        (status = 201, description = "The execution, queued", body = Execution),
        (status = 400, description = "A parameter is missing, unknown or invalid", body = drover_proto::error::ApiError),
        (status = 404, description = "No such action", body = drover_proto::error::ApiError),
        (status = 409, description = "The action is disabled", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn run(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path(reference): Path<String>,
    Body(req): Body<ActionRun>,
) -> ApiResult<(StatusCode, Json<Execution>)> {
    let exec = run_action(&state, &caller.name, &reference, req.parameters).await?;
    Ok((StatusCode::CREATED, Json(exec)))
}

fn enforcement(e: EnforcementRow) -> EnforcementInfo {
    EnforcementInfo {
        rule: e.rule_ref,
        event_id: e.event_id,
        execution_id: e.execution_id,
        status: e.status,
        reason: e.reason,
        source_execution: e.source_execution,
        time: e.time,
    }
}

fn rule_info(r: &Rule) -> RuleInfo {
    RuleInfo {
        reference: r.reference(),
        pack: r.pack.clone(),
        name: r.name.clone(),
        description: r.description.clone(),
        enabled: r.enabled,
        trigger: r.trigger.kind.clone(),
        trigger_written: r.trigger.written.clone(),
        trigger_parameters: r.trigger.parameters.clone(),
        action: r.action.reference.clone(),
        action_parameters: r.action.parameters.clone(),
        kind: match r.kind {
            RuleKind::Standard => "standard".into(),
            RuleKind::Backstop => "backstop".into(),
        },
        file: r.file.clone(),
        enforcements: Vec::new(),
    }
}

/// `GET /rules`: every rule, with its switch.
#[utoipa::path(get, path = "/rules", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(PageParams),
    responses((status = 200, description = "A page of rules, by ref", body = Page<RuleInfo>)))]
pub(crate) async fn list_rules(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(q): Params<PageParams>,
) -> ApiResult<Json<Page<RuleInfo>>> {
    let limit = paging::limit(q.limit)?;
    let c = catalog(&state).await?;
    let rules = c.rules.iter().map(rule_info).collect();
    Ok(Json(paging::page_after(
        rules,
        q.after.as_deref(),
        limit,
        |r| r.reference.clone(),
    )))
}

/// `GET /rules/{ref}`: one rule and its last 20 matches.
#[utoipa::path(get, path = "/rules/{ref}", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(("ref" = String, Path, description = "Rule ref (`pack.name`)")),
    responses(
        (status = 200, description = "The rule", body = RuleInfo),
        (status = 404, description = "No such rule", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn get_rule(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
) -> ApiResult<Json<RuleInfo>> {
    let c = catalog(&state).await?;
    let r = c
        .rule(&reference)
        .ok_or_else(|| ApiError::not_found(format!("no rule `{reference}`")))?;
    let mut info = rule_info(r);
    info.enforcements = state
        .store
        .list_enforcements(Some(&reference), 20)
        .await?
        .into_iter()
        .map(enforcement)
        .collect();
    Ok(Json(info))
}

/// `POST /rules/{ref}/{enable|disable}`: switch a rule on or off (an event records it).
#[utoipa::path(post, path = "/rules/{ref}/{switch}", tag = "automation",
    security(("api_token" = ["operator"])),
    params(("ref" = String, Path, description = "Rule ref (`pack.name`)"),
        ("switch" = String, Path, description = "`enable` or `disable`")),
    responses(
        (status = 200, description = "The rule", body = RuleInfo),
        (status = 404, description = "No such rule or switch", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn switch_rule(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Path((reference, switch)): Path<(String, String)>,
) -> ApiResult<Json<RuleInfo>> {
    let on = match switch.as_str() {
        "enable" => true,
        "disable" => false,
        other => {
            return Err(ApiError::not_found(format!(
                "no `{other}` on rules; use enable or disable"
            )));
        }
    };
    let c = catalog(&state).await?;
    if c.rule(&reference).is_none() {
        return Err(ApiError::not_found(format!("no rule `{reference}`")));
    }
    state
        .store
        .set_rule_enabled(&reference, on, &caller.name)
        .await?;
    let c = catalog(&state).await?;
    let r = c
        .rule(&reference)
        .ok_or_else(|| ApiError::internal("the rule vanished"))?;
    Ok(Json(rule_info(r)))
}

/// `POST /rules/{ref}/test`: which criteria pass or fail on a payload, and why, and
/// the action parameters it would render. Runs nothing.
#[utoipa::path(post, path = "/rules/{ref}/test", tag = "automation",
    security(("api_token" = ["viewer"])),
    params(("ref" = String, Path, description = "Rule ref (`pack.name`)")),
    request_body = RuleTest,
    responses(
        (status = 200, description = "The verdict per criterion", body = RuleTestResult),
        (status = 404, description = "No such rule", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn test_rule(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Path(reference): Path<String>,
    Body(req): Body<RuleTest>,
) -> ApiResult<Json<RuleTestResult>> {
    let c = catalog(&state).await?;
    let r = c
        .rule(&reference)
        .ok_or_else(|| ApiError::not_found(format!("no rule `{reference}`")))?;
    let now = chrono::Utc::now().timestamp_millis();
    let kv = KvSnapshot::load(&state).await.map_err(ApiError::internal)?;
    let env = jinja::shared();
    let ctx = minijinja::context! {
        trigger => minijinja::Value::from(minijinja::value::Serde(&req.payload)),
        st2kv => jinja::st2kv(kv.for_user(&format!("rule:{reference}"))),
    };
    // Patterns with Jinja are rendered first, as the engine does.
    let criteria = if r.criteria.has_templates() {
        let mut render = |t: &str| jinja::eval_native(env, t, &ctx).map_err(|e| e.to_string());
        r.criteria
            .render(&mut render)
            .map_err(ApiError::bad_request)?
    } else {
        r.criteria.clone()
    };
    let checks = criteria
        .explain(&req.payload, now)
        .into_iter()
        .map(|c| CheckInfo {
            key: c.key,
            operator: c.operator,
            pattern: c.pattern,
            value: c.value,
            passed: c.passed,
            reason: c.reason,
            group: c.group,
        })
        .collect();
    let (action_parameters, render_error) =
        match jinja::render_json(env, &r.action.parameters, &ctx, true) {
            Ok(v) => (Some(v), None),
            Err(e) => (None, Some(e.to_string())),
        };
    Ok(Json(RuleTestResult {
        rule: reference,
        matches: criteria.evaluate(&req.payload, now),
        checks,
        action_parameters,
        render_error,
    }))
}
