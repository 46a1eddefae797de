//! Workflows driven by hand: outcomes fed one by one, directives checked.

use serde_json::{Map, Value as Json, json};

use super::conductor;
use super::spec::{WorkflowSpec, decode_workflow};
use super::state::{
    Directive, OutcomeStatus, TaskKey, TaskOutcome, WorkflowError, WorkflowState, WorkflowStatus,
};

fn spec(text: &str) -> WorkflowSpec {
    match decode_workflow("wf.yaml", text) {
        Ok(s) => s,
        Err(errors) => panic!("{errors:#?}"),
    }
}

/// A workflow under test: its state and the runs handed out and not yet ended.
struct Sim {
    spec: WorkflowSpec,
    state: WorkflowState,
    running: Vec<(TaskKey, String, Json)>,
    finished: Option<(WorkflowStatus, Json, Vec<Json>)>,
    max_running: usize,
    delays: std::collections::BTreeMap<String, u64>,
}

impl Sim {
    fn start(text: &str, input: Json) -> Sim {
        let spec = spec(text);
        let input: Map<String, Json> = input.as_object().cloned().unwrap_or_default();
        let (state, out) = conductor::start(&spec, input).unwrap();
        let mut sim = Sim {
            spec,
            state,
            running: Vec::new(),
            finished: None,
            max_running: 0,
            delays: Default::default(),
        };
        sim.take(out);
        sim
    }

    fn take(&mut self, out: Vec<Directive>) {
        for d in out {
            match d {
                Directive::RunAction {
                    key,
                    action,
                    input,
                    delay_ms,
                } => {
                    self.delays.insert(key.to_string(), delay_ms);
                    assert!(self.finished.is_none(), "{key} after the end");
                    self.running.push((key, action, input));
                }
                Directive::Finished {
                    status,
                    output,
                    errors,
                } => {
                    assert!(self.finished.is_none(), "finished twice");
                    self.finished = Some((status, output, errors));
                }
            }
        }
        self.max_running = self.max_running.max(self.running.len());
    }

    /// Keys of the runs handed out, as text, sorted.
    fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self.running.iter().map(|(k, _, _)| k.to_string()).collect();
        k.sort();
        k
    }

    fn input_of(&self, key: &str) -> Json {
        self.running
            .iter()
            .find(|(k, _, _)| k.to_string() == key)
            .map(|(_, _, i)| i.clone())
            .unwrap_or_else(|| panic!("{key} is not running: {:?}", self.keys()))
    }

    fn end(&mut self, key: &str, status: OutcomeStatus, result: Json) {
        let pos = self
            .running
            .iter()
            .position(|(k, _, _)| k.to_string() == key)
            .unwrap_or_else(|| panic!("{key} is not running: {:?}", self.keys()));
        let (k, _, _) = self.running.remove(pos);
        let out = conductor::task_finished(
            &self.spec,
            &mut self.state,
            &k,
            TaskOutcome { status, result },
        )
        .unwrap();
        self.take(out);
    }

    fn ok(&mut self, key: &str, result: Json) {
        self.end(key, OutcomeStatus::Succeeded, result);
    }

    fn fail(&mut self, key: &str) {
        self.end(key, OutcomeStatus::Failed, json!({"stderr": "boom"}));
    }

    fn status(&self) -> Option<WorkflowStatus> {
        self.finished.as_ref().map(|f| f.0)
    }

    fn output(&self) -> Json {
        self.finished.as_ref().map_or(Json::Null, |f| f.1.clone())
    }

    fn errors(&self) -> Vec<Json> {
        self.finished.as_ref().map_or(Vec::new(), |f| f.2.clone())
    }
}

const CHAIN: &str = r#"
version: 1.0
description: three in a row
input:
  - who
  - greeting: "hello {{ ctx().who }}"
vars:
  - n: 1
tasks:
  a:
    action: core.echo
    input:
      message: "{{ ctx().greeting }}"
    next:
      - when: "{{ succeeded() }}"
        publish:
          - n: "{{ ctx().n + result().add }}"
        do: b
  b:
    action: core.echo
    input:
      n: "{{ ctx('n') }}"
    next:
      - publish: {last: "{{ result().stdout }}"}
        do: [c]
  c:
    action: core.local
    input: {cmd: "echo {{ ctx().last }}"}
