//! Harness of the store suite: one test body, run against SQLite and PostgreSQL.
//!
//! SQLite gets a file in a fresh temporary directory. PostgreSQL gets a fresh database
//! `drover_test_<hex>` on the server named by `DROVER_TEST_PG` (an admin URL, default
//! `postgres://postgres@127.0.0.1:5432/postgres`), dropped again when the test ends, pass
//! or fail. An unreachable server fails the test; it is never skipped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use drover_proto::agent::{CommandOutcome, CommandResult, CommandSpec, Facts};
use drover_proto::auth::TokenKind;
use drover_proto::events::Event;
use drover_proto::executions::{Execution, TargetStatus};
use drover_proto::hosts::Host;
use drover_store::{
    DispatchedCommand, EventFilter, EventOrder, NewExecution, NewTarget, NewToken, Store,
};
use futures::FutureExt;
use sqlx::Executor;
use sqlx::postgres::PgPoolOptions;

/// Default admin URL of the test PostgreSQL server.
pub const DEFAULT_PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Which database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a test body gets: a connected store and the URL to open more handles on the
/// same database (a second controller).
#[derive(Clone)]
pub struct Ctx {
    pub store: Store,
    pub url: String,
    pub backend: Backend,
}

impl Ctx {
    /// Another handle on the same database, as a second controller would open it.
    pub async fn connect_again(&self) -> Store {
        Store::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("second connect to {} failed: {e}", self.url))
    }
}

/// What to clean up after a test.
enum Guard {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

fn admin_url() -> String {
    std::env::var("DROVER_TEST_PG").unwrap_or_else(|_| DEFAULT_PG_ADMIN.to_string())
}

/// `admin` with its database name replaced by `name`.
fn with_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.find('?') {
        Some(q) => (&admin[..q], &admin[q..]),
        None => (admin, ""),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

async fn admin_pool(admin: &str) -> sqlx::PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(admin)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is required for the postgres tests but {} is unreachable: {e} \
                 (set DROVER_TEST_PG to an admin URL of a server that accepts CREATE DATABASE)",
                drover_store::redact_url(admin)
            )
        })
}

async fn setup(backend: Backend) -> (Ctx, Guard) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let url = format!("sqlite://{}/drover.db", dir.path().display());
            let store = Store::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect {url}: {e}"));
            (
                Ctx {
                    store,
                    url,
                    backend,
                },
                Guard::Sqlite(dir),
            )
        }
        Backend::Postgres => {
            let admin = admin_url();
            let name = format!("drover_test_{}", uuid::Uuid::now_v7().simple());
            let pool = admin_pool(&admin).await;
            pool.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "CREATE DATABASE {name} on {} failed: {e}",
                        drover_store::redact_url(&admin)
                    )
                });
            pool.close().await;
            let url = with_database(&admin, &name);
            let store = Store::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("connect {}: {e}", drover_store::redact_url(&url)));
            (
                Ctx {
                    store,
                    url,
                    backend,
                },
                Guard::Postgres {
                    admin_url: admin,
                    name,
                },
            )
        }
    }
}

async fn teardown(guard: Guard) {
    match guard {
        Guard::Sqlite(dir) => drop(dir),
        Guard::Postgres { admin_url, name } => {
            // Best effort: a leftover database is harmless, and its name says what it is.
            if let Ok(pool) = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect(&admin_url)
                .await
            {
                let _ = pool
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
                pool.close().await;
            }
        }
    }
}

