//! Inventory provider clients against real programs and services.
//!
//! - `ec2` runs against `moto_server`, a local EC2 emulator (PyPI `moto[server]`), with
//!   instances made by boto3. moto checks the SigV4 signature once its auth is switched
//!   on, so these tests also prove the signing. A missing `moto_server` fails the test.
//! - `openstack`: no OpenStack can run on this machine, so an axum server in the test
//!   replays answers shaped as in the OpenStack API reference (Keystone v3 tokens, Nova
//!   `servers/detail`) and records what it was sent.
//! - `exec` runs real commands (`python3`, `sh`).
//!
//! Credentials are read from environment variables named in the provider config; each
//! test uses its own variable names.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_core::model::{FieldMap, Provider, ProviderKind, Source};
use drover_proto::inventory::DiscoveredHost;
use drover_server::inventory::providers::{self, ProviderError, ec2};
use serde_json::{Value, json};

fn provider(name: &str, kind: ProviderKind) -> Provider {
    Provider {
        name: name.into(),
        interval: Duration::from_secs(60),
        kind,
        source: Source {
            file: "providers.yaml".into(),
            line: 1,
            column: 1,
        },
    }
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// Sets a variable only this test reads.
fn set_env(name: &str, value: &str) {
    // SAFETY: every test uses its own variable names, and nextest runs each test in
    // its own process; no other thread reads these variables.
    unsafe { std::env::set_var(name, value) };
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn by_name(hosts: &[DiscoveredHost]) -> BTreeMap<String, DiscoveredHost> {
    hosts.iter().map(|h| (h.name.clone(), h.clone())).collect()
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
        let _ = std::fs::remove_file(&self.log);
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
                 the ec2 provider tests need it: pip install 'moto[server]'"
            )
        })
}