output:
  - n: "{{ ctx().n }}"
  - last: "{{ ctx().last }}"
  - both: "{{ ctx().n }}/{{ ctx().last }}"
"#;

#[test]
fn sequential_chain_publishes_and_outputs() {
    let mut sim = Sim::start(CHAIN, json!({"who": "ops"}));
    assert_eq!(sim.keys(), ["a@0.0"]);
    assert_eq!(sim.input_of("a@0.0"), json!({"message": "hello ops"}));
    sim.ok("a@0.0", json!({"add": 41}));
    assert_eq!(sim.keys(), ["b@0.0"]);
    assert_eq!(sim.input_of("b@0.0"), json!({"n": 42}));
    sim.ok("b@0.0", json!({"stdout": "out"}));
    assert_eq!(sim.input_of("c@0.0"), json!({"cmd": "echo out"}));
    assert_eq!(sim.running[0].1, "core.local");
    assert_eq!(sim.status(), None);
    sim.ok("c@0.0", json!({}));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(
        sim.output(),
        json!({"n": 42, "last": "out", "both": "42/out"})
    );
    assert_eq!(
        sim.spec.actions(),
        vec!["core.echo".to_string(), "core.local".to_string()]
    );
}

const BRANCH: &str = r#"
version: 1.0
tasks:
  check:
    action: core.check
    next:
      - when: "{{ succeeded() }}"
        do: good
      - when: "{{ failed() }}"
        do: bad
      - when: "{{ completed() }}"
        do: always
  good:
    action: core.good
  bad:
    action: core.bad
  always:
    action: core.always
"#;

#[test]
fn branching_on_status() {
    let cases = [
        (OutcomeStatus::Succeeded, vec!["always@0.0", "good@0.0"]),
        (OutcomeStatus::Failed, vec!["always@0.0", "bad@0.0"]),
        (OutcomeStatus::Timeout, vec!["always@0.0", "bad@0.0"]),
    ];
    for (status, want) in cases {
        let mut sim = Sim::start(BRANCH, json!({}));
        sim.end("check@0.0", status, json!(null));
        assert_eq!(sim.keys(), want, "{status:?}");
        for k in want {
            sim.ok(k, json!(null));
        }
        // The failure was handled by a transition: the workflow succeeds.
        assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded), "{status:?}");
    }
}

const JOIN: &str = r#"
version: 1.0
tasks:
  init:
    action: core.noop
    next:
      - do: [left, middle, right]
  left:
    action: core.noop
    next: [{publish: [{l: 1}], do: merge}]
  middle:
    action: core.noop
    next: [{publish: [{m: 2}], do: merge}]
  right:
    action: core.noop
    next: [{publish: [{r: 3}], do: merge}]
  merge:
    join: JOIN
    action: core.merge
    input:
      seen: "{{ ctx() }}"
"#;

