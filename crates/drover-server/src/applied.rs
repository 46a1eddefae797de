//! The applied model, parsed once per version and shared by the API and the dashboard
//! (a host listing needs its hostclasses on every page and every poll).

use std::collections::HashMap;
use std::sync::Arc;

use drover_core::model::Model;
use drover_store::Store;

/// The applied model by version id (`None` inside: that version does not load).
#[derive(Default)]
pub(crate) struct AppliedModel(std::sync::Mutex<Option<(i64, Option<Arc<Model>>)>>);

impl AppliedModel {
    /// The applied model, if there is one and it loads. One store read per call (which
    /// version is current); the parse happens once per version.
    pub async fn get(&self, store: &Store) -> drover_store::Result<Option<Arc<Model>>> {
        let Some(version) = store.current_model_version().await? else {
            return Ok(None);
        };
        let cached = {
            let slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
            slot.as_ref()
                .filter(|(id, _)| *id == version.id)
                .map(|(_, m)| m.clone())
        };
        if let Some(m) = cached {
            return Ok(m);
        }
        let files = crate::api::deploy::to_model_files(&version.files);
        let m = crate::api::deploy::load_model(&files).ok().map(Arc::new);
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some((version.id, m.clone()));
        Ok(m)
    }
}

/// The hostclasses of each of `hosts`, by host name. Membership is a property of the
/// host alone (pinned to the class, or unpinned and matching its selector), so any
/// subset of the fleet (one page) gets the same answer as the whole.
pub(crate) fn hostclasses_of<H: drover_core::selector::Selectable>(
    model: &Model,
    hosts: &[H],
) -> HashMap<String, Vec<String>> {
    let mut classes: HashMap<String, Vec<String>> = HashMap::new();
    for class in model.hostclasses.keys() {
        for name in drover_core::model::hostclass_members(model, class, hosts) {
            classes.entry(name).or_default().push(class.clone());
        }
    }
    classes
}
