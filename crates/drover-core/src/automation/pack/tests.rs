use super::*;
use crate::automation::action::Runner;

fn file(path: &str, text: &str) -> PackFile {
    PackFile {
        path: path.into(),
        text: text.into(),
    }
}

fn good() -> Vec<PackFile> {
    vec![
        file(
            "pack.yaml",
            "ref: ops\nname: Ops Pack\ndescription: Operations\nversion: 1.2.0\nauthor: me\nkeywords: [ops]\npython_versions: ['3']\n",
        ),
        file(
            "actions/restart.yaml",
            "name: restart\nrunner_type: local-shell-script\nentry_point: restart.sh\n",
        ),
        file("actions/restart.sh", "#!/bin/sh\necho hi\n"),
        file(
            "actions/deploy.yaml",
            "name: deploy\nrunner_type: orquesta\nentry_point: workflows/deploy.yaml\n",
        ),
        file("actions/workflows/deploy.yaml", "version: 1.0\ntasks: {}\n"),
        file("rules/on_alert.yaml", "name: on_alert\n"),
        file(
            "policies/retry.yaml",
            "name: retry\nresource_ref: ops.restart\npolicy_type: action.retry\nparameters: {retry_on: failure, max_retry_count: 3, delay: 5}\n",
        ),
        file(
            "policies/conc.yaml",
            "name: conc\nresource_ref: ops.deploy\npolicy_type: action.concurrency\nparameters: {threshold: 1, action: cancel}\n",
        ),
        file("sensors/watch.py", "pass\n"),
        file("aliases/x.yaml", "name: x\n"),
    ]
}

#[test]
fn decodes_a_good_pack() {
    let pack = decode_pack("packs/ops", &good()).unwrap();
    assert_eq!(pack.name, "ops");
    assert_eq!(pack.version.as_deref(), Some("1.2.0"));
    assert_eq!(pack.actions.len(), 2);
    assert_eq!(
        pack.action("restart").unwrap().runner,
        Runner::LocalShellScript
    );
    assert_eq!(pack.workflows.len(), 1);
    assert_eq!(pack.rules.len(), 1);
    assert_eq!(pack.ignored, ["aliases/x.yaml", "sensors/watch.py"]);
    assert!(pack.files.iter().any(|f| f.path == "actions/restart.sh"));
    assert_eq!(
        pack.policies
            .iter()
            .map(|p| (&*p.name, p.kind.clone()))
            .collect::<Vec<_>>(),
        [
            (
                "conc",
                PolicyKind::Concurrency {
                    threshold: 1,
                    action: "cancel".into()
                }
            ),
            (
                "retry",
                PolicyKind::Retry {
                    retry_on: "failure".into(),
                    max_retry_count: 3,
                    delay: 5
                }
            ),
        ]
    );
    // The hash follows the content, not the order files were given in.
    let mut reversed = good();
    reversed.reverse();
    let again = decode_pack("packs/ops", &reversed).unwrap();
    assert_eq!(pack.content_hash(), again.content_hash());
    let mut changed = good();
    changed[2].text.push('\n');
    assert_ne!(
        pack.content_hash(),
        decode_pack("packs/ops", &changed).unwrap().content_hash()
    );
}

#[test]
fn reports_every_error_of_a_bad_pack() {
    let files = vec![
        file("pack.yaml", "name: Ops Pack\nversion: one\n"),
        file(
            "actions/a.yaml",
            "name: a\nrunner_type: local-shell-script\nentry_point: missing.sh\n",
        ),
        file("actions/b.yaml", "name: a\nrunner_type: noop\n"),
        file(
            "actions/c.yaml",
            "name: c\nrunner_type: python-script\nentry_point: c.py\n",
        ),
        file(
            "policies/p.yaml",
            "name: p\nresource_ref: other.a\npolicy_type: action.retry\nparameters: {retry_on: crash}\n",
        ),
        file("actions/b.yaml", "name: b\nrunner_type: noop\n"),
    ];
    let e: Vec<String> = decode_pack("packs/ops", &files)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        e,
        [
            "packs/ops/actions/a.yaml:3:14: entry_point: action `a`: no file `actions/missing.sh` in the pack",
            "packs/ops/actions/b.yaml:1:1: the file is given twice",
            "packs/ops/actions/b.yaml:1:1: name: action `a` is already defined in packs/ops/actions/a.yaml",
            "packs/ops/actions/c.yaml:2:14: runner_type: action `c`: runner `python-script` is not supported yet",
            "packs/ops/pack.yaml:1:7: name: `Ops Pack` is not a valid pack reference: use only a-z, 0-9, _ and - (set `ref` when the name has other characters)",
            "packs/ops/pack.yaml:2:10: version: `one` is not a semantic version such as 1.0.0",
            "packs/ops/policies/p.yaml:2:15: resource_ref: `other.a` is not an action of pack ``",
            "packs/ops/policies/p.yaml:4:24: parameters.retry_on: unknown value `crash`; expected one of failure, timeout",
        ]
    );
}

#[test]
fn missing_pack_yaml() {
    let e = decode_pack("p", &[]).unwrap_err();
    assert_eq!(
        e[0].to_string(),
        "p/pack.yaml:1:1: a pack needs a pack.yaml"
    );
}

#[test]
fn yaml_syntax_errors_are_located_per_file() {
    let mut files = good();
    files[1].text = "name: restart\nrunner_type: [local\n".into();
    files[6].text = "name: retry\nresource_ref: ops.nope\npolicy_type: action.retry\nparameters: {retry_on: timeout}\n".into();
    let e: Vec<String> = decode_pack("packs/ops", &files)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(e.len(), 2, "{e:#?}");
    assert_eq!(
        e[0],
        "packs/ops/actions/restart.yaml:2:14: invalid YAML: unclosed bracket '['"
    );
    assert_eq!(
        e[1],
        "packs/ops/policies/retry.yaml:2:15: resource_ref: `ops.nope` is not an action of pack `ops`"
    );
}