#[test]
fn join_all_waits_for_every_branch_and_merges_contexts() {
    let mut sim = Sim::start(&JOIN.replace("JOIN", "all"), json!({}));
    sim.ok("init@0.0", json!(null));
    assert_eq!(sim.keys(), ["left@0.0", "middle@0.0", "right@0.0"]);
    sim.ok("left@0.0", json!(null));
    sim.ok("right@0.0", json!(null));
    assert_eq!(sim.keys(), ["middle@0.0"]);
    sim.ok("middle@0.0", json!(null));
    assert_eq!(sim.keys(), ["merge@0.0"]);
    assert_eq!(
        sim.input_of("merge@0.0"),
        json!({"seen": {"l": 1, "m": 2, "r": 3}})
    );
    sim.ok("merge@0.0", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
}

#[test]
fn join_n_fires_once_after_n_branches() {
    let mut sim = Sim::start(&JOIN.replace("JOIN", "2"), json!({}));
    sim.ok("init@0.0", json!(null));
    sim.ok("middle@0.0", json!(null));
    assert_eq!(sim.keys(), ["left@0.0", "right@0.0"]);
    sim.ok("left@0.0", json!(null));
    assert_eq!(sim.keys(), ["merge@0.0", "right@0.0"]);
    assert_eq!(sim.input_of("merge@0.0"), json!({"seen": {"l": 1, "m": 2}}));
    sim.ok("right@0.0", json!(null));
    sim.ok("merge@0.0", json!(null));
    assert_eq!(sim.keys(), Vec::<String>::new());
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(
        sim.state.tasks.iter().filter(|t| t.name == "merge").count(),
        1
    );
}

const ITEMS: &str = r#"
version: 1.0
input: [hosts]
tasks:
  each:
    with:
      items: host in {{ ctx().hosts }}
      concurrency: 2
    action: core.ping
    input:
      host: "{{ item('host') }}"
      also: "{{ item() }}"
    next:
      - publish: [{all: "{{ result() }}"}]
output:
  - all: "{{ ctx().all }}"
"#;

#[test]
fn with_items_keeps_the_window_and_orders_results() {
    let hosts = json!(["h0", "h1", "h2", "h3", "h4"]);
    let mut sim = Sim::start(ITEMS, json!({"hosts": hosts}));
    assert_eq!(sim.keys(), ["each@0#0.0", "each@0#1.0"]);
    assert_eq!(
        sim.input_of("each@0#1.0"),
        json!({"host": "h1", "also": {"host": "h1"}})
    );
    // End them out of order; never more than two in flight.
    let order = [
        "each@0#1.0",
        "each@0#0.0",
        "each@0#3.0",
        "each@0#2.0",
        "each@0#4.0",
    ];
    for key in order {
        let item: usize = key[7..8].parse().unwrap();
        sim.ok(key, json!(format!("r{item}")));
        assert!(sim.running.len() <= 2, "{:?}", sim.keys());
    }
    assert_eq!(sim.max_running, 2);
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(sim.output(), json!({"all": ["r0", "r1", "r2", "r3", "r4"]}));
}

#[test]
fn with_items_bare_form_and_failed_item() {
    let text = r#"
version: 1.0
tasks:
  each:
    with: "{{ [1, 2, 3] }}"
    action: core.ping
    input: {n: "{{ item() * 10 }}"}
"#;
    let mut sim = Sim::start(text, json!({}));
    assert_eq!(sim.keys(), ["each@0#0.0", "each@0#1.0", "each@0#2.0"]);
    assert_eq!(sim.input_of("each@0#2.0"), json!({"n": 30}));
    sim.ok("each@0#0.0", json!(null));
    sim.fail("each@0#1.0");
    assert_eq!(sim.status(), None);
    sim.ok("each@0#2.0", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));
    assert_eq!(sim.errors()[0]["task_id"], json!("each"));
}

#[test]
fn with_items_binds_several_names() {
    let text = r#"
version: 1.0
tasks:
  each:
    with:
      items: n, word in {{ [[1, 'one'], [2, 'two']] }}
    action: core.say
    input: {text: "{{ item('n') }}={{ item().word }}"}
"#;
    let sim = Sim::start(text, json!({}));
    assert_eq!(sim.input_of("each@0#0.0"), json!({"text": "1=one"}));
    assert_eq!(sim.input_of("each@0#1.0"), json!({"text": "2=two"}));
}

const RETRY: &str = r#"
version: 1.0
tasks:
  flaky:
    action: core.flaky
    retry:
      when: "{{ failed() and result().code == 75 }}"
      count: 2
      delay: 3
"#;

#[test]
fn retry_until_count_when_the_condition_holds() {
    let mut sim = Sim::start(RETRY, json!({}));
    sim.end("flaky@0.0", OutcomeStatus::Failed, json!({"code": 75}));
    assert_eq!(sim.keys(), ["flaky@0.1"]);
    assert_eq!(sim.delays["flaky@0.1"], 3000);
    // The first attempt's late report changes nothing.
    let stale = conductor::task_finished(
        &sim.spec,
        &mut sim.state.clone(),
        &"flaky@0.0".parse().unwrap(),
        TaskOutcome {
            status: OutcomeStatus::Succeeded,
            result: json!(null),
        },
    )
    .unwrap();
    assert!(stale.is_empty());
    sim.end("flaky@0.1", OutcomeStatus::Failed, json!({"code": 75}));
    assert_eq!(sim.keys(), ["flaky@0.2"]);
    sim.end("flaky@0.2", OutcomeStatus::Failed, json!({"code": 75}));
    // Count spent: the workflow fails.
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));

    // A failure the condition does not match is not retried.
    let mut sim = Sim::start(RETRY, json!({}));
    sim.end("flaky@0.0", OutcomeStatus::Failed, json!({"code": 1}));
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));

    // Success after a retry.
    let mut sim = Sim::start(RETRY, json!({}));
    sim.end("flaky@0.0", OutcomeStatus::Failed, json!({"code": 75}));
    sim.ok("flaky@0.1", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
}

