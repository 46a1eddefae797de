//! The catalog: every pack (built in and installed) decoded into actions, rules with
//! their switches applied, workflows and policies. Rebuilt from the store whenever the
//! catalog epoch moves, so every controller sees the same catalog.

use std::collections::HashMap;
use std::sync::Arc;

use drover_core::automation::action::{Action, Runner, builtin_packs};
use drover_core::automation::pack::{Pack, PackFile, Policy, decode_pack};
use drover_core::automation::rule::{Rule, RuleSet, decode_rule};
use drover_core::model::ModelError;
use drover_core::workflow::spec::{WorkflowSpec, decode_workflow};
use drover_store::PackRow;
use tokio::sync::RwLock;

use crate::state::AppState;

/// A pack with what came of decoding it.
#[derive(Debug, Clone)]
pub(crate) struct PackEntry {
    /// The decoded pack.
    pub pack: Pack,
    /// Built into drover (cannot be removed).
    pub builtin: bool,
    /// When and by whom it was installed (installed packs).
    pub installed: Option<(i64, String)>,
}

/// A workflow action's definition.
#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    /// The file as installed (stored with each run, so a re-install does not change
    /// running workflows).
    pub text: String,
    /// The decoded spec.
    pub spec: Arc<WorkflowSpec>,
}

/// Everything the automation runtime reads.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    /// The store's catalog epoch this was built at.
    pub epoch: i64,
    /// Packs by name.
    pub packs: Vec<PackEntry>,
    /// Actions by ref.
    pub actions: HashMap<String, Action>,
    /// Entry-point scripts by action ref (script runners).
    pub scripts: HashMap<String, String>,
    /// Workflow definitions by action ref (orquesta runner).
    pub workflows: HashMap<String, Workflow>,
    /// Every rule (switches applied), by ref order.
    pub rules: Vec<Rule>,
    /// The enabled rules whose criteria have no templates, indexed for matching.
    pub ruleset: RuleSet,
    /// The enabled rules whose criteria patterns are templates (rendered per event).
    pub templated: Vec<Rule>,
    /// Policies by action ref.
    pub policies: HashMap<String, Vec<Policy>>,
    /// Installed packs that no longer decode (a newer drover refusing an old pack).
    pub broken: Vec<String>,
}

/// A pack checked for installation: decoded with its rules and workflows.
#[derive(Debug)]
pub(crate) struct CheckedPack {
    /// The pack.
    pub pack: Pack,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// Its workflows by action ref.
    pub workflows: HashMap<String, Workflow>,
}

fn pack_files(row: &PackRow) -> Vec<PackFile> {
    serde_json::from_value::<Vec<serde_json::Value>>(row.files.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| {
            Some(PackFile {
                path: f.get("path")?.as_str()?.to_string(),
                text: f.get("text")?.as_str()?.to_string(),
            })
        })
        .collect()
}

/// The pack's name as `pack.yaml` gives it (`ref`, else `name`), read loosely.
fn pack_name(files: &[PackFile]) -> Option<String> {
    let text = &files.iter().find(|f| f.path == "pack.yaml")?.text;
    let field = |key: &str| {
        text.lines().find_map(|l| {
            l.strip_prefix(key)
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        })
    };
    field("ref:").or_else(|| field("name:"))
}

/// The workflow file of an orquesta action: `actions/<entry_point>`.
fn workflow_path(action: &Action) -> Option<String> {
    action
        .entry_point
        .as_ref()
        .map(|e| format!("actions/{}", e.trim_start_matches("./")))
}

