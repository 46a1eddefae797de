//! drover's own verbs as actions (`drover.apply`; `drover.run`, `drover.drain` and
//! `drover.undrain` are handled by the executor directly).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::state::AppState;

/// Applies the stored model again (the latest version): converges the fleet to it.
pub(crate) async fn apply_latest(
    state: &Arc<AppState>,
    actor: &str,
    message: &str,
) -> Result<Value, String> {
    let Some(version) = state
        .store
        .current_model_version()
        .await
        .map_err(|e| e.to_string())?
    else {
        return Err("no model has been applied yet".into());
    };
    let files: Vec<drover_core::model::ModelFile> = version
        .files
        .into_iter()
        .map(|f| drover_core::model::ModelFile {
            path: f.path,
            text: f.text,
        })
        .collect();
    let (_, applied) = crate::api::deploy::apply_files(state, actor, &files, message, true)
        .await
        .map_err(|e| e.detail().to_string())?;
    Ok(json!({
        "model_version": applied.0.model_version,
        "execution_id": applied.0.execution_id,
        "plan": applied.0.plan_text,
    }))
}
