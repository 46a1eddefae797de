//! Automation end to end, through the real binary: packs from files, a webhook firing a
//! rule that runs an action on an agent (no SSH), whose completion fires a second rule;
//! a workflow that survives a controller SIGKILL; secrets that never show; bad packs
//! refused whole with precise errors.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Controller, Db, text, wait_until};
use serde_json::{Value, json};

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, body) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, body).unwrap();
    }
}

fn install(ctl: &Controller, dir: &Path) {
    let out = ctl.cli(&["packs", "install", dir.to_str().unwrap()]);
    assert!(out.status.success(), "install failed: {:?}", text(&out));
}

/// POSTs `body` to `url` with `headers`; returns the status and JSON answer.
fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let t = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&t).unwrap_or(Value::String(t)))
    })
}

fn executions(ctl: &Controller, action: &str) -> Vec<Value> {
    let all = ctl.cli_json(&["executions", "--kind", "action", "--limit", "200", "--json"]);
    all.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"]["action_ref"] == action)
        .cloned()
        .collect()
}

fn execution(ctl: &Controller, id: &str) -> Value {
    ctl.cli_json(&["executions", "get", id, "--json"])
}

fn wait_final(ctl: &Controller, id: &str, limit: Duration) -> Value {
    let mut last = Value::Null;
    wait_until(limit, &format!("execution {id} final"), || {
        last = execution(ctl, id);
        matches!(
            last["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
    });
    last
}

const CHAIN_PACK: &[(&str, &str)] = &[
    (
        "pack.yaml",
        "ref: chain\nname: chain\nversion: 1.0.0\ndescription: webhook → remote action → second rule\nauthor: drover tests\n",
    ),
    (
        "actions/remote_hello.yaml",
        "name: remote_hello\nrunner_type: remote-shell-cmd\ndescription: says hello on a host\n\
         parameters:\n  who:\n    type: string\n    required: true\n  cmd:\n    default: 'echo \"hello {{ who }} from $(hostname -s 2>/dev/null || echo host)\"'\n",
    ),
    (
        "rules/on_webhook.yaml",
        "name: on_webhook\npack: chain\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters:\n    url: deploy\n\
         criteria:\n  trigger.body.who:\n    type: exists\n  trigger.body.env:\n    type: iequals\n    pattern: PROD\n\
         action:\n  ref: chain.remote_hello\n  parameters:\n    who: '{{ trigger.body.who }}'\n    hosts: web-1\n",
    ),
    (
        "rules/after_hello.yaml",
        "name: after_hello\npack: chain\nenabled: true\ntrigger:\n  type: core.st2.generic.actiontrigger\n\
         criteria:\n  trigger.action_ref:\n    type: equals\n    pattern: chain.remote_hello\n  trigger.status:\n    type: equals\n    pattern: succeeded\n\
         action:\n  ref: core.local\n  parameters:\n    cmd: \"echo chained: {{ trigger.result['web-1'].stdout }}\"\n",
    ),
];

/// A webhook fires a rule; its action runs on an agent; the action's completion fires
/// a second rule. Every link is traceable both ways.
fn webhook_rule_agent_chain(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), db);
    let _agent = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    let pack = dir.path().join("chain");
    write(&pack, CHAIN_PACK);
    install(&ctl, &pack);

    // The webhook has its own secret: the caller needs no drover token.
    let hook = ctl.cli_json(&["webhooks", "create", "deploy", "--json"]);
    let secret = hook["secret"].as_str().unwrap().to_string();
    let url = format!("{}/api/v1/webhooks/deploy", ctl.url);
    let (status, _) = post(
        &url,
        &[("x-drover-webhook-token", "wrong-secret-000000")],
        "{}",
    );
    assert_eq!(status, 401, "a wrong webhook secret is refused");
    // Criteria that do not hold fire nothing.
    let (status, _) = post(
        &url,
        &[("x-drover-webhook-token", &secret)],
        r#"{"who": "ops", "env": "staging"}"#,
    );
    assert_eq!(status, 202);
    let (status, accepted) = post(
        &url,
        &[("x-drover-webhook-token", &secret)],
        r#"{"who": "ops", "env": "prod"}"#,
    );
    assert_eq!(status, 202, "{accepted}");

    let mut hello = Vec::new();
    wait_until(Duration::from_secs(30), "remote_hello ran", || {
        hello = executions(&ctl, "chain.remote_hello");
        hello.iter().any(|e| e["status"] == "succeeded")
    });
    assert_eq!(hello.len(), 1, "only the prod call matched: {hello:?}");
    let hello = execution(&ctl, hello[0]["id"].as_str().unwrap());
    let result = &hello["action"]["result"]["web-1"];
    assert_eq!(result["succeeded"], true, "{hello}");
    assert!(
        result["stdout"]
            .as_str()
            .unwrap()
            .starts_with("hello ops from"),
        "{result}"
    );
    assert_eq!(hello["action"]["rule_ref"], "chain.on_webhook");
    assert_eq!(hello["action"]["event_id"], accepted["event_id"]);

    // Its completion fired the second rule, whose action saw the first one's result.
    let mut chained = Vec::new();
    wait_until(Duration::from_secs(30), "chained action ran", || {
        chained = executions(&ctl, "core.local");
        chained.iter().any(|e| e["status"] == "succeeded")
    });
    let chained = execution(&ctl, chained[0]["id"].as_str().unwrap());
    let stdout = chained["action"]["result"]["stdout"].as_str().unwrap_or("");
    assert!(stdout.starts_with("chained: hello ops from"), "{chained}");

    // The trace links them both ways.
    let id = hello["id"].as_str().unwrap();
    let trace = ctl.cli_json(&["trace", id, "--json"]);
    let causes = trace["causes"].to_string();
    assert!(
        causes.contains("chain.on_webhook") && causes.contains("webhook"),
        "{trace}"
    );
    let effects = trace["effects"].to_string();
    assert!(effects.contains("chain.after_hello"), "{trace}");
    assert!(effects.contains(chained["id"].as_str().unwrap()), "{trace}");
    let back = ctl.cli_json(&["trace", chained["id"].as_str().unwrap(), "--json"]);
    assert!(back["causes"].to_string().contains(id), "{back}");

    // The rule shows its matches; `rules test` explains without running anything.
    let rule = ctl.cli_json(&["rules", "get", "chain.on_webhook", "--json"]);
    assert_eq!(rule["enforcements"][0]["status"], "fired");
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, r#"{"body": {"who": "x", "env": "dev"}}"#).unwrap();
    let before = executions(&ctl, "chain.remote_hello").len();
    let out = ctl.cli(&[
        "rules",
        "test",
        "chain.on_webhook",
        "--payload",
        payload.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let (stdout, _) = text(&out);
    assert!(
        stdout.contains("PASS") && stdout.contains("FAIL"),
        "{stdout}"
    );
    assert!(stdout.contains("does not match"), "{stdout}");
    assert_eq!(executions(&ctl, "chain.remote_hello").len(), before);

    // A disabled rule fires nothing; the switch is an event.
    assert!(
        ctl.cli(&["rules", "disable", "chain.on_webhook"])
            .status
            .success()
    );
    let (status, _) = post(
        &url,
        &[("x-drover-webhook-token", &secret)],
        r#"{"who": "b", "env": "prod"}"#,
    );
    assert_eq!(status, 202);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(executions(&ctl, "chain.remote_hello").len(), before);
    assert!(!ctl.events("rule.disabled").is_empty());
}

#[test]
fn webhook_rule_agent_chain_on_sqlite() {
    webhook_rule_agent_chain(Db::Sqlite);
}

#[test]
fn webhook_rule_agent_chain_on_postgres() {
    webhook_rule_agent_chain(Db::Postgres(common::fresh_pg_db()));
}

/// A three-task workflow whose middle task runs on an agent while the controller is
/// SIGKILLed: after the restart it goes on, and no finished task runs again.
#[test]
fn a_workflow_survives_a_controller_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let _agent = ctl.agent(dir.path(), "web-1", &[]);
    ctl.wait_hosts_up(&["web-1"]);
    let marks = dir.path().join("marks.txt");
    let m = marks.to_str().unwrap();
    let pack = dir.path().join("wf");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: wf\nname: wf\nversion: 0.1.0\ndescription: durable\n",
            ),
            (
                "actions/flow.yaml",
                "name: flow\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\nparameters:\n  marks:\n    type: string\n    required: true\n",
            ),
            (
                "actions/workflows/flow.yaml",
                "version: 1.0\ninput:\n  - marks\ntasks:\n  a:\n    action: core.local\n    input:\n      cmd: \"echo a >> {{ ctx('marks') }}\"\n    next:\n      - when: '{{ succeeded() }}'\n        do: b\n\
                 \x20 b:\n    action: core.remote\n    input:\n      hosts: web-1\n      cmd: \"echo b-start >> {{ ctx('marks') }}; sleep 4; echo b >> {{ ctx('marks') }}\"\n    next:\n      - when: '{{ succeeded() }}'\n        publish:\n          - where: web-1\n        do: c\n\
                 \x20 c:\n    action: core.local\n    input:\n      cmd: \"echo c >> {{ ctx('marks') }}\"\noutput:\n  - where: \"{{ ctx('where') }}\"\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let out = ctl.cli(&[
        "actions",
        "run",
        "wf.flow",
        &format!("marks={m}"),
        "--async",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let id = text(&out).0.trim().to_string();
    let started = std::time::Instant::now();
    while !std::fs::read_to_string(&marks).is_ok_and(|t| t.contains("b-start")) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "task b never started: marks {:?}\nworkflow {}\nsteps {}",
            std::fs::read_to_string(&marks),
            execution(&ctl, &id),
            ctl.cli_json(&["executions", "--limit", "20", "--json"])
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ctl.kill9();
    // Task b finishes on the agent while no controller runs.
    wait_until(Duration::from_secs(15), "task b finished", || {
        std::fs::read_to_string(&marks).is_ok_and(|t| t.lines().any(|l| l == "b"))
    });
    ctl.restart();
    let done = wait_final(&ctl, &id, Duration::from_secs(60));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        done["action"]["result"]["output"]["where"], "web-1",
        "{done}"
    );
    let lines: Vec<String> = std::fs::read_to_string(&marks)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        lines,
        ["a", "b-start", "b", "c"],
        "each task ran exactly once"
    );
    // Its steps are executions of their own, linked to it.
    let trace = ctl.cli_json(&["trace", &id, "--json"]);
    assert_eq!(
        trace["effects"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["detail"]
                .as_str()
                .unwrap_or("")
                .starts_with("step: action"))
            .count(),
        3,
        "{trace}"
    );
}