/// Decodes a pack with its rules and workflows; `known_actions` are the refs of
/// actions outside this pack (built-ins and other installed packs) its rules and
/// workflows may use. Every error of every file is returned.
pub(crate) fn check_pack(
    label: &str,
    files: &[PackFile],
    known_actions: &dyn Fn(&str) -> bool,
) -> Result<CheckedPack, Vec<ModelError>> {
    let pack = match decode_pack(label, files) {
        Ok(p) => p,
        Err(mut errors) => {
            // Report the rules' and workflows' errors too: one round of fixes, not three.
            let name = pack_name(files).unwrap_or_default();
            for f in files {
                let yaml = f.path.ends_with(".yaml") || f.path.ends_with(".yml");
                if !yaml {
                    continue;
                }
                if f.path.starts_with("rules/") {
                    if let Err(mut e) = decode_rule(&f.path, &f.text, &name) {
                        errors.append(&mut e);
                    }
                } else if f.path.starts_with("actions/workflows/")
                    && let Err(mut e) = decode_workflow(&f.path, &f.text)
                {
                    errors.append(&mut e);
                }
            }
            errors.sort();
            errors.dedup();
            return Err(errors);
        }
    };
    check_decoded(pack, known_actions)
}

/// The checks of [`check_pack`] beyond decoding the pack itself: its rules and
/// workflows, and that every action they use exists.
fn check_decoded(
    pack: Pack,
    known_actions: &dyn Fn(&str) -> bool,
) -> Result<CheckedPack, Vec<ModelError>> {
    let mut errors = Vec::new();
    let mut rules = Vec::new();
    for f in &pack.rules {
        match decode_rule(&f.path, &f.text, &pack.name) {
            Ok(r) => rules.push(r),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let own = |r: &str| {
        r.split_once('.')
            .is_some_and(|(p, n)| p == pack.name && pack.action(n).is_some())
    };
    let mut workflows = HashMap::new();
    for action in &pack.actions {
        if action.runner != Runner::Orquesta {
            continue;
        }
        let Some(path) = workflow_path(action) else {
            continue;
        };
        let Some(file) = pack
            .workflows
            .iter()
            .chain(pack.files.iter())
            .find(|f| f.path == path)
        else {
            errors.push(ModelError {
                file: format!("actions/{}.yaml", action.name),
                line: 1,
                column: 1,
                field: "entry_point".into(),
                reason: format!("workflow file `{path}` is not in the pack"),
            });
            continue;
        };
        match decode_workflow(&file.path, &file.text) {
            Ok(spec) => {
                for used in spec.actions() {
                    if !own(&used) && !known_actions(&used) {
                        errors.push(ModelError {
                            file: file.path.clone(),
                            line: 1,
                            column: 1,
                            field: "tasks".into(),
                            reason: format!("action `{used}` is not installed"),
                        });
                    }
                }
                workflows.insert(
                    action.reference(),
                    Workflow {
                        text: file.text.clone(),
                        spec: Arc::new(spec),
                    },
                );
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    for r in &rules {
        let used = &r.action.reference;
        if !own(used) && !known_actions(used) {
            errors.push(ModelError {
                file: r.file.clone(),
                line: 1,
                column: 1,
                field: "action.ref".into(),
                reason: format!("action `{used}` is not installed"),
            });
        }
        if r.trigger.kind.starts_with("timer.")
            && let Err(e) = super::schedule::check(&r.trigger.kind, &r.trigger.parameters)
        {
            errors.push(ModelError {
                file: r.file.clone(),
                line: 1,
                column: 1,
                field: "trigger.parameters".into(),
                reason: e,
            });
        }
    }
    if errors.is_empty() {
        Ok(CheckedPack {
            pack,
            rules,
            workflows,
        })
    } else {
        errors.sort();
        errors.dedup();
        Err(errors)
    }
}

impl Catalog {
    /// Builds the catalog from the installed packs and rule switches.
    pub(crate) fn build(
        epoch: i64,
        rows: &[PackRow],
        overrides: &HashMap<String, bool>,
    ) -> Catalog {
        let mut c = Catalog {
            epoch,
            ..Catalog::default()
        };
        for pack in builtin_packs() {
            for a in &pack.actions {
                c.actions.insert(a.reference(), a.clone());
            }
            c.packs.push(PackEntry {
                pack,
                builtin: true,
                installed: None,
            });
        }
        // Each pack decoded once; rules and workflows may use any pack's actions.
        let decoded: Vec<_> = rows
            .iter()
            .map(|row| (row, decode_pack(&row.name, &pack_files(row))))
            .collect();
        let all_refs: std::collections::HashSet<String> = c
            .actions
            .keys()
            .cloned()
            .chain(decoded.iter().flat_map(|(_, p)| {
                p.iter()
                    .flat_map(|p| p.actions.iter().map(Action::reference))
            }))
            .collect();
        let mut rules = Vec::new();
        for (row, pack) in decoded {
            let known = |r: &str| all_refs.contains(r);
            match pack.and_then(|p| check_decoded(p, &known)) {
                Ok(checked) => {
                    for a in &checked.pack.actions {
                        if let Some(entry) = &a.entry_point
                            && matches!(
                                a.runner,
                                Runner::LocalShellScript | Runner::RemoteShellScript
                            )
                        {
                            let path = format!("actions/{}", entry.trim_start_matches("./"));
                            if let Some(f) = checked.pack.files.iter().find(|f| f.path == path) {
                                c.scripts.insert(a.reference(), f.text.clone());
                            }
                        }
                        c.actions.insert(a.reference(), a.clone());
                    }
                    for p in &checked.pack.policies {
                        c.policies
                            .entry(p.resource_ref.clone())
                            .or_default()
                            .push(p.clone());
                    }
                    c.workflows.extend(checked.workflows);
                    rules.extend(checked.rules);
                    c.packs.push(PackEntry {
                        pack: checked.pack,
                        builtin: false,
                        installed: Some((row.installed_at, row.installed_by.clone())),
                    });
                }
                Err(errors) => {
                    let first = errors.first().map(|e| e.to_string()).unwrap_or_default();
                    tracing::error!(pack = %row.name, error = %first, "installed pack no longer loads");
                    c.broken.push(format!("{}: {first}", row.name));
                }
            }
        }
        for r in &mut rules {
            if let Some(on) = overrides.get(&r.reference()) {
                r.enabled = *on;
            }
        }
        rules.sort_by_key(Rule::reference);
        let (templated, plain): (Vec<Rule>, Vec<Rule>) = rules
            .iter()
            .filter(|r| r.enabled)
            .cloned()
            .partition(|r| r.criteria.has_templates());
        c.ruleset = RuleSet::new(plain);
        c.templated = templated;
        c.rules = rules;
        c.packs.sort_by(|a, b| a.pack.name.cmp(&b.pack.name));
        c
    }

    /// A rule by ref.
    pub(crate) fn rule(&self, reference: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.reference() == reference)
    }

    /// A pack by name.
    pub(crate) fn pack(&self, name: &str) -> Option<&PackEntry> {
        self.packs.iter().find(|p| p.pack.name == name)
    }
}

/// The current catalog, rebuilt when the store's epoch moved.
#[derive(Default)]
pub(crate) struct CatalogCache {
    current: RwLock<Option<Arc<Catalog>>>,
}

impl CatalogCache {
    /// The catalog as of now (one cheap query when nothing changed).
    pub(crate) async fn get(&self, state: &AppState) -> anyhow::Result<Arc<Catalog>> {
        let epoch = state.store.catalog_epoch().await?;
        let fresh = |c: &Option<Arc<Catalog>>| c.as_ref().filter(|c| c.epoch == epoch).cloned();
        if let Some(c) = fresh(&*self.current.read().await) {
            return Ok(c);
        }
        let mut slot = self.current.write().await;
        if let Some(c) = fresh(&slot) {
            return Ok(c);
        }
        let rows = state.store.list_packs().await?;
        let overrides = state.store.rule_overrides().await?;
        let built = Arc::new(Catalog::build(epoch, &rows, &overrides));
        *slot = Some(built.clone());
        Ok(built)
    }
}