#[test]
fn retry_when_polls_a_succeeded_task() {
    let text = r#"
version: 1.0
tasks:
  poll:
    action: core.status
    retry:
      when: "{{ result().state != 'ready' }}"
      count: 5
"#;
    let mut sim = Sim::start(text, json!({}));
    sim.ok("poll@0.0", json!({"state": "starting"}));
    sim.ok("poll@0.1", json!({"state": "starting"}));
    sim.ok("poll@0.2", json!({"state": "ready"}));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(sim.delays["poll@0.1"], 0);
}

#[test]
fn engine_commands() {
    let text = r#"
version: 1.0
tasks:
  t:
    action: core.t
    next:
      - when: "{{ failed() }}"
        do: CMD
"#;
    // (command, outcome, final status, reruns)
    let cases = [
        ("noop", OutcomeStatus::Failed, WorkflowStatus::Succeeded),
        ("continue", OutcomeStatus::Failed, WorkflowStatus::Failed),
        ("fail", OutcomeStatus::Failed, WorkflowStatus::Failed),
        ("noop", OutcomeStatus::Succeeded, WorkflowStatus::Succeeded),
        ("fail", OutcomeStatus::Succeeded, WorkflowStatus::Succeeded),
    ];
    for (cmd, outcome, want) in cases {
        let mut sim = Sim::start(&text.replace("CMD", cmd), json!({}));
        sim.end("t@0.0", outcome, json!(null));
        assert_eq!(sim.status(), Some(want), "{cmd} {outcome:?}");
    }
    // `fail` on success fails the workflow.
    let mut sim = Sim::start(
        &text
            .replace("{{ failed() }}", "{{ succeeded() }}")
            .replace("CMD", "fail"),
        json!({}),
    );
    sim.ok("t@0.0", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));
    // `retry` runs the task again as its next attempt.
    let mut sim = Sim::start(&text.replace("CMD", "retry"), json!({}));
    sim.fail("t@0.0");
    assert_eq!(sim.keys(), ["t@0.1"]);
    sim.ok("t@0.1", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
}

#[test]
fn unhandled_failure_waits_for_running_tasks_then_fails() {
    let text = r#"
version: 1.0
tasks:
  a:
    action: core.a
    next: [{when: "{{ succeeded() }}", do: c}]
  b:
    action: core.b
    next: [{do: c}]
  c:
    action: core.c
"#;
    let mut sim = Sim::start(text, json!({}));
    sim.fail("a@0.0");
    assert_eq!(sim.status(), None);
    sim.ok("b@0.0", json!(null));
    // Nothing new starts once the workflow is failing.
    assert_eq!(sim.keys(), Vec::<String>::new());
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));
    let errors = sim.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["task_id"], json!("a"));
    assert_eq!(errors[0]["result"], json!({"stderr": "boom"}));
}

#[test]
fn failing_workflow_leaves_waiting_items_and_stays_failed() {
    let text = r#"
version: 1.0
tasks:
  a:
    action: core.a
  each:
    with: {items: "{{ [1, 2, 3] }}", concurrency: 1}
    action: core.each
    next: [{publish: "count={{ result() | length }} first={{ result()[0] }}", do: after}]
  after:
    action: core.after
"#;
    let mut sim = Sim::start(text, json!({}));
    assert_eq!(sim.keys(), ["a@0.0", "each@0#0.0"]);
    sim.fail("a@0.0");
    sim.ok("each@0#0.0", json!(null));
    assert_eq!(sim.keys(), Vec::<String>::new());
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));
    assert_eq!(sim.errors().len(), 1);

    // The same workflow, nothing failing: inline publish reaches `after`.
    let text = text.replace(
        "action: core.after",
        "action: core.after\n    input: {n: \"{{ ctx().count }}\"}",
    );
    let mut sim = Sim::start(&text, json!({}));
    sim.ok("a@0.0", json!(null));
    for i in 0..3 {
        sim.ok(&format!("each@0#{i}.0"), json!(i));
    }
    assert_eq!(sim.input_of("after@0.0"), json!({"n": 3}));
}

