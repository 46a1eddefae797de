//! What changed between two model versions: a line diff of each file (unified, like
//! `git diff`), and what that means for the model (services, hostclasses, host pins,
//! providers and generators added, removed or changed). Shared by `drover model diff`
//! and the dashboard's model pages.

use std::collections::BTreeMap;

use serde::Serialize;

use super::types::Model;

/// One line of a file diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    /// `+` added, `-` removed, ` ` context, `@` a hunk header.
    pub tag: char,
    /// The line, without its newline.
    pub text: String,
}

/// How one file differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    /// Its path in the model directory.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// The hunks' lines, three lines of context around each change.
    pub lines: Vec<DiffLine>,
}

impl FileDiff {
    /// The diff as `git diff` prints it (`--- a/path`, `+++ b/path`, hunks).
    pub fn unified(&self) -> String {
        let mut out = format!("--- a/{}\n+++ b/{}\n", self.path, self.path);
        for l in &self.lines {
            if l.tag == '@' {
                out.push_str(&l.text);
            } else {
                out.push(l.tag);
                out.push_str(&l.text);
            }
            out.push('\n');
        }
        out
    }
}

/// The files that differ between `a` and `b` (each a list of `(path, text)`), by path.
pub fn diff_files(a: &[(&str, &str)], b: &[(&str, &str)]) -> Vec<FileDiff> {
    let old: BTreeMap<&str, &str> = a.iter().copied().collect();
    let new: BTreeMap<&str, &str> = b.iter().copied().collect();
    let mut paths: Vec<&str> = old.keys().chain(new.keys()).copied().collect();
    paths.sort_unstable();
    paths.dedup();
    let mut diffs = Vec::new();
    for path in paths {
        let (before, after) = (old.get(path), new.get(path));
        if before == after {
            continue;
        }
        let change = match (before, after) {
            (None, _) => "added",
            (_, None) => "removed",
            _ => "changed",
        };
        let text = similar::TextDiff::from_lines(
            before.copied().unwrap_or(""),
            after.copied().unwrap_or(""),
        );
        let mut lines = Vec::new();
        for hunk in text.unified_diff().context_radius(3).iter_hunks() {
            lines.push(DiffLine {
                tag: '@',
                text: hunk.header().to_string(),
            });
            for change in hunk.iter_changes() {
                let tag = match change.tag() {
                    similar::ChangeTag::Insert => '+',
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Equal => ' ',
                };
                let value = change.value();
                lines.push(DiffLine {
                    tag,
                    text: value.strip_suffix('\n').unwrap_or(value).to_string(),
                });
            }
        }
        diffs.push(FileDiff {
            path: path.to_string(),
            change,
            lines,
        });
    }
    diffs
}

/// Names added, removed and changed in one part of the model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NameChanges {
    /// Only in the newer version.
    pub added: Vec<String>,
    /// Only in the older version.
    pub removed: Vec<String>,
    /// In both, defined differently (where it is written does not count).
    pub changed: Vec<String>,
}

impl NameChanges {
    fn of<T: Serialize>(a: &BTreeMap<String, T>, b: &BTreeMap<String, T>) -> NameChanges {
        // Compared as JSON without `source` (file and line): moving a definition to
        // another file is no change to the model.
        let plain = |v: &T| {
            let mut j = serde_json::to_value(v).unwrap_or_default();
            if let Some(m) = j.as_object_mut() {
                m.remove("source");
            }
            j
        };
        let mut c = NameChanges::default();
        for (name, old) in a {
            match b.get(name) {
                None => c.removed.push(name.clone()),
                Some(new) if plain(old) != plain(new) => c.changed.push(name.clone()),
                Some(_) => {}
            }
        }
        c.added = b.keys().filter(|k| !a.contains_key(*k)).cloned().collect();
        c
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// What changed in the model, part by part (`services`, `hostclasses`, `hosts`,
/// `providers`, `generators`), only the parts that did.
pub fn model_changes(a: &Model, b: &Model) -> Vec<(&'static str, NameChanges)> {
    [
        ("services", NameChanges::of(&a.services, &b.services)),
        (
            "hostclasses",
            NameChanges::of(&a.hostclasses, &b.hostclasses),
        ),
        ("host pins", NameChanges::of(&a.hosts, &b.hosts)),
        ("providers", NameChanges::of(&a.providers, &b.providers)),
        ("generators", NameChanges::of(&a.generators, &b.generators)),
    ]
    .into_iter()
    .filter(|(_, c)| !c.is_empty())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ModelFile, load};

    const WEB: &str = "kind: hostclass\nname: web\nselector: label.role=web\n";

    fn service(name: &str, version: &str) -> String {
        format!(
            "kind: service\nname: {name}\nversion: \"{version}\"\nartifact:\n  url: https://example.invalid/a.tgz\n  sha256: 30727946d0ec8ad557c5ff2f0a309c27dc5ca0614544dcb8196edc4bcbf31904\nplacement:\n  hostclass: web\nscripts:\n  start: \"true\"\n  stop: \"true\"\n"
        )
    }

    fn model(files: &[(&str, &str)]) -> Model {
        let files: Vec<ModelFile> = files
            .iter()
            .map(|(p, t)| ModelFile {
                path: p.to_string(),
                text: t.to_string(),
            })
            .collect();
        load(&files).expect("a valid model")
    }

    #[test]
    fn files_added_removed_and_changed_with_hunks() {
        let a = [("a.yaml", "one\ntwo\nthree\n"), ("gone.yaml", "x\n")];
        let b = [("a.yaml", "one\n2\nthree\n"), ("new.yaml", "y\n")];
        let d = diff_files(&a, &b);
        let kinds: Vec<(&str, &str)> = d.iter().map(|f| (f.path.as_str(), f.change)).collect();
        assert_eq!(
            kinds,
            [
                ("a.yaml", "changed"),
                ("gone.yaml", "removed"),
                ("new.yaml", "added")
            ]
        );
        let tags: String = d[0].lines.iter().map(|l| l.tag).collect();
        assert_eq!(tags, "@ -+ ");
        assert_eq!(
            d[0].lines[2],
            DiffLine {
                tag: '-',
                text: "two".into()
            }
        );
        assert_eq!(
            d[0].lines[3],
            DiffLine {
                tag: '+',
                text: "2".into()
            }
        );
        assert_eq!(
            d[0].unified(),
            "--- a/a.yaml\n+++ b/a.yaml\n@@ -1,3 +1,3 @@\n one\n-two\n+2\n three\n"
        );
        assert!(diff_files(&a, &a).is_empty());
    }

    #[test]
    fn model_parts_that_changed() {
        let a = model(&[
            ("web.yaml", WEB),
            ("api.yaml", &service("api", "1.0")),
            ("db.yaml", &service("db", "1")),
        ]);
        // api changes version; db moves to another file unchanged; jobs is new.
        let b = model(&[
            ("web.yaml", WEB),
            ("api.yaml", &service("api", "1.1")),
            ("data/db.yaml", &format!("# moved\n{}", service("db", "1"))),
            ("jobs.yaml", &service("jobs", "3")),
        ]);
        let c = model_changes(&a, &b);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].0, "services");
        assert_eq!(c[0].1.added, ["jobs"]);
        assert_eq!(c[0].1.changed, ["api"]);
        assert!(c[0].1.removed.is_empty());
        assert!(model_changes(&a, &a).is_empty());
    }
}
