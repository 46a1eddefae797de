//! The inventory end to end: a real controller process syncing real providers, real
//! agents, and the real CLI (`drover hosts …`, `drover providers …`).
//!
//! - `ec2` against `moto_server` (PyPI `moto[server]`), a local EC2 emulator with its
//!   SigV4 auth switched on; instances made and changed with boto3. A missing
//!   `moto_server` fails the test.
//! - `exec` running `cat` on a JSON file the test writes, removes and writes again: a
//!   provider outage keeps the inventory (stale), then recovers. SQLite and PostgreSQL.
//! - `static` listing a host, then a real agent enrolling under that name: one host.
//!
//! Credentials are read by the controller from environment variables named in the
//! model; the test sets them in its own process before starting the controller, which
//! inherits them.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Controller, Db, text, wait_until};
use serde_json::{Value, json};

/// How long a provider change may take to show (interval 1s, loop period 0.5s).
const FOLLOW: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------
// Helpers

/// Writes `yaml` as the model's only file and applies it (a model with providers only
/// has no services: `--allow-empty`).
fn apply(ctl: &Controller, dir: &Path, yaml: &str, message: &str) {
    let model = dir.join("model");
    std::fs::create_dir_all(&model).expect("model dir");
    std::fs::write(model.join("inventory.yaml"), yaml).expect("write model");
    let model = model.to_str().expect("utf-8 path");
    let out = ctl.cli(&["apply", "--yes", "--allow-empty", "-m", message, model]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "apply failed: {stderr}\n{stdout}");
}

/// `drover hosts list --json`.
fn hosts(ctl: &Controller) -> Vec<Value> {
    match ctl.cli_json(&["hosts", "list", "--json"]) {
        Value::Array(a) => a,
        other => panic!("hosts list --json: not an array: {other}"),
    }
}

/// The host named `name` in `drover hosts list --json`.
fn host(ctl: &Controller, name: &str) -> Option<Value> {
    hosts(ctl).into_iter().find(|h| h["name"] == name)
}

/// `drover hosts history NAME --json`, newest first.
fn history(ctl: &Controller, name: &str) -> Vec<Value> {
    match ctl.cli_json(&["hosts", "history", name, "--json"]) {
        Value::Array(a) => a,
        other => panic!("hosts history --json: not an array: {other}"),
    }
}

/// The provider `name` in `drover providers list --json`.
fn provider(ctl: &Controller, name: &str) -> Value {
    let list = ctl.cli_json(&["providers", "list", "--json"]);
    list.as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == name).cloned())
        .unwrap_or_else(|| panic!("provider {name} not listed: {list:#}"))
}

/// Events of `kind` whose payload names `host`.
fn host_events(ctl: &Controller, kind: &str, host: &str) -> usize {
    ctl.events(kind)
        .iter()
        .filter(|e| e["payload"]["host"] == host)
        .count()
}

fn names(hosts: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = hosts
        .iter()
        .filter_map(|h| h["name"].as_str().map(str::to_string))
        .collect();
    n.sort();
    n
}

/// History rows are newest first: ids strictly decreasing.
fn assert_newest_first(rows: &[Value]) {
    let ids: Vec<i64> = rows.iter().filter_map(|r| r["id"].as_i64()).collect();
    assert_eq!(ids.len(), rows.len(), "{rows:#?}");
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "not newest first: {ids:?}"
    );
}

/// Sets a variable only this test reads, before the controller (which inherits it) starts.
fn set_env(name: &str, value: &str) {
    // SAFETY: every test uses its own variable names, nextest runs each test in its own
    // process, and this runs before the test starts any thread of its own; no other
    // thread reads these variables.
    unsafe { std::env::set_var(name, value) };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

// ---------------------------------------------------------------------------------
// ec2 against moto

/// A `moto_server` child, killed on drop.
struct Moto {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("moto_server"))
        .chain([PathBuf::from("/root/.pyenv/shims/moto_server")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "moto_server is not installed (not on PATH, not in /root/.pyenv/shims): \
                 the ec2 inventory test needs it: pip install 'moto[server]'"
            )
        })
}

