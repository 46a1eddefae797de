use super::*;
use serde_json::json;

fn errors(text: &str) -> Vec<String> {
    decode_action("packs/ops/actions/a.yaml", text, "ops")
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn decodes_an_action() {
    let text = "name: restart\nrunner_type: remote-shell-script\nentry_point: restart.sh\nparameters:\n  service: {type: string, required: true, position: 0}\n  timeout: {default: 30}\ntags: [ops]\n";
    let a = decode_action("a.yaml", text, "ops").unwrap();
    assert_eq!(a.reference(), "ops.restart");
    assert_eq!(a.runner, Runner::RemoteShellScript);
    assert!(a.enabled);
    assert_eq!(a.entry_point.as_deref(), Some("restart.sh"));
    let eff = a.effective_parameters();
    assert_eq!(eff.get("timeout").unwrap().default, Some(json!(30)));
    assert_eq!(
        eff.get("timeout").unwrap().type_.as_deref(),
        Some("integer")
    );
    assert!(eff.get("hosts").unwrap().required);
    assert_eq!(eff.get("service").unwrap().position, Some(0));
}

#[test]
fn unsupported_and_unknown_runners() {
    assert_eq!(
        errors("name: py\nrunner_type: python-script\nentry_point: x.py\n"),
        [
            "packs/ops/actions/a.yaml:2:14: runner_type: action `py`: runner `python-script` is not supported yet"
        ]
    );
    assert_eq!(
        errors("name: w\nrunner_type: winrm-cmd\n"),
        [
            "packs/ops/actions/a.yaml:2:14: runner_type: action `w`: runner `winrm-cmd` is not supported yet"
        ]
    );
    let e = errors("name: x\nrunner_type: local-shell-cdm\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("packs/ops/actions/a.yaml:2:14: runner_type: action `x`: unknown runner `local-shell-cdm`; did you mean `local-shell-cmd`?"),
        "{}",
        e[0]
    );
}

#[test]
fn entry_point_required_for_scripts_and_workflows() {
    assert_eq!(
        errors("name: s\nrunner_type: local-shell-script\n"),
        [
            "packs/ops/actions/a.yaml:1:1: entry_point: action `s`: runner `local-shell-script` needs an entry_point (a file under actions/)"
        ]
    );
    assert_eq!(
        errors("name: wf\nrunner_type: orquesta\nentry_point: ''\n"),
        [
            "packs/ops/actions/a.yaml:3:1: entry_point: action `wf`: runner `orquesta` needs an entry_point (a file under actions/)"
        ]
    );
    let e = errors("nmae: s\nrunner_type: noop\nenabled: yes\n");
    assert_eq!(
        e,
        [
            "packs/ops/actions/a.yaml:1:1: nmae: unknown field `nmae`; did you mean `name`?",
            "packs/ops/actions/a.yaml:1:1: missing field `name`",
            "packs/ops/actions/a.yaml:3:10: enabled: expected `true` or `false`, found the string `yes`; did you mean `true`?",
        ]
    );
}

#[test]
fn runner_names_round_trip_and_schemas_decode() {
    for r in Runner::ALL {
        assert_eq!(Runner::parse(r.as_str()), Some(r));
        let text = match r {
            Runner::Noop => continue,
            _ => r,
        };
        assert!(!runner_parameters(text).is_empty(), "{r}");
    }
    assert_eq!(Runner::parse("orchestra"), Some(Runner::Orquesta));
    assert_eq!(Runner::parse("python-script"), None);
    let cmd = runner_parameters(Runner::LocalShellCmd);
    assert_eq!(
        cmd.names().collect::<Vec<_>>(),
        [
            "cmd",
            "cwd",
            "env",
            "kwarg_op",
            "sudo",
            "sudo_password",
            "timeout"
        ]
    );
    assert!(cmd.get("sudo_password").unwrap().secret);
    let remote = runner_parameters(Runner::RemoteShellCmd);
    assert!(remote.get("hosts").unwrap().required);
    assert!(remote.get("parallel").unwrap().immutable);
    let http = runner_parameters(Runner::HttpRequest);
    for p in [
        "url",
        "method",
        "headers",
        "body",
        "cookies",
        "params",
        "timeout",
        "allow_redirects",
        "verify_ssl_cert",
        "username",
        "password",
        "https_proxy",
    ] {
        assert!(http.contains(p), "{p}");
    }
}

#[test]
fn builtin_packs_are_complete() {
    let packs = builtin_packs();
    let refs: Vec<String> = packs
        .iter()
        .flat_map(|p| p.actions.iter().map(Action::reference))
        .collect();
    assert_eq!(
        refs,
        [
            "core.local",
            "core.remote",
            "core.http",
            "core.noop",
            "core.echo",
            "drover.run",
            "drover.apply",
            "drover.drain",
            "drover.undrain"
        ]
    );
    let echo = packs[0].action("echo").unwrap();
    let values = crate::automation::params::resolve(
        &echo.effective_parameters(),
        json!({"message": "hi"}).as_object().unwrap(),
        std::sync::Arc::new(crate::automation::jinja::KvMap::new()),
    )
    .unwrap();
    assert_eq!(values["cmd"], json!("echo hi"));
    assert_eq!(values["timeout"], json!(60));
}

#[test]
fn immutable_override_is_enforced() {
    let packs = builtin_packs();
    let echo = packs[0].action("echo").unwrap();
    let e = crate::automation::params::resolve(
        &echo.effective_parameters(),
        json!({"message": "hi", "cmd": "rm -rf /"})
            .as_object()
            .unwrap(),
        std::sync::Arc::new(crate::automation::jinja::KvMap::new()),
    )
    .unwrap_err();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].name, "cmd");
    assert!(
        e[0].to_string()
            .starts_with("parameter `cmd`: is immutable"),
        "{}",
        e[0]
    );
    // Given its own default text, an immutable template is still rendered.
    let v = crate::automation::params::resolve(
        &echo.effective_parameters(),
        json!({"message": "hi", "cmd": "echo {{ message }}"})
            .as_object()
            .unwrap(),
        std::sync::Arc::new(crate::automation::jinja::KvMap::new()),
    )
    .unwrap();
    assert_eq!(v["cmd"], json!("echo hi"));
    // A runner parameter that is immutable stays so when an action only re-describes it.
    let a = decode_action(
        "a.yaml",
        "name: r\nrunner_type: remote-shell-cmd\nparameters:\n  parallel: {description: fixed}\n",
        "ops",
    )
    .unwrap();
    let p = a.effective_parameters();
    assert!(p.get("parallel").unwrap().immutable);
    assert_eq!(
        p.get("parallel").unwrap().description.as_deref(),
        Some("fixed")
    );
}