#[test]
fn published_variables_flow_downstream_only() {
    let text = r#"
version: 1.0
vars: [{base: 1}]
tasks:
  a:
    action: core.a
    next: [{publish: {x: "{{ ctx().base + 1 }}"}, do: [b, c]}]
  b:
    action: core.b
    input: {x: "{{ ctx().x }}"}
    next: [{publish: {y: "from b"}, do: d}]
  c:
    action: core.c
    input: {y: "{{ ctx().y }}"}
  d:
    action: core.d
"#;
    let mut sim = Sim::start(text, json!({}));
    sim.ok("a@0.0", json!(null));
    // b sees a's publish; c, a sibling of b, cannot see b's `y`.
    assert_eq!(sim.keys(), ["b@0.0"]);
    assert_eq!(sim.input_of("b@0.0"), json!({"x": 2}));
    let e = &sim.state.errors[0];
    assert_eq!(e["task_id"], json!("c"));
    assert_eq!(e["expression"], json!("{{ ctx().y }}"));
    assert!(
        e["message"].as_str().unwrap().contains("tasks.c.input"),
        "{e}"
    );
    sim.ok("b@0.0", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));
}

#[test]
fn expression_error_in_when_fails_with_the_task_and_expression() {
    let text = r#"
version: 1.0
tasks:
  a:
    action: core.a
    next:
      - when: "{{ result().missing.deeper }}"
        do: b
  b:
    action: core.b
"#;
    let mut sim = Sim::start(text, json!({}));
    sim.ok("a@0.0", json!({}));
    assert_eq!(sim.status(), Some(WorkflowStatus::Failed));
    let e = &sim.errors()[0];
    assert_eq!(e["task_id"], json!("a"));
    assert_eq!(e["expression"], json!("{{ result().missing.deeper }}"));
    assert!(
        e["message"].as_str().unwrap().starts_with("next[0].when"),
        "{e}"
    );
}

#[test]
fn input_is_checked_and_defaults_evaluated() {
    let s = spec(CHAIN);
    let bad = json!({"who": "x", "whom": "y"})
        .as_object()
        .cloned()
        .unwrap();
    assert_eq!(
        conductor::start(&s, bad).unwrap_err(),
        WorkflowError::UnknownInput(vec!["whom".into()])
    );
    let (state, _) = conductor::start(&s, Map::new()).unwrap();
    assert_eq!(state.context["who"], Json::Null);
    let text = "version: 1.0\ninput: [{a: \"{{ ctx().nope }}\"}]\ntasks:\n  t:\n    action: x.y\n";
    let err = conductor::start(&spec(text), Map::new()).unwrap_err();
    assert!(err.to_string().starts_with("input.a:"), "{err}");
}

const PAUSE: &str = r#"
version: 1.0
tasks:
  a:
    action: core.a
    next: [{do: b}]
  b:
    action: core.b
  side:
    action: core.side
"#;