fn start_moto(dir: &Path) -> Moto {
    let port = free_port();
    let log = dir.join("moto.log");
    let log_file = std::fs::File::create(&log).expect("moto log file");
    let child = Command::new(moto_binary())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("cannot start moto_server");
    let mut moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto_server exited ({status}): {}",
                std::fs::read_to_string(&moto.log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return moto;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {} within 60 s: {}",
            moto.url,
            std::fs::read_to_string(&moto.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// boto3 against moto. `setup`: an IAM user allowed `ec2:*` and its access key, three
/// instances (web-0 and web-1 with role=web, db-0 with role=db), then moto's auth on
/// (every later request's SigV4 signature is checked against that key). `retag`: set
/// one instance's `role` tag. `terminate`: terminate one instance.
const BOTO: &str = r#"
import json, sys, urllib.request, boto3
endpoint, op, key, secret = sys.argv[1:5]
def client(service):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret)
ec2 = client("ec2")
if op == "setup":
    iam = client("iam")
    iam.create_user(UserName="drover")
    iam.put_user_policy(UserName="drover", PolicyName="ec2", PolicyDocument=json.dumps(
        {"Version": "2012-10-17",
         "Statement": [{"Effect": "Allow", "Action": "ec2:*", "Resource": "*"}]}))
    access = iam.create_access_key(UserName="drover")["AccessKey"]
    ids = {}
    for name, role in [("web-0", "web"), ("web-1", "web"), ("db-0", "db")]:
        r = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
            InstanceType="t3.micro",
            TagSpecifications=[{"ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": name}, {"Key": "role", "Value": role}]}])
        ids[name] = r["Instances"][0]["InstanceId"]
    # A raw body (not a form): moto reads it as the number of calls left without auth.
    urllib.request.urlopen(urllib.request.Request(endpoint + "/moto-api/reset-auth",
        data=b"0", method="POST", headers={"Content-Type": "text/plain"})).read()
    print(json.dumps({"key": access["AccessKeyId"], "secret": access["SecretAccessKey"], "ids": ids}))
elif op == "retag":
    instance, role = sys.argv[5:7]
    ec2.create_tags(Resources=[instance], Tags=[{"Key": "role", "Value": role}])
    print("{}")
elif op == "terminate":
    ec2.terminate_instances(InstanceIds=[sys.argv[5]])
    print("{}")
"#;