/// A secret parameter never shows: not in the execution, its result, events or logs.
#[test]
fn secret_parameters_never_show() {
    const SECRET: &str = "s3cr3t-param-value-4410";
    let dir = tempfile::tempdir().unwrap();
    let mut ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let pack = dir.path().join("sec");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: sec\nname: sec\nversion: 0.1.0\ndescription: secrets\n",
            ),
            (
                "actions/login.yaml",
                "name: login\nrunner_type: local-shell-cmd\nparameters:\n  password:\n    type: string\n    secret: true\n    required: true\n  cmd:\n    default: 'echo \"using {{ password }}\"; test -n \"{{ password }}\"'\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let out = ctl.cli(&[
        "actions",
        "run",
        "sec.login",
        &format!("password={SECRET}"),
        "--json",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (stdout, stderr) = text(&out);
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}"
    );
    let exec: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(exec["action"]["parameters"]["password"], "********");
    assert_eq!(
        exec["action"]["result"]["stdout"], "using ********",
        "{exec}"
    );
    // A datastore secret used through st2kv stays hidden too.
    assert!(
        ctl.cli(&["kv", "set", "api_key", SECRET, "--secret"])
            .status
            .success()
    );
    let out = ctl.cli(&[
        "actions",
        "run",
        "core.local",
        "cmd=echo key={{ st2kv.system.api_key | decrypt_kv }}",
        "--json",
    ]);
    let (stdout, _) = text(&out);
    assert!(out.status.success(), "{stdout}");
    let events = ctl.cli(&["events", "--json", "--limit", "1000"]);
    assert!(!String::from_utf8_lossy(&events.stdout).contains(SECRET));
    let listed = ctl.cli(&["executions", "--limit", "50", "--json"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(SECRET));
    ctl.kill9();
    let log: Vec<String> = ctl.lines.try_iter().collect();
    assert!(
        !log.iter().any(|l| l.contains(SECRET)),
        "the controller log leaks it"
    );
    for entry in std::fs::read_dir(dir.path().join("ctl")).unwrap().flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            assert!(
                !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                "{} holds the secret",
                entry.path().display()
            );
        }
    }
}