async fn start_moto() -> Moto {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("drover-moto-{port}.log"));
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
    let http = http();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto_server exited ({status}): {}",
                std::fs::read_to_string(&moto.log).unwrap_or_default()
            );
        }
        if http
            .get(format!("{}/moto-api/", moto.url))
            .send()
            .await
            .is_ok()
        {
            return moto;
        }
        assert!(
            Instant::now() < deadline,
            "moto_server did not answer on {} within 60 s: {}",
            moto.url,
            std::fs::read_to_string(&moto.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// boto3 against moto. `setup` (before auth is on): an IAM user allowed `ec2:*`, its
/// access key, and seven instances (web-0..4 with role=web, db-0..1 with role=db), one
/// reservation each. `page5`: the first page of DescribeInstances with MaxResults=5.
/// `mutate`: re-tag one instance and terminate another.
const BOTO: &str = r#"
import json, sys, boto3
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
    for name, role in [(f"web-{i}", "web") for i in range(5)] + [(f"db-{i}", "db") for i in range(2)]:
        r = ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1,
            InstanceType="t3.micro",
            TagSpecifications=[{"ResourceType": "instance",
                "Tags": [{"Key": "Name", "Value": name}, {"Key": "role", "Value": role}]}])
        ids[name] = r["Instances"][0]["InstanceId"]
    print(json.dumps({"key": access["AccessKeyId"], "secret": access["SecretAccessKey"], "ids": ids}))
elif op == "page5":
    page = ec2.describe_instances(MaxResults=5)
    n = sum(len(r["Instances"]) for r in page["Reservations"])
    print(json.dumps({"count": n, "next": "NextToken" in page}))
elif op == "mutate":
    retag, terminate = sys.argv[5:7]
    ec2.create_tags(Resources=[retag], Tags=[{"Key": "Name", "Value": "api-0"}, {"Key": "role", "Value": "api"}])
    ec2.terminate_instances(InstanceIds=[terminate])
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

fn ec2_provider(
    endpoint: &str,
    key_env: &str,
    secret_env: &str,
    filters: &[(&str, &str)],
) -> Provider {
    provider(
        "aws",
        ProviderKind::Ec2 {
            region: "us-east-1".into(),
            endpoint: Some(endpoint.into()),
            filters: filters
                .iter()
                .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
                .collect(),
            access_key_env: key_env.into(),
            secret_key_env: secret_env.into(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_lists_pages_filters_and_follows_changes_in_moto() {
    let moto = start_moto().await;
    let setup = boto(&moto, "setup", "testing", "testing", &[]);
    let key = setup["key"].as_str().expect("access key");
    let secret = setup["secret"].as_str().expect("secret key");
    let ids: BTreeMap<String, String> =
        serde_json::from_value(setup["ids"].clone()).expect("instance ids");
    // From now on moto checks every request's SigV4 signature against the IAM key.
    let reset = http()
        .post(format!("{}/moto-api/reset-auth", moto.url))
        .body("0")
        .send()
        .await
        .expect("reset-auth");
    assert!(
        reset.status().is_success(),
        "reset-auth: {}",
        reset.status()
    );
    set_env("DROVER_T_EC2_KEY", key);
    set_env("DROVER_T_EC2_SECRET", secret);
    let http = http();
    let endpoint = format!("{}/", moto.url);
    let all = ec2_provider(&endpoint, "DROVER_T_EC2_KEY", "DROVER_T_EC2_SECRET", &[]);

    // Everything, in one page.
    let hosts = providers::fetch(&all, &http).await.expect("fetch all");
    let found = by_name(&hosts);
    assert_eq!(
        found.keys().collect::<Vec<_>>(),
        ["db-0", "db-1", "web-0", "web-1", "web-2", "web-3", "web-4"]
    );
    for (name, host) in &found {
        assert_eq!(&host.id, &ids[name]);
        let role = if name.starts_with("web") { "web" } else { "db" };
        assert_eq!(host.labels.get("role").map(String::as_str), Some(role));
        assert_eq!(host.labels.get("Name"), Some(name));
        let address = host.address.as_deref().expect("private address");
        assert!(address.parse::<std::net::Ipv4Addr>().is_ok(), "{address}");
        assert!(
            host.region
                .as_deref()
                .unwrap_or("")
                .starts_with("us-east-1")
        );
        assert_eq!(host.attributes["instance_type"], "t3.micro");
        assert_eq!(host.attributes["image_id"], "ami-12c6146b");
        assert_eq!(host.attributes["state"], "running");
        assert!(host.attributes.contains_key("private_dns"));
    }

    // moto really pages at 5 (first page 5 instances and a NextToken)…
    let page = boto(&moto, "page5", key, secret, &[]);
    assert_eq!(page, json!({"count": 5, "next": true}));
    // …and following NextToken gives all seven.
    let paged = ec2::fetch_with_page_size(&all, &http, 5)
        .await
        .expect("paged fetch");
    assert_eq!(by_name(&paged), found);

    // A filter restricts the list.
    let dbs = ec2_provider(
        &endpoint,
        "DROVER_T_EC2_KEY",
        "DROVER_T_EC2_SECRET",
        &[("tag:role", "db")],
    );
    let hosts = ec2::fetch_with_page_size(&dbs, &http, 5)
        .await
        .expect("filtered");
    assert_eq!(by_name(&hosts).keys().collect::<Vec<_>>(), ["db-0", "db-1"]);

    // Re-tag web-0, terminate db-1: the list follows.
    boto(&moto, "mutate", key, secret, &[&ids["web-0"], &ids["db-1"]]);
    let hosts = providers::fetch(&all, &http).await.expect("after changes");
    let now = by_name(&hosts);
    assert_eq!(
        now.keys().collect::<Vec<_>>(),
        ["api-0", "db-0", "web-1", "web-2", "web-3", "web-4"]
    );
    assert_eq!(now["api-0"].id, ids["web-0"]);
    assert_eq!(now["api-0"].labels["role"], "api");
    let hosts = providers::fetch(&dbs, &http).await.expect("filtered after");
    assert_eq!(by_name(&hosts).keys().collect::<Vec<_>>(), ["db-0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec2_errors_name_endpoint_status_and_remote_code() {
    let moto = start_moto().await;
    let setup = boto(&moto, "setup", "testing", "testing", &[]);
    let key = setup["key"].as_str().expect("access key");
    http()
        .post(format!("{}/moto-api/reset-auth", moto.url))
        .body("0")
        .send()
        .await
        .expect("reset-auth");
    let http = http();
    let endpoint = format!("{}/", moto.url);

    // A wrong secret: moto recomputes the signature and refuses it.
    set_env("DROVER_T_EC2E_KEY", key);
    set_env("DROVER_T_EC2E_BAD_SECRET", "not-the-secret");
    let bad = ec2_provider(
        &endpoint,
        "DROVER_T_EC2E_KEY",
        "DROVER_T_EC2E_BAD_SECRET",
        &[],
    );
    let error = providers::fetch(&bad, &http).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "ec2: POST {endpoint} answered HTTP 401 Unauthorized: AuthFailure: \
             AWS was not able to validate the provided access credentials"
        )
    );

    // An invalid filter name: moto fails with an HTML 500 page.
    set_env(
        "DROVER_T_EC2E_SECRET",
        setup["secret"].as_str().expect("secret"),
    );
    let bogus = ec2_provider(
        &endpoint,
        "DROVER_T_EC2E_KEY",
        "DROVER_T_EC2E_SECRET",
        &[("no-such-filter", "x")],
    );
    let error = providers::fetch(&bogus, &http)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!(
            "ec2: POST {endpoint} answered HTTP 500 Internal Server Error: "
        )),
        "{error}"
    );
    assert!(!error.contains('<') && !error.contains('\n'), "{error}");

    // Nothing listens there.
    let closed = format!("http://127.0.0.1:{}/", free_port());
    let nowhere = ec2_provider(&closed, "DROVER_T_EC2E_KEY", "DROVER_T_EC2E_SECRET", &[]);
    let error = providers::fetch(&nowhere, &http)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(&format!("ec2: POST {closed} failed: ")),
        "{error}"
    );
    assert!(error.contains("Connection refused"), "{error}");

    // A credential variable that is not set.
    let unset = ec2_provider(
        &endpoint,
        "DROVER_T_EC2E_UNSET",
        "DROVER_T_EC2E_SECRET",
        &[],
    );
    let error = providers::fetch(&unset, &http).await.unwrap_err();
    assert!(matches!(error, ProviderError::MissingEnv { .. }));
    assert_eq!(
        error.to_string(),
        "ec2: environment variable DROVER_T_EC2E_UNSET (named by access_key_env) is not set"
    );
}

// ---------------------------------------------------------------------------------
// openstack against a replay server

/// What the replay server was sent.
#[derive(Default)]
struct Seen {
    auth_bodies: Vec<Value>,
    nova: Vec<(Option<String>, String)>,
}

#[derive(Clone)]
struct Replay {
    base: String,
    seen: Arc<Mutex<Seen>>,
}

const TOKEN: &str = "gAAAAABWfX8Q1bR4vWqHPu7t2Zn3example";
const SERVER_1: &str = "9168b536-cd40-4630-b43f-b259807c6e87";
const SERVER_2: &str = "0e3b4d4a-7b66-4a2c-9a2d-56e9b1c2f7a1";
const SERVER_3: &str = "5a8b5c5e-3c1f-4f49-8d3f-2b4c0f1d9e62";

/// Keystone v3 `POST /v3/auth/tokens` (API reference: "Password authentication with
/// scoped authorization").
async fn keystone_tokens(
    axum::extract::State(replay): axum::extract::State<Replay>,
    axum::Json(body): axum::Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let password = body["auth"]["identity"]["password"]["user"]["password"].clone();
    replay.seen.lock().expect("lock").auth_bodies.push(body);
    if password != json!("s3cret") {
        let error = json!({"error": {"code": 401,
            "message": "The request you have made requires authentication.",
            "title": "Unauthorized"}});
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            [(
                "WWW-Authenticate",
                format!("Keystone uri=\"{}/v3\"", replay.base),
            )],
            axum::Json(error),
        )
            .into_response();
    }
    let base = &replay.base;
    let token = json!({"token": {
        "methods": ["password"],
        "user": {"domain": {"id": "d-users", "name": "users"}, "id": "ee4dfb6e5540447cb3741905149d9b6e",
                 "name": "drover", "password_expires_at": null},
        "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
        "expires_at": "2030-11-07T02:58:43.578887Z",
        "issued_at": "2030-11-07T01:58:43.578929Z",
        "project": {"domain": {"id": "d-projects", "name": "projects"},
                    "id": "a6944d763bf64ee6a275f1263fae0352", "name": "fleet"},
        "is_domain": false,
        "roles": [{"id": "51cc68287d524c759f47c811e6463340", "name": "reader"}],
        "catalog": [
            {"endpoints": [
                {"id": "068d1b359ee84b438266cb736d81de97", "interface": "public",
                 "region": "RegionOne", "region_id": "RegionOne", "url": format!("{base}/v3")}],
             "type": "identity", "id": "050726f278654128aba89757ae25910c", "name": "keystone"},
            {"endpoints": [
                // Wrong region and wrong interface come first: they lead nowhere.
                {"id": "1", "interface": "public", "region": "RegionTwo", "region_id": "RegionTwo",
                 "url": "http://127.0.0.1:9/compute/v2.1"},
                {"id": "2", "interface": "internal", "region": "RegionOne", "region_id": "RegionOne",
                 "url": "http://127.0.0.1:9/compute/v2.1"},
                {"id": "3", "interface": "public", "region": "RegionOne", "region_id": "RegionOne",
                 "url": format!("{base}/compute/v2.1")}],
             "type": "compute", "id": "1e5d1a1c9ba84a3ea8c0cd8ef0cd09c0", "name": "nova"}
        ]
    }});
    (
        axum::http::StatusCode::CREATED,
        [("X-Subject-Token", TOKEN)],
        axum::Json(token),
    )
        .into_response()
}

/// A Nova server as in the `GET /servers/detail` example of the Compute API reference.
fn nova_server(id: &str, name: &str, status: &str, addr: &str, base: &str) -> Value {
    json!({
        "OS-DCF:diskConfig": "AUTO",
        "OS-EXT-AZ:availability_zone": "az-1",
        "OS-EXT-STS:power_state": 1,
        "OS-EXT-STS:task_state": null,
        "OS-EXT-STS:vm_state": "active",
        "OS-SRV-USG:launched_at": "2030-09-03T04:01:32.000000",
        "OS-SRV-USG:terminated_at": null,
        "accessIPv4": "",
        "accessIPv6": "",
        "addresses": {"private": [
            {"OS-EXT-IPS-MAC:mac_addr": "aa:bb:cc:dd:ee:ff", "OS-EXT-IPS:type": "floating",
             "addr": "172.24.4.10", "version": 4},
            {"OS-EXT-IPS-MAC:mac_addr": "aa:bb:cc:dd:ee:ff", "OS-EXT-IPS:type": "fixed",
             "addr": "fd00::10", "version": 6},
            {"OS-EXT-IPS-MAC:mac_addr": "aa:bb:cc:dd:ee:ff", "OS-EXT-IPS:type": "fixed",
             "addr": addr, "version": 4}
        ]},
        "config_drive": "",
        "created": "2030-09-03T04:01:32Z",
        "flavor": {"id": "1", "links": [{"href": format!("{base}/flavors/1"), "rel": "bookmark"}]},
        "hostId": "92154fab69d5883ba2c8622b7e65f745dd33257221c07af363c51b29",
        "id": id,
        "image": {"id": "70a599e0-31e7-49b7-b260-868f441e862b",
                  "links": [{"href": format!("{base}/images/70a599e0"), "rel": "bookmark"}]},
        "key_name": null,
        "links": [{"href": format!("{base}/compute/v2.1/servers/{id}"), "rel": "self"}],
        "metadata": {"role": "web", "owner": "team-a"},
        "name": name,
        "os-extended-volumes:volumes_attached": [],
        "progress": 0,
        "security_groups": [{"name": "default"}],
        "status": status,
        "tenant_id": "a6944d763bf64ee6a275f1263fae0352",
        "updated": "2030-09-03T04:01:33Z",
        "user_id": "ee4dfb6e5540447cb3741905149d9b6e"
    })
}

/// Nova `GET /compute/v2.1/servers/detail`: two pages linked by `servers_links`.
async fn nova_servers(
    axum::extract::State(replay): axum::extract::State<Replay>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = headers
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let query = query.unwrap_or_default();
    replay
        .seen
        .lock()
        .expect("lock")
        .nova
        .push((token.clone(), query.clone()));
    if token.as_deref() != Some(TOKEN) {
        return (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": 401, "title": "Unauthorized",
                "message": "The request you have made requires authentication."}})),
        )
            .into_response();
    }
    let base = &replay.base;
    if query.contains("marker=") {
        return axum::Json(json!({"servers": [
            nova_server(SERVER_3, "web-3", "SHUTOFF", "192.168.0.30", base)
        ]}))
        .into_response();
    }
    axum::Json(json!({
        "servers": [
            nova_server(SERVER_1, "web-1", "ACTIVE", "192.168.0.10", base),
            nova_server("b9e1c1f0-0000-4000-8000-00000000dead", "gone", "DELETED", "192.168.0.99", base),
            nova_server(SERVER_2, "web-2", "ACTIVE", "192.168.0.20", base),
        ],
        "servers_links": [{
            "href": format!("{base}/compute/v2.1/servers/detail?limit=500&marker={SERVER_2}"),
            "rel": "next"
        }]
    }))
    .into_response()
}