fn boto(moto: &Moto, op: &str, key: &str, secret: &str, extra: &[&str]) -> Value {
    let output = Command::new("python3")
        .args(["-c", BOTO, &moto.url, op, key, secret])
        .args(extra)
        .output()
        .expect("cannot run python3");
    assert!(
        output.status.success(),
        "boto3 {op} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("boto3 script prints JSON")
}

#[test]
fn ec2_instances_become_hosts_and_the_inventory_follows_moto() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = start_moto(dir.path());
    let setup = boto(&moto, "setup", "testing", "testing", &[]);
    let key = setup["key"].as_str().expect("access key").to_string();
    let secret = setup["secret"].as_str().expect("secret key").to_string();
    let ids = setup["ids"].clone();
    set_env("DROVER_IT_EC2_KEY", &key);
    set_env("DROVER_IT_EC2_SECRET", &secret);
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);

    let model = format!(
        "kind: provider\n\
         name: aws\n\
         type: ec2\n\
         region: us-east-1\n\
         endpoint: {}/\n\
         interval: 1s\n\
         access_key_env: DROVER_IT_EC2_KEY\n\
         secret_key_env: DROVER_IT_EC2_SECRET\n",
        moto.url
    );
    apply(&ctl, dir.path(), &model, "aws inventory");

    // The three instances become hosts: missing (no agent), with the provider's fields.
    wait_until(FOLLOW, "3 hosts from ec2", || hosts(&ctl).len() == 3);
    let listed = hosts(&ctl);
    assert_eq!(names(&listed), ["db-0", "web-0", "web-1"], "{listed:#?}");
    for h in &listed {
        let name = h["name"].as_str().expect("name");
        let role = if name.starts_with("web") { "web" } else { "db" };
        assert_eq!(h["status"], "missing", "{h:#}");
        assert_eq!(h["provider"], "aws", "{h:#}");
        assert_eq!(h["provider_id"], ids[name], "{h:#}");
        assert!(
            h["region"]
                .as_str()
                .is_some_and(|r| r.starts_with("us-east-1")),
            "{h:#}"
        );
        let address = h["address"].as_str().expect("address");
        assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{h:#}");
        assert_eq!(h["labels"]["role"], role, "{h:#}");
        assert_eq!(h["labels"]["Name"], name, "{h:#}");
        assert_eq!(h["stale"], false);
        assert_eq!(h["attributes"]["instance_type"], "t3.micro", "{h:#}");
    }
    let added = ctl.events("host.added");
    for name in ["web-0", "web-1", "db-0"] {
        let e = added
            .iter()
            .find(|e| e["payload"]["host"] == name)
            .unwrap_or_else(|| panic!("no host.added for {name}: {added:#?}"));
        assert_eq!(e["payload"]["provider"], "aws");
        assert_eq!(e["payload"]["provider_id"], ids[name]);
    }
    assert_eq!(added.len(), 3, "{added:#?}");
    // The selector sees the provider's fields as facts.
    let web = ctl.cli_json(&[
        "hosts",
        "list",
        "--on",
        "fact.provider=aws,label.role=web",
        "--json",
    ]);
    assert_eq!(
        names(web.as_array().expect("array")),
        ["web-0", "web-1"],
        "{web:#}"
    );

    // Re-tag web-1 (role web → api) and terminate db-0: the inventory follows.
    let web1_id = ids["web-1"].as_str().expect("id");
    let db0_id = ids["db-0"].as_str().expect("id");
    boto(&moto, "retag", &key, &secret, &[web1_id, "api"]);
    boto(&moto, "terminate", &key, &secret, &[db0_id]);
    wait_until(FOLLOW, "web-1 re-tagged and db-0 removed", || {
        let now = hosts(&ctl);
        names(&now) == ["web-0", "web-1"]
            && now
                .iter()
                .any(|h| h["name"] == "web-1" && h["labels"]["role"] == "api")
    });
    let web1 = host(&ctl, "web-1").expect("web-1");
    assert_eq!(web1["provider_id"], ids["web-1"], "same host, same id");

    // web-1's history: added, then the label change with its old and new value.
    let rows = history(&ctl, "web-1");
    assert_newest_first(&rows);
    let kinds: Vec<&str> = rows.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["changed", "added"], "{rows:#?}");
    assert_eq!(
        rows[0]["changes"]["provider_labels.role"],
        json!({"from": "web", "to": "api"}),
        "{rows:#?}"
    );
    assert_eq!(rows[0]["changes"].as_object().map(|m| m.len()), Some(1));
    assert_eq!(rows[1]["changes"]["provider"]["to"], "aws");
    assert_eq!(rows[1]["changes"]["status"]["to"], "missing");
    assert_eq!(rows[1]["changes"]["provider_id"]["to"], ids["web-1"]);
    let changed = ctl.events("host.changed");
    assert!(
        changed.iter().any(|e| e["payload"]["host"] == "web-1"
            && e["payload"]["changes"]["provider_labels.role"]["to"] == "api"),
        "{changed:#?}"
    );

    // The removed host is gone from the list, but its history stays readable.
    let out = ctl.cli(&["hosts", "show", "db-0"]);
    assert_eq!(out.status.code(), Some(1), "db-0 is gone");
    let rows = history(&ctl, "db-0");
    assert_newest_first(&rows);
    let kinds: Vec<&str> = rows.iter().filter_map(|r| r["kind"].as_str()).collect();
    assert_eq!(kinds, ["removed", "added"], "{rows:#?}");
    assert_eq!(rows[0]["changes"]["provider"]["from"], "aws");
    assert_eq!(host_events(&ctl, "host.removed", "db-0"), 1);
    assert_eq!(ctl.events("host.removed").len(), 1);

    // The text history shows the change compactly.
    let out = ctl.cli(&["hosts", "history", "web-1"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("provider_labels.role: web → api"),
        "{stdout}"
    );
    assert!(stdout.contains("added"), "{stdout}");
    // Paged: the newest change, then the rest from its id.
    let all = history(&ctl, "web-1");
    assert!(all.len() >= 2, "{all:#?}");
    let newest = ctl.cli_json(&["hosts", "history", "web-1", "--limit", "1", "--json"]);
    assert_eq!(newest.as_array().map(Vec::len), Some(1));
    assert_eq!(newest[0], all[0]);
    let id = all[0]["id"].to_string();
    let rest = ctl.cli_json(&["hosts", "history", "web-1", "--before", &id, "--json"]);
    assert_eq!(rest.as_array().map(|r| &r[..]), Some(&all[1..]));
    let out = ctl.cli(&["hosts", "history", "web-1", "--limit", "1"]);
    assert!(
        text(&out).1.contains(&format!("--before {id}")),
        "the way to the older page is shown: {}",
        text(&out).1
    );

    let aws = provider(&ctl, "aws");
    assert_eq!(aws["status"], "ok", "{aws:#}");
    assert_eq!(aws["host_count"], 2, "{aws:#}");
    assert_eq!(aws["error"], Value::Null, "{aws:#}");
    assert!(aws["last_ok_at"].is_i64(), "{aws:#}");
    assert!(ctl.events("provider.failed").is_empty());
}

