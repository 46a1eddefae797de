//! The environment of a service's processes (the supervised process, scripts, exec
//! health checks). It is built from the spec, not inherited from the agent, so that a
//! service runs the same whatever the agent was started with, and the agent's own
//! secrets (e.g. `DROVER_JOIN_TOKEN`) never reach it. Only a few variables that
//! describe the machine are passed through.

use std::path::{Path, PathBuf};

use drover_proto::deploy::InstanceSpec;

/// Variables passed through from the agent's environment when set.
const PASSED_THROUGH: [&str; 8] = [
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR",
];
/// `PATH` when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// `PORT_<NAME>` for port `name`: upper-case, anything but letters and digits as `_`.
pub(crate) fn port_variable(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PORT_{upper}")
}

/// The full environment for a process of `spec` running from `release_dir`: passed
/// through variables, then the spec's `env`, then `DROVER_SERVICE`, `DROVER_INSTANCE`,
/// `DROVER_VERSION`, `DROVER_RELEASE_DIR` and `PORT_<NAME>` per port (these win).
pub(crate) fn service_env(spec: &InstanceSpec, release_dir: &Path) -> Vec<(String, String)> {
    let mut env: std::collections::BTreeMap<String, String> = PASSED_THROUGH
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    env.entry("PATH".into())
        .or_insert_with(|| DEFAULT_PATH.to_string());
    for (k, v) in &spec.env {
        env.insert(k.clone(), v.clone());
    }
    env.insert("DROVER_SERVICE".into(), spec.service.clone());
    env.insert("DROVER_INSTANCE".into(), spec.index.to_string());
    env.insert("DROVER_VERSION".into(), spec.version.clone());
    env.insert(
        "DROVER_RELEASE_DIR".into(),
        release_dir.display().to_string(),
    );
    for (name, port) in &spec.ports {
        env.insert(port_variable(name), port.to_string());
    }
    env.into_iter().collect()
}

/// The program to run for `argv0`: relative paths with a `/` are relative to the
/// release directory; bare names are looked up in `PATH`.
pub(crate) fn program(argv0: &str, release_dir: &Path) -> PathBuf {
    let p = Path::new(argv0);
    if p.is_absolute() || !argv0.contains('/') {
        p.to_path_buf()
    } else {
        release_dir.join(p)
    }
}

/// A command for `argv` in `release_dir` with exactly `env`, in a process group of
/// its own, stdin closed.
pub(crate) fn command(
    argv: &[String],
    release_dir: &Path,
    env: &[(String, String)],
) -> Result<tokio::process::Command, String> {
    let (first, args) = argv
        .split_first()
        .ok_or_else(|| "argv is empty: nothing to run".to_string())?;
    let mut cmd = tokio::process::Command::new(program(first, release_dir));
    cmd.args(args)
        .current_dir(release_dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(false);
    Ok(cmd)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use drover_proto::deploy::{ArtifactRef, Runtime};

    use super::*;

    #[test]
    fn env_has_the_spec_and_drover_variables_only() {
        let spec = InstanceSpec {
            service: "web".into(),
            index: 2,
            version: "1.0".into(),
            artifact: ArtifactRef {
                url: "file:///x".into(),
                sha256: "0".repeat(64),
            },
            runtime: Runtime::Run {
                argv: vec!["bin/server".into()],
            },
            env: BTreeMap::from([
                ("GREETING".to_string(), "hi".to_string()),
                ("DROVER_VERSION".to_string(), "spoofed".to_string()),
            ]),
            ports: BTreeMap::from([("http".to_string(), 8080), ("admin-ui".to_string(), 9)]),
            config: vec![],
            health: None,
            spec_hash: "h".into(),
            keep_releases: 3,
        };
        let env: BTreeMap<String, String> = service_env(&spec, Path::new("/s/releases/1.0"))
            .into_iter()
            .collect();
        assert_eq!(env["GREETING"], "hi");
        assert_eq!(env["DROVER_SERVICE"], "web");
        assert_eq!(env["DROVER_INSTANCE"], "2");
        assert_eq!(env["DROVER_VERSION"], "1.0");
        assert_eq!(env["DROVER_RELEASE_DIR"], "/s/releases/1.0");
        assert_eq!(env["PORT_HTTP"], "8080");
        assert_eq!(env["PORT_ADMIN_UI"], "9");
        assert!(env.contains_key("PATH"));
        assert!(!env.contains_key("DROVER_JOIN_TOKEN"));
        assert!(env.keys().all(|k| PASSED_THROUGH.contains(&k.as_str())
            || k.starts_with("DROVER_")
            || k.starts_with("PORT_")
            || k == "GREETING"));
    }

    #[test]
    fn programs_resolve_against_the_release() {
        let r = Path::new("/rel");
        assert_eq!(program("bin/server", r), PathBuf::from("/rel/bin/server"));
        assert_eq!(program("./run", r), PathBuf::from("/rel/./run"));
        assert_eq!(program("python3", r), PathBuf::from("python3"));
        assert_eq!(program("/usr/bin/env", r), PathBuf::from("/usr/bin/env"));
    }
}