async fn start_replay() -> Replay {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind replay server");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let replay = Replay {
        base: format!("http://{addr}"),
        seen: Default::default(),
    };
    let app = axum::Router::new()
        .route("/v3/auth/tokens", axum::routing::post(keystone_tokens))
        .route(
            "/compute/v2.1/servers/detail",
            axum::routing::get(nova_servers),
        )
        .with_state(replay.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    replay
}

fn openstack_provider(replay: &Replay, password_env: &str) -> Provider {
    provider(
        "cloud",
        ProviderKind::Openstack {
            auth_url: format!("{}/v3/", replay.base),
            username: "drover".into(),
            password_env: password_env.into(),
            user_domain: "users".into(),
            project: "fleet".into(),
            project_domain: "projects".into(),
            region: Some("RegionOne".into()),
            interface: "public".into(),
        },
    )
}

#[tokio::test]
async fn openstack_authenticates_and_follows_server_pages() {
    let replay = start_replay().await;
    set_env("DROVER_T_OS_PASSWORD", "s3cret");
    let hosts = providers::fetch(
        &openstack_provider(&replay, "DROVER_T_OS_PASSWORD"),
        &http(),
    )
    .await
    .expect("fetch");

    let seen = replay.seen.lock().expect("lock");
    assert_eq!(seen.auth_bodies.len(), 1);
    assert_eq!(
        seen.auth_bodies[0],
        json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "drover", "domain": {"name": "users"}, "password": "s3cret"}}},
            "scope": {"project": {"name": "fleet", "domain": {"name": "projects"}}}
        }})
    );
    assert_eq!(
        seen.nova,
        [
            (Some(TOKEN.to_string()), "limit=500".to_string()),
            (
                Some(TOKEN.to_string()),
                format!("limit=500&marker={SERVER_2}")
            ),
        ]
    );

    let ids: Vec<&str> = hosts.iter().map(|h| h.id.as_str()).collect();
    assert_eq!(ids, [SERVER_1, SERVER_2, SERVER_3]);
    let web1 = &hosts[0];
    assert_eq!(web1.name, "web-1");
    assert_eq!(web1.address.as_deref(), Some("192.168.0.10"));
    assert_eq!(web1.region.as_deref(), Some("az-1"));
    assert_eq!(web1.labels["role"], "web");
    assert_eq!(web1.labels["owner"], "team-a");
    assert_eq!(web1.attributes["status"], "ACTIVE");
    assert_eq!(web1.attributes["flavor"], "1");
    assert_eq!(
        web1.attributes["image"],
        "70a599e0-31e7-49b7-b260-868f441e862b"
    );
    assert_eq!(hosts[2].name, "web-3");
    assert_eq!(hosts[2].attributes["status"], "SHUTOFF");
    assert_eq!(hosts[2].address.as_deref(), Some("192.168.0.30"));
}