/// Runs one test body against a fresh database of `backend`, then removes the
/// database whether the body passed or panicked.
pub async fn run<F, Fut>(backend: Backend, body: F)
where
    F: FnOnce(Ctx) -> Fut,
    Fut: Future<Output = ()>,
{
    let (ctx, guard) = setup(backend).await;
    let outcome = AssertUnwindSafe(body(ctx)).catch_unwind().await;
    teardown(guard).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Now in Unix milliseconds (the store's unit).
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn facts(hostname: &str) -> Facts {
    Facts {
        hostname: hostname.to_string(),
        os: "linux".into(),
        os_release: Some("debian 12".into()),
        kernel: "6.1.0".into(),
        arch: "x86_64".into(),
        cpus: 4,
        memory_bytes: 8 << 30,
        addresses: vec!["10.0.0.1".into()],
        agent_version: "0.1.0".into(),
    }
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// An agent credential as the enrollment endpoint builds it (host id filled in by the
/// store).
pub fn credential(id: &str) -> NewToken {
    NewToken {
        id: id.to_string(),
        name: format!("agent {id}"),
        kind: TokenKind::Agent,
        role: None,
        host_id: None,
        secret_hash: format!("hash-of-{id}"),
        created_by: "join:test".into(),
    }
}

/// Enrolls `name` with id `host-<name>` and a fresh credential.
pub async fn enroll(store: &Store, name: &str) -> Host {
    let cred = format!("cred-{name}-{}", uuid::Uuid::now_v7().simple());
    store
        .enroll_host(
            &format!("host-{name}"),
            name,
            &labels(&[("role", "web")]),
            &facts(name),
            credential(&cred),
        )
        .await
        .expect("enroll")
        .host
}

/// Enrolls `n` hosts named `<prefix>0`, `<prefix>1`, ….
pub async fn enroll_many(store: &Store, prefix: &str, n: usize) -> Vec<Host> {
    let mut hosts = Vec::with_capacity(n);
    for i in 0..n {
        hosts.push(enroll(store, &format!("{prefix}{i}")).await);
    }
    hosts
}

pub fn exec_command() -> CommandSpec {
    CommandSpec::Exec {
        argv: vec!["uptime".into()],
        timeout_ms: None,
    }
}

/// A `run` execution over `hosts`, in that order.
pub fn new_execution(
    id: &str,
    hosts: &[Host],
    parallel: Option<u32>,
    timeout_ms: Option<u64>,
) -> NewExecution {
    NewExecution {
        id: id.to_string(),
        kind: "run".into(),
        actor: "token:alice".into(),
        selector: "all".into(),
        spec: serde_json::json!({ "command": ["uptime"], "parallel": parallel }),
        command: exec_command(),
        parallel,
        timeout_ms,
        targets: hosts
            .iter()
            .map(|h| NewTarget {
                host_id: h.id.clone(),
                host_name: h.name.clone(),
                command: None,
            })
            .collect(),
        parent: None,
    }
}

pub fn result(outcome: CommandOutcome) -> CommandResult {
    CommandResult {
        outcome,
        exit_code: match outcome {
            CommandOutcome::Ok => Some(0),
            CommandOutcome::Failed => Some(1),
            _ => None,
        },
        signal: None,
        duration_ms: 25,
        error: None,
        chunks: 0,
    }
}

pub fn ok() -> CommandResult {
    result(CommandOutcome::Ok)
}

/// The execution, which must exist.
pub async fn execution(store: &Store, id: &str) -> Execution {
    store
        .get_execution(id)
        .await
        .expect("get_execution")
        .unwrap_or_else(|| panic!("execution {id} not found"))
}

/// Targets of an execution that are dispatched or running.
pub async fn in_flight(store: &Store, id: &str) -> usize {
    execution(store, id)
        .await
        .targets
        .iter()
        .filter(|t| matches!(t.status, TargetStatus::Dispatched | TargetStatus::Running))
        .count()
}

/// Every event of a type (exact or `prefix.*`), oldest first.
pub async fn events_of(store: &Store, kind: &str) -> Vec<Event> {
    store
        .list_events(&EventFilter {
            kind: Some(kind.to_string()),
            order: EventOrder::Asc,
            limit: 10_000,
            ..EventFilter::default()
        })
        .await
        .expect("list_events")
}

/// The `execution.finished` events of one execution.
pub async fn finished_events(store: &Store, execution_id: &str) -> Vec<Event> {
    events_of(store, drover_proto::events::types::EXECUTION_FINISHED)
        .await
        .into_iter()
        .filter(|e| e.payload["execution_id"] == execution_id)
        .collect()
}

/// Command id dispatched to `host_id`.
pub fn command_for(dispatched: &[DispatchedCommand], host_id: &str) -> String {
    dispatched
        .iter()
        .find(|d| d.host_id == host_id)
        .unwrap_or_else(|| panic!("no command dispatched to {host_id} in {dispatched:?}"))
        .command_id
        .clone()
}

/// Polls `check` until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn database_name_replaces_the_admin_one() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/postgres?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database("postgres://u@h:5432", "x"),
        "postgres://u@h:5432/x"
    );
}
