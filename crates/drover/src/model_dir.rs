//! Reads a model directory: every `*.yaml` / `*.yml` file below it, recursively, sorted by
//! path, with paths relative to the directory (so errors and stored versions name files
//! the way the user's repository does).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// One model file as read from disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct File {
    /// Path relative to the model directory, with `/` separators.
    pub path: String,
    /// Content.
    pub text: String,
}

/// Reads every model file below `dir`. Hidden files and directories (`.git`) are skipped.
pub fn read(dir: &Path) -> anyhow::Result<Vec<File>> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("{}: cannot read the model directory", dir.display()))?;
    if !meta.is_dir() {
        bail!(
            "{}: not a directory (a model is a directory of YAML files)",
            dir.display()
        );
    }
    let mut paths = Vec::new();
    walk(dir, &mut paths)?;
    paths.sort();
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let bytes = std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?;
        let rel = p.strip_prefix(dir).unwrap_or(&p);
        let path = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{path}: not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        files.push(File { path, text });
    }
    if files.is_empty() {
        bail!("{}: no *.yaml or *.yml files", dir.display());
    }
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&path, out)?;
        } else if (kind.is_file() || kind.is_symlink())
            && matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            )
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_yaml_recursively_sorted_and_relative() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("services/.hidden")).expect("mkdir");
        std::fs::write(dir.path().join("services/web.yaml"), "a: 1\n").expect("w");
        std::fs::write(dir.path().join("hostclasses.yml"), "b: 2\n").expect("w");
        std::fs::write(dir.path().join("README.md"), "no").expect("w");
        std::fs::write(dir.path().join("services/.hidden/x.yaml"), "c").expect("w");
        let files = read(dir.path()).expect("read");
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["hostclasses.yml", "services/web.yaml"]);
    }

    #[test]
    fn empty_or_missing_directories_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(
            read(dir.path())
                .unwrap_err()
                .to_string()
                .contains("no *.yaml")
        );
        assert!(read(&dir.path().join("nope")).is_err());
    }
}