#[tokio::test]
async fn openstack_keystone_401_is_a_precise_error() {
    let replay = start_replay().await;
    set_env("DROVER_T_OS_BAD_PASSWORD", "wrong");
    let error = providers::fetch(
        &openstack_provider(&replay, "DROVER_T_OS_BAD_PASSWORD"),
        &http(),
    )
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "openstack: POST {}/v3/auth/tokens answered HTTP 401 Unauthorized: Unauthorized: \
             The request you have made requires authentication.",
            replay.base
        )
    );
    assert!(!error.to_string().contains("wrong"), "the password leaked");
    assert!(replay.seen.lock().expect("lock").nova.is_empty());
}

// ---------------------------------------------------------------------------------
// exec

fn exec_provider(command: &[&str], map: FieldMap) -> Provider {
    provider(
        "script",
        ProviderKind::Exec {
            command: command.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_secs(20),
            map,
        },
    )
}

fn plain_map() -> FieldMap {
    FieldMap {
        list: String::new(),
        id: "id".into(),
        name: "name".into(),
        address: None,
        region: None,
        labels: BTreeMap::new(),
        labels_from: None,
    }
}

const INVENTORY_PY: &str = r#"
import json
print(json.dumps({"result": {"servers": [
    {"uuid": "u-1", "meta": {"hostname": "web-1"}, "flavor": "m1.small", "vcpus": 2,
     "locked": False, "addresses": {"private": [{"addr": "10.0.0.5"}, {"addr": "10.0.0.6"}]},
     "location": {"zone": "dc1-a"}, "owner": {"team": "core"},
     "tags": {"role": "web", "tier": 1, "nested": {"x": 1}}},
    {"uuid": 42, "meta": {"hostname": "db-1"}, "addresses": {"private": []},
     "tags": {"role": "db"}}
]}}))
"#;

