//! drover's own verbs as actions (`drover.apply`; `drover.run`, `drover.drain` and
//! `drover.undrain` are handled by the executor directly).

use std::sync::Arc;

use serde_json::{Value, json};

use drover_core::delta::DeltaSummary;
use drover_core::model::ModelFile;

use crate::api::deploy;
use crate::state::AppState;

/// The latest stored model version and its files.
async fn latest(state: &AppState) -> Result<(i64, Vec<ModelFile>), String> {
    let Some(version) = state
        .store
        .current_model_version()
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err("no model has been applied yet".into());
    };
    let files = version
        .files
        .into_iter()
        .map(|f| ModelFile {
            path: f.path,
            text: f.text,
        })
        .collect();
    Ok((version.id, files))
}

/// What applying the stored model again would do (`drover.apply dry_run=true`): the
/// plan against the live fleet, as `drover plan` shows it. Changes nothing.
pub(crate) async fn plan_latest(state: &Arc<AppState>) -> Result<Value, String> {
    let (version, files) = latest(state).await?;
    let model = deploy::load_model(&files).map_err(|e| e.detail().to_string())?;
    let view = deploy::live_view(state)
        .await
        .map_err(|e| e.detail().to_string())?;
    let (deltas, plan) = deploy::compare(&model, &view).map_err(|e| e.detail().to_string())?;
    Ok(json!({
        "dry_run": true,
        "model_version": version,
        "summary": DeltaSummary::of(&deltas),
        "plan": plan.to_string(),
    }))
}

/// Applies the stored model again (the latest version): converges the fleet to it.
pub(crate) async fn apply_latest(
    state: &Arc<AppState>,
    actor: &str,
    message: &str,
) -> Result<Value, String> {
    let (_, files) = latest(state).await?;
    let (_, applied) = deploy::apply_files(state, actor, &files, message, true)
        .await
        .map_err(|e| e.detail().to_string())?;
    Ok(json!({
        "model_version": applied.0.model_version,
        "execution_id": applied.0.execution_id,
        "plan": applied.0.plan_text,
    }))
}
