//! The deploy model: which services, at which versions, run on which hosts.
//!
//! A model is a directory of YAML files (`*.yaml`, `*.yml`, recursively) that users
//! keep in git. The shell reads the files and hands them over as [`ModelFile`]s;
//! [`load`] parses and checks them all at once and returns either a typed [`Model`]
//! or **every** error found, each with file, line, column, field path and reason.
//! [`desired_instances`] then says which instances the model wants on the live
//! hosts, and [`topo_order`] in which order services are deployed.
//!
//! The format is described in `docs/model.md`; in short, each YAML document has a
//! `kind`:
//!
//! ```
//! use drover_core::model::{load, ModelFile};
//!
//! let text = r#"
//! kind: hostclass
//! name: frontend
//! selector: label.role=web
//! ---
//! kind: service
//! name: web
//! version: "2.0.1"
//! artifact:
//!   url: https://example.com/web-2.0.1.tar.gz
//!   sha256: 0000000000000000000000000000000000000000000000000000000000000000
//! placement: {hostclass: frontend}
//! ports: {http: 8080}
//! run: ["./bin/server", "--port", "{{ ports.http }}"]
//! "#;
//! let model = load(&[ModelFile { path: "web.yaml".into(), text: text.into() }]).unwrap();
//! assert_eq!(model.services["web"].version, "2.0.1");
//!
//! let bad = text.replace("version:", "verison:").replace("8080", "80800");
//! let errors = load(&[ModelFile { path: "bad.yaml".into(), text: bad }]).unwrap_err();
//! let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
//! assert_eq!(errors, [
//!     "bad.yaml:6:1: services.web: missing field `version`",
//!     "bad.yaml:8:1: services.web.verison: unknown field `verison`; did you mean `version`?",
//!     "bad.yaml:13:15: services.web.ports.http: must be between 1 and 65535, found 80800",
//! ]);
//! ```
//!
//! - [`error`] — [`ModelError`].
//! - [`types`] — the typed model.
//! - `load` — YAML to located, untyped nodes (serde-saphyr).
//! - `decode`, `validate`, `service` — nodes to typed items, collecting errors.
//! - [`placement`] — desired instances and deploy order.
//! - [`hash`] — `content_hash` and `spec_hash`.

pub(crate) mod decode;
pub mod diff;
pub mod error;
pub mod hash;
mod inventory;
pub mod inventory_types;
pub(crate) mod load;
pub mod placement;
mod service;
pub mod types;
mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use error::ModelError;
pub use hash::{content_hash, spec_hash};
pub use inventory_types::{FieldMap, Generator, Provider, ProviderKind, StaticHost};
pub use placement::{desired_instances, hostclass_members, hostclasses_use_facts, topo_order};
pub use types::{
    Artifact, ArtifactSource, ConfigFile, Exec, HealthCheck, HostPin, Hostclass, LoadBalancer,
    Model, Placement, Probe, Reconcile, Scripts, Service, Source, Target,
};

use error::Sink;
use validate::{Doc, Item};

/// One file of a model: its path (as it should appear in errors) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelFile {
    /// Path, usually relative to the model directory.
    pub path: String,
    /// Contents.
    pub text: String,
}

/// True for the files a model directory is made of: `*.yaml` and `*.yml`, except
/// hidden ones (a path component starting with `.`).
pub fn is_model_file(path: &str) -> bool {
    let hidden = path
        .split(['/', '\\'])
        .any(|part| part.starts_with('.') && part != "." && part != "..");
    !hidden && (path.ends_with(".yaml") || path.ends_with(".yml"))
}

/// Parses and checks a model made of `files` (in any order: they are taken sorted by
/// path).
///
/// Returns the model, or every error found, sorted by file, line and column. A file
/// that is not valid YAML yields one error; the other files are still checked, but
/// references to names that file may have declared are then not reported.
pub fn load(files: &[ModelFile]) -> Result<Model, Vec<ModelError>> {
    let mut files: Vec<&ModelFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));

    let mut errors = Vec::new();
    let mut docs: Vec<Doc> = Vec::new();
    let mut partial = false;
    for file in &files {
        match load::parse_documents(&file.path, &file.text) {
            Ok(nodes) => {
                let mut sink = Sink {
                    file: &file.path,
                    text: &file.text,
                    errors: &mut errors,
                };
                docs.extend(
                    nodes
                        .iter()
                        .filter_map(|n| validate::document(&mut sink, n)),
                );
            }
            Err(e) => {
                errors.push(e);
                partial = true;
            }
        }
    }
    validate::cross_check(&docs, partial, &mut errors);

    if !errors.is_empty() {
        let rank: BTreeMap<&str, usize> = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_str(), i))
            .collect();
        errors.sort_by_key(|e| (rank.get(e.file.as_str()).copied(), e.line, e.column));
        errors.dedup();
        return Err(errors);
    }

    let mut services = BTreeMap::new();
    let mut hostclasses = BTreeMap::new();
    let mut hosts = BTreeMap::new();
    let mut providers = BTreeMap::new();
    let mut generators = BTreeMap::new();
    for doc in docs {
        match doc.item {
            Some(Item::Service(s)) => {
                services.insert(s.name.clone(), *s);
            }
            Some(Item::Hostclass(c)) => {
                hostclasses.insert(c.name.clone(), c);
            }
            Some(Item::Host(h)) => {
                hosts.insert(h.name.clone(), h);
            }
            Some(Item::Provider(p)) => {
                providers.insert(p.name.clone(), *p);
            }
            Some(Item::Generator(g)) => {
                generators.insert(g.name.clone(), *g);
            }
            None => {}
        }
    }
    let content_hash =
        hash::content_hash_with(&services, &hostclasses, &hosts, &providers, &generators);
    Ok(Model {
        services,
        hostclasses,
        hosts,
        providers,
        generators,
        content_hash,
    })
}