fn nested_map() -> FieldMap {
    FieldMap {
        list: "result.servers".into(),
        id: "uuid".into(),
        name: "meta.hostname".into(),
        address: Some("addresses.private.0.addr".into()),
        region: Some("location.zone".into()),
        labels: [("team".to_string(), "owner.team".to_string())].into(),
        labels_from: Some("tags".into()),
    }
}

#[tokio::test]
async fn exec_maps_nested_paths_labels_and_attributes() {
    let hosts = providers::fetch(
        &exec_provider(&["python3", "-c", INVENTORY_PY], nested_map()),
        &http(),
    )
    .await
    .expect("fetch");
    assert_eq!(hosts.len(), 2);
    let web = &hosts[0];
    assert_eq!((web.id.as_str(), web.name.as_str()), ("u-1", "web-1"));
    assert_eq!(web.address.as_deref(), Some("10.0.0.5"));
    assert_eq!(web.region.as_deref(), Some("dc1-a"));
    let labels: BTreeMap<String, String> = [("role", "web"), ("tier", "1"), ("team", "core")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(web.labels, labels);
    let attributes: BTreeMap<String, String> = [("flavor", "m1.small"), ("vcpus", "2")]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
    assert_eq!(web.attributes, attributes);
    let db = &hosts[1];
    assert_eq!((db.id.as_str(), db.name.as_str()), ("42", "db-1"));
    assert_eq!((db.address.as_deref(), db.region.as_deref()), (None, None));
    assert_eq!(db.labels["role"], "db");
}

#[tokio::test]
async fn exec_record_without_id_names_index_and_path() {
    let script = r#"echo '[{"id": "a", "name": "one"}, {"name": "two"}]'"#;
    let error = providers::fetch(&exec_provider(&["sh", "-c", script], plain_map()), &http())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("exec: record 1 in the output of `sh -c {script:?}` has no id at path `id`")
    );
    let mut map = nested_map();
    map.name = "meta.fqdn".into();
    let error = providers::fetch(
        &exec_provider(&["python3", "-c", INVENTORY_PY], map),
        &http(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.ends_with("has no name at path `meta.fqdn`"),
        "{error}"
    );
    assert!(error.starts_with("exec: record 0 "), "{error}");
}

#[tokio::test]
async fn exec_list_path_must_lead_to_an_array() {
    let mut map = plain_map();
    map.list = "data.items".into();
    let error = providers::fetch(
        &exec_provider(&["sh", "-c", r#"echo '{"data": {"items": {}}}'"#], map),
        &http(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.ends_with("has no array at list path `data.items` (found an object)"),
        "{error}"
    );
}

#[tokio::test]
async fn exec_output_that_is_not_json_is_an_error() {
    let error = providers::fetch(
        &exec_provider(&["sh", "-c", "echo hello world"], plain_map()),
        &http(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        "exec: output of `sh -c \"echo hello world\"` is not JSON: expected value at line 1 column 1"
    );
}

#[tokio::test]
async fn exec_failure_reports_exit_code_and_stderr_tail() {
    let script = "echo '[]'; for i in 1 2 3 4 5 6 7; do echo \"line $i\" >&2; done; echo 'fatal: no credentials' >&2; exit 3";
    let error = providers::fetch(&exec_provider(&["sh", "-c", script], plain_map()), &http())
        .await
        .unwrap_err();
    assert!(matches!(error, ProviderError::Failed { .. }));
    assert!(
        error.to_string().ends_with(
            "exited with code 3; stderr: line 4 | line 5 | line 6 | line 7 | fatal: no credentials"
        ),
        "{error}"
    );
}

#[tokio::test]
async fn exec_timeout_kills_the_command() {
    let mut provider = exec_provider(&["sleep", "30"], plain_map());
    if let ProviderKind::Exec { timeout, .. } = &mut provider.kind {
        *timeout = Duration::from_millis(300);
    }
    let started = Instant::now();
    let error = providers::fetch(&provider, &http()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        error.to_string(),
        "exec: `sleep 30` did not finish within 300ms and was killed"
    );
}

#[tokio::test]
async fn exec_missing_program_is_an_error() {
    let error = providers::fetch(
        &exec_provider(&["/nonexistent/inventory"], plain_map()),
        &http(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        error.starts_with("exec: cannot run `/nonexistent/inventory`: No such file or directory"),
        "{error}"
    );
}

#[tokio::test]
async fn static_hosts_pass_through() {
    let provider = provider(
        "lab",
        ProviderKind::Static {
            hosts: vec![drover_core::model::StaticHost {
                name: "lab-1".into(),
                id: None,
                address: Some("10.9.0.1".into()),
                region: Some("basement".into()),
                labels: [("role".to_string(), "lab".to_string())].into(),
            }],
        },
    );
    let hosts = providers::fetch(&provider, &http()).await.expect("static");
    assert_eq!(
        hosts,
        [DiscoveredHost {
            id: "lab-1".into(),
            name: "lab-1".into(),
            address: Some("10.9.0.1".into()),
            region: Some("basement".into()),
            labels: [("role".to_string(), "lab".to_string())].into(),
            attributes: BTreeMap::new(),
        }]
    );
}