// ---------------------------------------------------------------------------------
// An exec provider's outage

/// Instantiates a scenario for both stores.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Db::Sqlite) })*
        }
        mod postgres {
            $(#[test] fn $name() { super::$name(super::Db::Postgres(super::common::fresh_pg_db())) })*
        }
    };
}

both_stores!(provider_outage_keeps_the_inventory_and_marks_it_stale);

/// Replaces `path` atomically (a concurrent `cat` sees the old or the new file).
fn write_atomic(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

const VMS: &str = r#"[
  {"id": "vm-1", "name": "app-1", "ip": "10.0.0.11", "dc": "dc1", "tags": {"role": "app"}},
  {"id": "vm-2", "name": "app-2", "ip": "10.0.0.12", "dc": "dc1", "tags": {"role": "app"}},
  {"id": "vm-3", "name": "db-1", "ip": "10.0.0.21", "dc": "dc2", "tags": {"role": "db"}}
]"#;

fn provider_outage_keeps_the_inventory_and_marks_it_stale(db: Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), db);
    let file = dir.path().join("hosts.json");
    write_atomic(&file, VMS);
    let model = format!(
        "kind: provider\n\
         name: vms\n\
         type: exec\n\
         interval: 1s\n\
         command: [cat, {}]\n\
         map: {{address: ip, region: dc, labels_from: tags}}\n",
        file.display()
    );
    apply(&ctl, dir.path(), &model, "vms inventory");
    wait_until(FOLLOW, "3 hosts from exec", || hosts(&ctl).len() == 3);
    let app1 = host(&ctl, "app-1").expect("app-1");
    assert_eq!(app1["address"], "10.0.0.11");
    assert_eq!(app1["region"], "dc1");
    assert_eq!(app1["labels"]["role"], "app");
    assert_eq!(app1["provider"], "vms");
    assert_eq!(app1["provider_id"], "vm-1");
    assert_eq!(provider(&ctl, "vms")["status"], "ok");

    // The command fails: the hosts stay, marked stale; one provider.failed event.
    std::fs::remove_file(&file).expect("remove hosts.json");
    wait_until(FOLLOW, "provider stale", || {
        provider(&ctl, "vms")["status"] == "stale"
    });
    let vms = provider(&ctl, "vms");
    let error = vms["error"].as_str().expect("error").to_string();
    assert!(error.contains("No such file or directory"), "{vms:#}");
    assert!(error.contains("cat"), "{vms:#}");
    assert_eq!(vms["host_count"], 3, "the last good count stays: {vms:#}");
    let listed = hosts(&ctl);
    assert_eq!(names(&listed), ["app-1", "app-2", "db-1"], "{listed:#?}");
    assert!(listed.iter().all(|h| h["stale"] == true), "{listed:#?}");
    assert_eq!(
        host(&ctl, "db-1").expect("db-1")["address"],
        "10.0.0.21",
        "the last good fields stay"
    );
    // Several more intervals fail the same way: still one event, nothing removed.
    let first_failure = vms["last_attempt_at"].as_i64().expect("attempt time");
    wait_until(FOLLOW, "3 more failed syncs", || {
        provider(&ctl, "vms")["last_attempt_at"]
            .as_i64()
            .is_some_and(|t| t >= first_failure + 3000)
    });
    assert_eq!(provider(&ctl, "vms")["status"], "stale");
    let failed = ctl.events("provider.failed");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["payload"]["provider"], "vms");
    assert_eq!(failed[0]["payload"]["error"], error.as_str());
    assert!(ctl.events("host.removed").is_empty());
    assert_eq!(hosts(&ctl).len(), 3);

    // The CLI shows it: stale marks on hosts and provider, the error.
    let out = ctl.cli(&["hosts", "list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("missing (stale)"), "{stdout}");
    assert!(
        stdout.contains("3 hosts: 0 up, 0 down, 3 missing (3 stale)"),
        "{stdout}"
    );
    let out = ctl.cli(&["providers", "list"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("stale"), "{stdout}");
    assert!(stdout.contains("No such file"), "{stdout}");

    // Fixed (and app-2 gone meanwhile): recovered, stale cleared, the list follows.
    let fixed: Value = serde_json::from_str(VMS).expect("json");
    let fixed: Vec<&Value> = fixed
        .as_array()
        .expect("array")
        .iter()
        .filter(|v| v["name"] != "app-2")
        .collect();
    write_atomic(&file, &serde_json::to_string(&fixed).expect("json"));
    wait_until(FOLLOW, "provider recovered", || {
        provider(&ctl, "vms")["status"] == "ok"
    });
    let recovered = ctl.events("provider.recovered");
    assert_eq!(recovered.len(), 1, "{recovered:#?}");
    assert_eq!(recovered[0]["payload"]["provider"], "vms");
    let vms = provider(&ctl, "vms");
    assert_eq!(vms["error"], Value::Null, "{vms:#}");
    assert_eq!(vms["host_count"], 2, "{vms:#}");
    let listed = hosts(&ctl);
    assert_eq!(names(&listed), ["app-1", "db-1"], "{listed:#?}");
    assert!(listed.iter().all(|h| h["stale"] == false), "{listed:#?}");
    assert_eq!(host_events(&ctl, "host.removed", "app-2"), 1);
    assert_eq!(ctl.events("provider.failed").len(), 1);
}

// ---------------------------------------------------------------------------------
// A static provider's host and an agent of the same name

#[test]
fn an_agent_merges_into_its_provider_host_and_drain_toggles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let model = "kind: provider\n\
                 name: rack\n\
                 type: static\n\
                 interval: 1s\n\
                 hosts:\n\
                 \x20 - {name: web-9, address: 10.1.2.3, region: dc1, labels: {rack: r1}}\n";
    apply(&ctl, dir.path(), model, "rack inventory");
    wait_until(FOLLOW, "web-9 listed", || host(&ctl, "web-9").is_some());
    let before = host(&ctl, "web-9").expect("web-9");
    assert_eq!(before["status"], "missing", "{before:#}");

    // The agent enrolls under that name: the same row becomes up.
    let _agent = ctl.agent(dir.path(), "web-9", &["role=web"]);
    ctl.wait_hosts_up(&["web-9"]);
    let merged = ctl.cli_json(&["hosts", "show", "web-9", "--json"]);
    assert_eq!(merged["id"], before["id"], "one host, not two: {merged:#}");
    assert_eq!(merged["status"], "up");
    assert_eq!(merged["provider"], "rack");
    assert_eq!(merged["provider_id"], "web-9");
    assert_eq!(merged["address"], "10.1.2.3");
    assert_eq!(merged["region"], "dc1");
    assert_eq!(merged["labels"], json!({"rack": "r1", "role": "web"}));
    assert_eq!(merged["instances"], json!([]));
    assert!(
        !merged["facts"]["hostname"]
            .as_str()
            .unwrap_or("")
            .is_empty()
    );
    // Later syncs keep it merged: still one host, still up.
    let synced = ctl.cli_json(&["providers", "list", "--json"])[0]["last_ok_at"]
        .as_i64()
        .expect("synced");
    wait_until(FOLLOW, "two more syncs", || {
        provider(&ctl, "rack")["last_ok_at"]
            .as_i64()
            .is_some_and(|t| t >= synced + 2000)
    });
    let listed = hosts(&ctl);
    assert_eq!(names(&listed), ["web-9"], "{listed:#?}");
    assert_eq!(listed[0]["status"], "up");
    let rows = history(&ctl, "web-9");
    assert_newest_first(&rows);
    let enrolled = rows
        .iter()
        .find(|r| r["changes"]["status"]["to"] == "up")
        .unwrap_or_else(|| panic!("no status change to up: {rows:#?}"));
    assert_eq!(enrolled["changes"]["status"]["from"], "missing");
    assert_eq!(enrolled["actor"], "agent:web-9");
    assert_eq!(rows.last().expect("rows")["kind"], "added");

    // A viewer may look but not drain.
    let viewer = ctl.cli_json(&["tokens", "create", "dash", "--role", "viewer", "--json"]);
    let viewer = viewer["secret"].as_str().expect("secret");
    let out = ctl.cli_as(viewer, &["hosts", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = ctl.cli_as(viewer, &["hosts", "drain", "web-9"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("403"), "{stderr}");
    assert!(stderr.contains("operator"), "{stderr}");
    assert_eq!(host(&ctl, "web-9").expect("web-9")["drained"], false);
    assert_eq!(ctl.events("host.drained").len(), 0);

    // Drain and undrain.
    let out = ctl.cli(&["hosts", "drain", "web-9"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("web-9 drained: its instances leave every load-balancer pool"),
        "{stdout}"
    );
    assert_eq!(host(&ctl, "web-9").expect("web-9")["drained"], true);
    let out = ctl.cli(&["hosts", "list"]);
    assert!(text(&out).0.contains("up (drained)"), "{}", text(&out).0);
    let out = ctl.cli(&["hosts", "drain", "web-9"]);
    assert!(out.status.success());
    assert!(text(&out).0.contains("already drained"), "{}", text(&out).0);
    assert_eq!(host_events(&ctl, "host.drained", "web-9"), 1, "once");
    let out = ctl.cli(&["hosts", "undrain", "web-9"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("web-9 undrained"), "{stdout}");
    assert_eq!(host(&ctl, "web-9").expect("web-9")["drained"], false);
    assert_eq!(host_events(&ctl, "host.undrained", "web-9"), 1);
    let rows = history(&ctl, "web-9");
    assert_newest_first(&rows);
    assert_eq!(rows[0]["kind"], "undrained", "{rows:#?}");
    assert_eq!(
        rows[0]["changes"]["drained"],
        json!({"from": true, "to": false})
    );
    assert_eq!(rows[0]["actor"], "admin");
    assert_eq!(rows[1]["kind"], "drained", "{rows:#?}");
    assert_eq!(
        rows[1]["changes"]["drained"],
        json!({"from": false, "to": true})
    );
    assert_eq!(rows[1]["actor"], "admin");
}

// ---------------------------------------------------------------------------------
// Bad input

#[test]
fn unknown_names_and_bad_selectors_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);

    for args in [
        &["hosts", "history", "nosuchhost"][..],
        &["hosts", "show", "nosuchhost"],
        &["hosts", "drain", "nosuchhost"],
    ] {
        let out = ctl.cli(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stdout}\n{stderr}");
        assert!(
            stderr.contains("no host named `nosuchhost`") && stderr.contains("404"),
            "{args:?}: {stderr}"
        );
    }
    let out = ctl.cli(&["providers", "sync", "nosuch"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("no provider `nosuch`") && stderr.contains("404"),
        "{stderr}"
    );

    // Bad arguments exit 2, before any request.
    for args in [
        &["hosts", "list", "--on", "label.=x"][..],
        &["hosts", "--on", "label.=x"],
        &["hosts", "--json", "list"],
        &["hosts", "history", "web-1", "--limit", "0"],
        &["hosts", "nosuchverb"],
        &["providers", "sync"],
    ] {
        let out = ctl.cli(args);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stdout}\n{stderr}");
    }
    let out = ctl.cli(&["hosts", "list", "--on", "label.=x"]);
    assert!(text(&out).1.contains("--on `label.=x`"), "{}", text(&out).1);

    // Nothing changed: no hosts, no inventory events; the listing still works.
    let out = ctl.cli(&["hosts"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("0 hosts: 0 up, 0 down, 0 missing"),
        "{stdout}"
    );
    assert_eq!(ctl.cli_json(&["providers", "list", "--json"]), json!([]));
    assert!(ctl.events("host.*").is_empty());
}