#[test]
fn pause_holds_new_work_until_resume() {
    let mut sim = Sim::start(PAUSE, json!({}));
    assert_eq!(sim.keys(), ["a@0.0", "side@0.0"]);
    conductor::pause(&mut sim.state);
    assert_eq!(sim.state.status, WorkflowStatus::Pausing);
    sim.ok("a@0.0", json!(null));
    assert_eq!(sim.keys(), ["side@0.0"], "b is held");
    sim.ok("side@0.0", json!(null));
    assert_eq!(sim.state.status, WorkflowStatus::Paused);
    assert_eq!(sim.status(), None);
    let out = conductor::resume(&sim.spec, &mut sim.state);
    sim.take(out);
    assert_eq!(sim.keys(), ["b@0.0"]);
    sim.ok("b@0.0", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
}

#[test]
fn cancel_waits_for_running_tasks_and_starts_nothing() {
    let mut sim = Sim::start(PAUSE, json!({}));
    let out = conductor::cancel(&mut sim.state);
    assert!(out.is_empty());
    assert_eq!(sim.state.status, WorkflowStatus::Canceling);
    sim.ok("a@0.0", json!(null));
    assert_eq!(sim.keys(), ["side@0.0"]);
    sim.ok("side@0.0", json!(null));
    assert_eq!(sim.status(), Some(WorkflowStatus::Canceled));

    // Canceling a paused workflow with nothing running ends it at once.
    let mut sim = Sim::start(PAUSE, json!({}));
    conductor::pause(&mut sim.state);
    sim.ok("a@0.0", json!(null));
    sim.ok("side@0.0", json!(null));
    let out = conductor::cancel(&mut sim.state);
    sim.take(out);
    assert_eq!(sim.status(), Some(WorkflowStatus::Canceled));
}

#[test]
fn state_survives_a_json_round_trip_mid_run() {
    let hosts = json!(["h0", "h1", "h2", "h3", "h4"]);
    let mut a = Sim::start(ITEMS, json!({"hosts": hosts}));
    a.ok("each@0#0.0", json!("r0"));
    let saved = serde_json::to_string(&a.state).unwrap();
    let restored: WorkflowState = serde_json::from_str(&saved).unwrap();
    assert_eq!(restored, a.state);
    let mut keys: Vec<String> = conductor::pending_actions(&restored)
        .iter()
        .map(TaskKey::to_string)
        .collect();
    keys.sort();
    assert_eq!(keys, a.keys());
    let mut b = Sim {
        spec: a.spec.clone(),
        state: restored,
        running: a.running.clone(),
        finished: None,
        max_running: 0,
        delays: Default::default(),
    };
    // A replay of an ended run changes nothing.
    let replay = conductor::task_finished(
        &b.spec,
        &mut b.state,
        &"each@0#0.0".parse().unwrap(),
        TaskOutcome {
            status: OutcomeStatus::Succeeded,
            result: json!("again"),
        },
    )
    .unwrap();
    assert!(replay.is_empty());
    for key in ["each@0#1.0", "each@0#2.0", "each@0#3.0", "each@0#4.0"] {
        let r = json!(format!("r{}", &key[7..8]));
        a.ok(key, r.clone());
        b.ok(key, r);
        assert_eq!(a.keys(), b.keys());
        assert_eq!(a.state, b.state);
    }
    assert_eq!(b.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(a.output(), b.output());
}

#[test]
fn task_keys_round_trip() {
    for text in ["a@0.0", "deploy_web@3#12.2", "with@at@1.0"] {
        let key: TaskKey = text.parse().unwrap();
        assert_eq!(key.to_string(), text);
    }
    for bad in ["a", "a@x.0", "a@0", "a@0#x.1"] {
        assert!(bad.parse::<TaskKey>().is_err(), "{bad}");
    }
}

#[test]
fn tasks_without_action_and_cycles() {
    let text = r#"
version: 1.0
vars: [{n: 0}]
tasks:
  start:
    next: [{do: work}]
  work:
    action: core.work
    next:
      - when: "{{ result() < 2 }}"
        publish: [{n: "{{ ctx().n + 1 }}"}]
        do: work
      - when: "{{ result() >= 2 }}"
        publish: [{n: "{{ ctx().n + 1 }}"}]
output: [{n: "{{ ctx().n }}"}]
"#;
    let spec = spec(text);
    assert_eq!(spec.start_tasks(), ["start"]);
    let mut sim = Sim::start(text, json!({}));
    assert_eq!(sim.keys(), ["work@0.0"]);
    sim.ok("work@0.0", json!(0));
    assert_eq!(sim.keys(), ["work@1.0"]);
    sim.ok("work@1.0", json!(1));
    sim.ok("work@2.0", json!(2));
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(sim.output(), json!({"n": 3}));
}

/// Decode errors: (workflow text, expected `line:column: field: reason` prefixes).
#[test]
fn decode_errors_are_located() {
    let cases: &[(&str, &[&str])] = &[
        (
            "version: 1.0\ntasks:\n  restart:\n    action: core.local\n    next:\n      - when: <% succeeded() %>\n        do: done\n  done:\n    action: core.noop\n",
            &[
                "6:15: tasks.restart.next[0].when: YAQL expressions are not supported yet; use Jinja {{ }}: `<% succeeded() %>`",
            ],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: core.local\n    inptu: {}\n",
            &["5:5: tasks.a.inptu: unknown field `inptu`; did you mean `input`?"],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: core.local\n    next:\n      - do: [b, nope]\n  b:\n    action: x.y\n",
            &["6:13: tasks.a.next[0].do: `nope` is no task of this workflow"],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: x.y\n    next: [{do: b}]\n  b:\n    join: 2\n    action: x.y\n",
            &["7:11: tasks.b.join: joins 2 inbound tasks but only 1 lead here"],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: x.y\n    next: [{do: b}]\n  b:\n    action: x.y\n    next: [{do: a}]\n",
            &["3:3: tasks: no start task"],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: x.y\n    input:\n      x: \"{{ ctx( }}\"\n",
            &["6:10: tasks.a.input.x: bad Jinja in `{{ ctx( }}`"],
        ),
        (
            "version: 2.0\nbogus: 1\ntasks:\n  a:\n    action: x.y\n",
            &[
                "1:10: version: expected version `1.0`",
                "2:1: bogus: unknown field `bogus`",
            ],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: x.y\n    with:\n      items: x in <% $.xs %>\n",
            &[
                "6:14: tasks.a.with.items: YAQL expressions are not supported yet; use Jinja {{ }}: `<% $.xs %>`",
            ],
        ),
        (
            "version: 1.0\ntasks:\n  a:\n    action: x.y\n    join: some\n",
            &["5:11: tasks.a.join: expected `all` or a positive integer"],
        ),
    ];
    for (text, want) in cases {
        let errors = decode_workflow("wf.yaml", text).unwrap_err();
        let got: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert!(g.starts_with(&format!("wf.yaml:{w}")), "got {g}\nwant {w}");
        }
    }
}

#[test]
fn inline_action_input() {
    let s = spec(
        "version: 1.0\ntasks:\n  a:\n    action: core.local cmd=\"ls -l\" timeout=30 cwd='/tmp' flag=true\n",
    );
    assert_eq!(s.tasks[0].action.as_deref(), Some("core.local"));
    assert_eq!(
        s.tasks[0].input,
        json!({"cmd": "ls -l", "timeout": 30, "cwd": "/tmp", "flag": true})
    );
    let errors = decode_workflow(
        "wf.yaml",
        "version: 1.0\ntasks:\n  a:\n    action: core.local cmd=\"unclosed\n",
    )
    .unwrap_err();
    assert_eq!(errors[0].field, "tasks.a.action");
    assert_eq!((errors[0].line, errors[0].column), (4, 13));
}

#[test]
fn task_delay_and_dynamic_action() {
    let text = r#"
version: 1.0
input: [{wait: 1.5}, {which: core.later}]
tasks:
  later:
    delay: "{{ ctx().wait }}"
    action: "{{ ctx().which }}"
"#;
    let sim = Sim::start(text, json!({}));
    assert_eq!(sim.delays["later@0.0"], 1500);
    assert_eq!(sim.running[0].1, "core.later");
    assert!(sim.spec.actions().is_empty());
}

#[test]
fn unsatisfied_join_does_not_hold_the_workflow_open() {
    let text = r#"
version: 1.0
tasks:
  a:
    action: core.a
    next: [{when: "{{ failed() }}", do: both}]
  b:
    action: core.b
    next: [{do: both}]
  both:
    join: all
    action: core.both
"#;
    let mut sim = Sim::start(text, json!({}));
    sim.ok("a@0.0", json!(null));
    sim.ok("b@0.0", json!(null));
    assert_eq!(sim.keys(), Vec::<String>::new());
    assert_eq!(sim.status(), Some(WorkflowStatus::Succeeded));
    assert_eq!(sim.state.staged.len(), 1);
    assert_eq!(sim.state.staged[0].sources, ["b"]);
}

#[test]
fn literal_actions_only() {
    let s = spec(
        "version: 1.0\ninput: [a]\ntasks:\n  a:\n    action: \"{{ ctx().a }}\"\n  b:\n    action: core.x\n  c:\n    action: core.x\n",
    );
    assert_eq!(s.actions(), vec!["core.x".to_string()]);
}