/// Bad pack files get every error with file, line and field, and nothing of the pack
/// is installed; a bad new version leaves the old one working.
#[test]
fn bad_packs_are_refused_whole_with_precise_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let good = dir.path().join("good");
    write(
        &good,
        &[
            (
                "pack.yaml",
                "ref: shop\nname: shop\nversion: 1.0.0\ndescription: v1\n",
            ),
            ("actions/ping.yaml", "name: ping\nrunner_type: noop\n"),
        ],
    );
    install(&ctl, &good);
    let bad = dir.path().join("bad");
    write(
        &bad,
        &[
            (
                "pack.yaml",
                "ref: shop\nname: shop\nversion: 2.0.0\ndescription: v2\n",
            ),
            ("actions/ping.yaml", "name: ping\nrunner_type: noop\n"),
            (
                "actions/py.yaml",
                "name: py\nrunner_type: python-script\nentry_point: py.py\n",
            ),
            ("actions/py.py", "print('hi')\n"),
            (
                "actions/flow.yaml",
                "name: flow\nrunner_type: orquesta\nentry_point: workflows/flow.yaml\n",
            ),
            (
                "actions/workflows/flow.yaml",
                "version: 1.0\ntasks:\n  one:\n    action: core.noop\n    next:\n      - when: <% succeeded() %>\n        do: two\n  two:\n    action: core.noop\n",
            ),
            (
                "rules/r.yaml",
                "name: r\npack: shop\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: x}\ncriteria:\n  trigger.body.a:\n    type: equalz\n    pattern: 1\naction:\n  ref: shop.ping\n",
            ),
        ],
    );
    let out = ctl.cli(&["packs", "install", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    for needle in [
        "actions/py.yaml:2:",
        "python-script",
        "actions/workflows/flow.yaml:6:",
        "YAQL",
        "tasks.one.next[0].when",
        "rules/r.yaml:",
        "equalz",
    ] {
        assert!(stderr.contains(needle), "missing `{needle}` in:\n{stderr}");
    }
    // Nothing of v2 is there; v1 still runs.
    let packs = ctl.cli_json(&["packs", "list", "--json"]);
    let shop = packs
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "shop")
        .unwrap();
    assert_eq!(shop["version"], "1.0.0");
    assert_eq!(shop["actions"], json!(["shop.ping"]));
    let out = ctl.cli(&["actions", "run", "shop.ping"]);
    assert!(out.status.success(), "{:?}", text(&out));

    // A parameter that breaks the schema is refused before anything runs.
    let before = ctl.cli_json(&["executions", "--json", "--limit", "200"]);
    let out = ctl.cli(&["actions", "run", "core.local", "cmd=true", "timeout=soon"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("timeout"), "{:?}", text(&out));
    let out = ctl.cli(&["actions", "run", "core.local", "cmd=true", "bogus=1"]);
    assert!(text(&out).1.contains("bogus"), "{:?}", text(&out));
    let out = ctl.cli(&["actions", "run", "core.local"]);
    assert!(text(&out).1.contains("cmd"), "{:?}", text(&out));
    let after = ctl.cli_json(&["executions", "--json", "--limit", "200"]);
    assert_eq!(
        before.as_array().unwrap().len(),
        after.as_array().unwrap().len()
    );
}

/// Timers fire rules; a throttled rule fires once per key and window; a rule that fires
/// faster than its `max_rate` is stopped with an event; cancelling a running action
/// stops its process.
#[test]
fn timers_throttle_runaway_guard_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let pack = dir.path().join("guard");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: guard\nname: guard\nversion: 0.1.0\ndescription: guards\n",
            ),
            (
                "rules/tick.yaml",
                "name: tick\nenabled: true\ntrigger:\n  type: core.st2.IntervalTimer\n  parameters: {unit: seconds, delta: 1}\naction:\n  ref: core.noop\n",
            ),
            (
                "rules/throttled.yaml",
                "name: throttled\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: t}\nthrottle:\n  key: '{{ trigger.body.host }}'\n  window: 10m\naction:\n  ref: core.noop\n",
            ),
            (
                "rules/runaway.yaml",
                "name: runaway\nenabled: true\ntrigger:\n  type: core.st2.webhook\n  parameters: {url: r}\nmax_rate: {count: 3, per: 1m}\naction:\n  ref: core.noop\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let token = [("authorization", format!("Bearer {}", ctl.admin_token))];
    let auth: Vec<(&str, &str)> = token.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // Timer: fires about once a second.
    wait_until(Duration::from_secs(15), "timer fired 3 times", || {
        ctl.cli_json(&["rules", "get", "guard.tick", "--json"])["enforcements"]
            .as_array()
            .is_some_and(|e| e.len() >= 3)
    });
    assert!(
        ctl.cli(&["rules", "disable", "guard.tick"])
            .status
            .success()
    );

    // Throttle: two hosts, three calls each → one firing per host.
    for host in ["a", "b", "a", "b", "a"] {
        let (s, _) = post(
            &format!("{}/api/v1/webhooks/t", ctl.url),
            &auth,
            &format!(r#"{{"host": "{host}"}}"#),
        );
        assert_eq!(s, 202);
    }
    let mut rule = Value::Null;
    wait_until(Duration::from_secs(10), "5 enforcements", || {
        rule = ctl.cli_json(&["rules", "get", "guard.throttled", "--json"]);
        rule["enforcements"]
            .as_array()
            .is_some_and(|e| e.len() == 5)
    });
    let statuses: Vec<&str> = rule["enforcements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "fired").count(),
        2,
        "{rule}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "throttled").count(),
        3,
        "{rule}"
    );

    // Runaway guard: the fourth firing within a minute stops the rule.
    for i in 0..6 {
        let (s, _) = post(&format!("{}/api/v1/webhooks/r", ctl.url), &auth, "{}");
        // Once the rule is stopped no rule listens: later calls are refused.
        assert!(s == 202 || (i >= 4 && s == 404), "call {i}: {s}");
    }
    wait_until(Duration::from_secs(10), "rule stopped", || {
        !ctl.events("rule.stopped").is_empty()
    });
    let rule = ctl.cli_json(&["rules", "get", "guard.runaway", "--json"]);
    assert_eq!(rule["enabled"], false, "{rule}");
    let fired = rule["enforcements"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["status"] == "fired")
        .count();
    assert_eq!(fired, 3, "{rule}");
    let stopped = &ctl.events("rule.stopped")[0];
    assert_eq!(stopped["payload"]["rule"], "guard.runaway");
    // After being stopped, webhooks for it are refused (no enabled rule listens).
    let (s, _) = post(&format!("{}/api/v1/webhooks/r", ctl.url), &auth, "{}");
    assert_eq!(s, 404);

    // Cancel: a long local command is stopped.
    let out = ctl.cli(&["actions", "run", "core.local", "cmd=sleep 30", "--async"]);
    let id = text(&out).0.trim().to_string();
    wait_until(Duration::from_secs(10), "running", || {
        execution(&ctl, &id)["status"] == "running"
    });
    let started = std::time::Instant::now();
    assert!(ctl.cli(&["executions", "cancel", &id]).status.success());
    let done = wait_final(&ctl, &id, Duration::from_secs(15));
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// StackStorm's policies: `action.retry` runs a failed action again as new executions;
/// `action.concurrency` with `cancel` refuses a run while the limit is reached.
#[test]
fn retry_and_concurrency_policies() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let pack = dir.path().join("pol");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: pol\nname: pol\nversion: 0.1.0\ndescription: policies\n",
            ),
            (
                "actions/flaky.yaml",
                "name: flaky\nrunner_type: local-shell-cmd\nparameters:\n  cmd:\n    default: 'echo trying; exit 3'\n",
            ),
            (
                "actions/slow.yaml",
                "name: slow\nrunner_type: local-shell-cmd\nparameters:\n  cmd:\n    default: 'sleep 3'\n",
            ),
            (
                "policies/retry.yaml",
                "name: retry_flaky\nresource_ref: pol.flaky\npolicy_type: action.retry\nparameters:\n  retry_on: failure\n  max_retry_count: 2\n  delay: 0\n",
            ),
            (
                "policies/one_at_a_time.yaml",
                "name: one_slow\nresource_ref: pol.slow\npolicy_type: action.concurrency\nparameters:\n  action: cancel\n  threshold: 1\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let out = ctl.cli(&["actions", "run", "pol.flaky"]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let mut runs = Vec::new();
    wait_until(Duration::from_secs(20), "two retries", || {
        runs = executions(&ctl, "pol.flaky");
        runs.len() == 3 && runs.iter().all(|e| e["status"] == "failed")
    });
    let mut retries: Vec<u64> = runs
        .iter()
        .filter_map(|e| e["spec"]["retry"].as_u64())
        .collect();
    retries.sort();
    assert_eq!(retries, [1, 2], "{runs:?}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        executions(&ctl, "pol.flaky").len(),
        3,
        "no more than max_retry_count"
    );

    let first = text(&ctl.cli(&["actions", "run", "pol.slow", "--async"])).0;
    wait_until(Duration::from_secs(10), "first slow running", || {
        execution(&ctl, first.trim())["status"] == "running"
    });
    let second = text(&ctl.cli(&["actions", "run", "pol.slow", "--async"])).0;
    let done = wait_final(&ctl, second.trim(), Duration::from_secs(10));
    assert_eq!(done["status"], "cancelled", "{done}");
    assert!(
        done["action"]["result"]["error"]
            .as_str()
            .unwrap_or("")
            .contains("one_slow"),
        "{done}"
    );
    let done = wait_final(&ctl, first.trim(), Duration::from_secs(15));
    assert_eq!(done["status"], "succeeded", "{done}");
}

/// A GitHub-style HMAC webhook: a good signature is accepted, a bad or missing one is
/// refused with 401 and records nothing; pausing a workflow holds its next task until
/// it is resumed.
#[test]
fn hmac_webhooks_and_pause_resume() {
    use hmac::Mac;
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let secret = "a-long-enough-hmac-secret";
    let out = ctl.cli(&[
        "webhooks", "create", "gh", "--auth", "hmac", "--secret", secret,
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let body = r#"{"ref": "refs/heads/main"}"#;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let good = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let url = format!("{}/api/v1/webhooks/gh", ctl.url);
    let before = ctl.events("webhook").len();
    assert_eq!(
        post(&url, &[("x-hub-signature-256", "sha256=00")], body).0,
        401
    );
    assert_eq!(post(&url, &[], body).0, 401);
    let (status, accepted) = post(&url, &[("x-hub-signature-256", &good)], body);
    assert_eq!(status, 202, "{accepted}");
    let events = ctl.events("webhook");
    assert_eq!(events.len(), before + 1);
    let ev = events.last().unwrap();
    assert_eq!(ev["payload"]["body"]["ref"], "refs/heads/main");
    assert_eq!(ev["actor"], "webhook:gh");
    assert!(!ev.to_string().contains(secret));

    // Pause and resume.
    let pack = dir.path().join("pr");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: pr\nname: pr\nversion: 0.1.0\ndescription: pause\n",
            ),
            (
                "actions/two.yaml",
                "name: two\nrunner_type: orquesta\nentry_point: workflows/two.yaml\n",
            ),
            (
                "actions/workflows/two.yaml",
                "version: 1.0\ntasks:\n  first:\n    action: core.local\n    input:\n      cmd: sleep 2\n    next:\n      - when: '{{ succeeded() }}'\n        do: second\n  second:\n    action: core.noop\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let out = ctl.cli(&["actions", "run", "pr.two", "--async"]);
    let id = text(&out).0.trim().to_string();
    wait_until(Duration::from_secs(10), "first task running", || {
        executions(&ctl, "core.local")
            .iter()
            .any(|e| e["status"] == "running")
    });
    let out = ctl.cli(&["executions", "pause", &id]);
    assert!(out.status.success(), "{:?}", text(&out));
    wait_until(Duration::from_secs(10), "first task done", || {
        executions(&ctl, "core.local")
            .iter()
            .any(|e| e["status"] == "succeeded")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        executions(&ctl, "core.noop").is_empty(),
        "paused: nothing new starts"
    );
    assert_eq!(execution(&ctl, &id)["status"], "running");
    assert!(ctl.cli(&["executions", "resume", &id]).status.success());
    let done = wait_final(&ctl, &id, Duration::from_secs(15));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(executions(&ctl, "core.noop").len(), 1);
    // Only workflows pause.
    let out = ctl.cli(&["executions", "pause", &id]);
    assert!(!out.status.success());
    assert!(
        text(&out).1.contains("not a running workflow"),
        "{:?}",
        text(&out)
    );
}

/// A workflow task whose action is itself a workflow: the child runs as an execution of
/// its own under the task, its output is the task's `result().output`, and a failing
/// child fails the task (and, unhandled, the parent).
#[test]
fn a_workflow_runs_another_workflow_as_a_task() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let pack = dir.path().join("nest");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: nest\nname: nest\nversion: 0.1.0\ndescription: sub-workflows\n",
            ),
            (
                "actions/child.yaml",
                "name: child\nrunner_type: orquesta\nentry_point: workflows/child.yaml\n\
                 parameters:\n  word:\n    type: string\n    required: true\n  fail:\n    type: boolean\n    default: false\n  nap:\n    type: integer\n    default: 0\n",
            ),
            (
                "actions/workflows/child.yaml",
                "version: 1.0\ninput:\n  - word\n  - fail\n  - nap\ntasks:\n  shout:\n    action: core.local\n\
                 \x20   input:\n      cmd: \"{% if ctx('fail') %}exit 3{% else %}sleep {{ ctx('nap') }}; echo {{ ctx('word') | upper }}{% endif %}\"\n\
                 \x20   next:\n      - when: '{{ succeeded() }}'\n        publish:\n          - loud: '{{ result().stdout }}'\n\
                 output:\n  - loud: \"{{ ctx('loud') }}\"\n",
            ),
            (
                "actions/slow_parent.yaml",
                "name: slow_parent\nrunner_type: orquesta\nentry_point: workflows/slow_parent.yaml\n",
            ),
            (
                "actions/workflows/slow_parent.yaml",
                "version: 1.0\ntasks:\n  inner:\n    action: nest.child\n\
                 \x20   input:\n      word: slow\n      nap: 117\n",
            ),
            (
                "actions/forever.yaml",
                "name: forever\nrunner_type: orquesta\nentry_point: workflows/forever.yaml\n",
            ),
            (
                "actions/workflows/forever.yaml",
                "version: 1.0\ntasks:\n  again:\n    action: nest.forever\n",
            ),
            (
                "actions/parent.yaml",
                "name: parent\nrunner_type: orquesta\nentry_point: workflows/parent.yaml\n\
                 parameters:\n  fail:\n    type: boolean\n    default: false\n",
            ),
            (
                "actions/workflows/parent.yaml",
                "version: 1.0\ninput:\n  - fail\ntasks:\n  inner:\n    action: nest.child\n\
                 \x20   input:\n      word: hello\n      fail: '{{ ctx(\"fail\") }}'\n\
                 \x20   next:\n      - when: '{{ succeeded() }}'\n        publish:\n          - got: '{{ result().output.loud }}'\n        do: after\n\
                 \x20 after:\n    action: core.noop\n\
                 output:\n  - got: \"{{ ctx('got') }}\"\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let run = |fail: bool| {
        let out = ctl.cli(&[
            "actions",
            "run",
            "nest.parent",
            &format!("fail={fail}"),
            "--async",
        ]);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.trim().to_string()
    };

    let id = run(false);
    let done = wait_final(&ctl, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["action"]["result"]["output"]["got"], "HELLO", "{done}");
    // The child is an execution of its own, a step of the parent, with its own step.
    let children = executions(&ctl, "nest.child");
    assert_eq!(children.len(), 1, "{children:?}");
    let child = &children[0];
    assert_eq!(child["action"]["parent_id"], id.as_str(), "{child}");
    assert_eq!(child["status"], "succeeded", "{child}");
    let child_id = child["id"].as_str().unwrap();
    let inner: Vec<Value> = executions(&ctl, "core.local")
        .into_iter()
        .filter(|e| e["action"]["parent_id"] == child_id)
        .collect();
    assert_eq!(
        inner.len(),
        1,
        "the child's own task ran once under the child"
    );
    let trace = ctl.cli_json(&["trace", child_id, "--json"]);
    assert!(
        trace.to_string().contains(&id),
        "the child's trace leads up to the parent: {trace}"
    );

    // A failing child fails its task, and the unhandled failure fails the parent.
    let id = run(true);
    let done = wait_final(&ctl, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "failed", "{done}");
    let failed_child = executions(&ctl, "nest.child")
        .into_iter()
        .find(|e| e["action"]["parent_id"] == id.as_str())
        .expect("the second child");
    assert_eq!(failed_child["status"], "failed", "{failed_child}");
    assert!(
        executions(&ctl, "core.noop")
            .iter()
            .all(|e| e["action"]["parent_id"] != id.as_str()),
        "the task after a failed child never ran"
    );

    // Cancelling the parent cancels the child workflow, and the child's running task.
    let id = {
        let out = ctl.cli(&["actions", "run", "nest.slow_parent", "--async"]);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.trim().to_string()
    };
    let mut child = Value::Null;
    wait_until(Duration::from_secs(20), "the child's sleep running", || {
        child = executions(&ctl, "nest.child")
            .into_iter()
            .find(|e| e["action"]["parent_id"] == id.as_str())
            .unwrap_or(Value::Null);
        let Some(child_id) = child["id"].as_str() else {
            return false;
        };
        executions(&ctl, "core.local")
            .iter()
            .any(|e| e["action"]["parent_id"] == child_id && e["status"] == "running")
    });
    let out = ctl.cli(&["executions", "cancel", &id]);
    assert!(out.status.success(), "{:?}", text(&out));
    let done = wait_final(&ctl, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "cancelled", "{done}");
    let child_id = child["id"].as_str().unwrap();
    let child = wait_final(&ctl, child_id, Duration::from_secs(30));
    assert_eq!(child["status"], "cancelled", "{child}");
    assert!(
        common::processes_with("sleep 117").is_empty(),
        "the child's task process was killed"
    );

    // A workflow that calls itself stops at the nesting limit, and every level fails.
    let out = ctl.cli(&["actions", "run", "nest.forever", "--async"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let id = text(&out).0.trim().to_string();
    let done = wait_final(&ctl, &id, Duration::from_secs(60));
    assert_eq!(done["status"], "failed", "{done}");
    let levels = executions(&ctl, "nest.forever");
    assert_eq!(levels.len(), 17, "16 levels run, the 17th is refused");
    assert!(levels.iter().all(|e| e["status"] == "failed"));
    assert!(
        levels
            .iter()
            .any(|e| e.to_string().contains("does `nest.forever` call itself?")),
        "{levels:?}"
    );
}

/// `st2kv()` in workflow expressions reads the datastore as Orquesta's does: `system.`
/// keys, the starter's user keys, JSON values decoded, `default` for a missing key.
/// A secret never enters workflow state: decrypting one fails the workflow with a
/// pointer to secret parameters, and its plaintext shows nowhere.
#[test]
fn workflow_expressions_read_the_datastore() {
    const SECRET: &str = "wf-secret-never-shown-3f9a";
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    for args in [
        vec!["kv", "set", "greeting", "hello"],
        vec!["kv", "set", "limits", r#"{"n": 2, "hosts": ["a", "b"]}"#],
        vec!["kv", "set", "mine", "41", "--scope", "user"],
        vec!["kv", "set", "token", SECRET, "--secret"],
    ] {
        let out = ctl.cli(&args);
        assert!(out.status.success(), "{args:?}: {:?}", text(&out));
    }
    let pack = dir.path().join("kvwf");
    write(
        &pack,
        &[
            (
                "pack.yaml",
                "ref: kvwf\nname: kvwf\nversion: 0.1.0\ndescription: st2kv in workflows\n",
            ),
            (
                "actions/read.yaml",
                "name: read\nrunner_type: orquesta\nentry_point: workflows/read.yaml\n",
            ),
            (
                "actions/workflows/read.yaml",
                "version: 1.0\nvars:\n  - n: \"{{ st2kv('system.limits').n }}\"\ntasks:\n  say:\n    action: core.local\n\
                 \x20   input:\n      cmd: \"echo {{ st2kv('system.greeting') }} {{ st2kv('system.limits').hosts | join(',') }}\"\n\
                 \x20   next:\n      - when: '{{ succeeded() }}'\n        publish:\n          - said: '{{ result().stdout }}'\n\
                 output:\n  - said: \"{{ ctx('said') }}\"\n  - n: \"{{ ctx('n') }}\"\n  - mine: \"{{ st2kv('mine') + 1 }}\"\n\
                 \x20 - fallback: \"{{ st2kv('system.absent', default='none-set') }}\"\n  - masked: \"{{ st2kv('system.token') }}\"\n",
            ),
            (
                "actions/leak.yaml",
                "name: leak\nrunner_type: orquesta\nentry_point: workflows/leak.yaml\n",
            ),
            (
                "actions/workflows/leak.yaml",
                "version: 1.0\ntasks:\n  use:\n    action: core.local\n\
                 \x20   input:\n      cmd: \"echo {{ st2kv('system.token', decrypt=true) }}\"\n",
            ),
        ],
    );
    install(&ctl, &pack);
    let run = |action: &str| {
        let out = ctl.cli(&["actions", "run", action, "--async"]);
        assert!(out.status.success(), "{:?}", text(&out));
        text(&out).0.trim().to_string()
    };
    let id = run("kvwf.read");
    let done = wait_final(&ctl, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "succeeded", "{done}");
    let output = &done["action"]["result"]["output"];
    assert_eq!(output["said"], "hello a,b", "{done}");
    assert_eq!(output["n"], 2, "{done}");
    assert_eq!(output["mine"], 42, "the starter's user scope: {done}");
    assert_eq!(output["fallback"], "none-set", "{done}");
    assert_eq!(output["masked"], "********", "{done}");
    // A changed key is read by the next run (the controller's snapshot follows the
    // datastore's version).
    let out = ctl.cli(&["kv", "set", "greeting", "bonjour"]);
    assert!(out.status.success(), "{:?}", text(&out));
    let id = run("kvwf.read");
    let done = wait_final(&ctl, &id, Duration::from_secs(30));
    assert_eq!(
        done["action"]["result"]["output"]["said"], "bonjour a,b",
        "{done}"
    );

    let id = run("kvwf.leak");
    let done = wait_final(&ctl, &id, Duration::from_secs(30));
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done.to_string().contains("decrypt_kv"),
        "the error says where secrets belong: {done}"
    );
    let everything = format!(
        "{}{}",
        ctl.cli_json(&["executions", "--limit", "100", "--json"]),
        text(&ctl.cli(&["events", "--limit", "1000", "--json"])).0
    );
    assert!(
        !everything.contains(SECRET),
        "the secret leaked: {everything}"
    );
}

/// `drover.apply dry_run=true` answers the plan of the stored model against the live
/// fleet and changes nothing; without a model it fails saying so.
#[test]
fn drover_apply_dry_run_plans_without_applying() {
    let dir = tempfile::tempdir().unwrap();
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let run = |args: &[&str]| {
        let mut all = vec!["actions", "run", "drover.apply"];
        all.extend_from_slice(args);
        all.push("--async");
        let out = ctl.cli(&all);
        assert!(out.status.success(), "{:?}", text(&out));
        wait_final(&ctl, text(&out).0.trim(), Duration::from_secs(30))
    };
    let none = run(&["dry_run=true"]);
    assert_eq!(none["status"], "failed", "{none}");
    assert!(
        none.to_string().contains("no model has been applied yet"),
        "{none}"
    );

    let _agent = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    let sha = common::push_sleeper_release(&ctl, dir.path());
    let model = dir.path().join("model");
    common::write_sleeper_model(&model, &sha, 1, 0, 1);
    let out = ctl.cli(&[
        "apply",
        "--yes",
        "-m",
        "one sleeper",
        model.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{:?}", text(&out));

    let not_actions = || -> Vec<Value> {
        ctl.cli_json(&["executions", "--limit", "100", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["kind"] != "action")
            .collect()
    };
    let before = not_actions();
    assert!(!before.is_empty(), "the apply started a rollout");
    let planned = run(&["dry_run=true"]);
    assert_eq!(planned["status"], "succeeded", "{planned}");
    let result = &planned["action"]["result"];
    assert_eq!(result["dry_run"], true, "{planned}");
    assert_eq!(result["model_version"], 1, "{planned}");
    assert_eq!(
        result["summary"]["ok"], 1,
        "the live fleet is compared: {planned}"
    );
    assert!(result["plan"].is_string(), "{planned}");
    let history = ctl.cli_json(&["model", "history", "--json"]);
    assert_eq!(
        history.as_array().map(Vec::len),
        Some(1),
        "a dry run adds no model version: {history}"
    );
    let after = not_actions();
    assert_eq!(after, before, "a dry run starts nothing");
}
