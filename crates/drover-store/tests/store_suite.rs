//! The store suite: every test body is written once and runs against SQLite and
//! PostgreSQL (`sqlite::<name>` and `postgres::<name>`), because the embedded default
//! and the distributed mode must behave the same.
//!
//! PostgreSQL must be reachable (see `common`): its tests fail, never skip, without it.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Backend, Ctx, command_for, credential, enroll, enroll_many, events_of, eventually,
    exec_command, execution, facts, finished_events, in_flight, labels, new_execution, now_ms, ok,
    result,
};
use drover_proto::agent::{CommandOutcome, CommandResult, OutputChunk, OutputStream};
use drover_proto::auth::{Role, TokenKind};
use drover_proto::deploy::{Health, InstanceReport, LifecycleState};
use drover_proto::events::types;
use drover_proto::executions::{
    ExecutionStatus, STORED_OUTPUT_LIMIT, TRUNCATION_MARKER, TargetCounts, TargetStatus,
};
use drover_proto::hosts::{Host, HostStatus};
use drover_proto::inventory::DiscoveredHost;
use drover_store::{
    Dialect, EventFilter, EventOrder, ExecutionFilter, INSTANCE_ID_LABEL, NewEvent, NewToken,
    Notice, Store, StoreError, StoredFile, SyncOutcome,
};
use serde_json::json;

/// Instantiates each named body once per backend.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::common::run(crate::common::Backend::Sqlite, crate::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    crate::common::run(crate::common::Backend::Postgres, crate::$name).await;
                }
            )*
        }
    };
}

suite!(
    migrations_run_and_connect_is_idempotent,
    meta_set_once_is_true_exactly_once,
    meta_set_once_concurrently_one_winner,
    tokens_lifecycle,
    enroll_new_host,
    enroll_reuses_identity,
    enroll_concurrently_under_one_name,
    heartbeat_updates_facts_and_labels,
    heartbeat_comes_up_once_after_down,
    mark_down_stale_returns_each_host_once_concurrently,
    events_filter_by_type,
    events_since_and_paging,
    hosts_page_and_instance_counts_per_host,
    host_labels_and_hosts_by_name,
    hosts_prefilters_narrow_the_scan,
    notifier_delivers_event_notice,
    create_and_get_execution,
    dispatch_respects_parallel,
    dispatch_concurrently_never_exceeds_parallel,
    dispatch_marks_down_hosts_unreachable,
    execution_without_targets_fails,
    take_commands_delivers_once_then_redelivers,
    command_started_marks_target_running,
    append_output_dedups_by_seq,
    append_output_truncates_once,
    append_output_truncates_at_char_boundary,
    append_output_resent_concurrently_is_stored_once,
    finish_command_maps_outcomes_and_is_idempotent,
    finish_command_all_ok_succeeds,
    finish_command_concurrently_settles_once,
    request_cancel_cancels_queued_and_flags_delivered,
    request_cancel_before_dispatch,
    fail_host_targets_marks_unreachable,
    expire_overdue_times_out_overdue_targets,
    unfinished_executions_lists_open_ones,
    list_executions_filters_and_pages,
    list_output_order_and_cursor,
    events_follower_sees_every_event,
    output_follower_sees_every_chunk,
    instances_replace_emits_one_event_per_difference,
    model_versions_are_numbered_and_kept,
    artifacts_are_recorded_once,
    instances_kv_and_artifacts_page_from_a_cursor,
);

/// Both notifiers of two controllers on one PostgreSQL database talk through
/// LISTEN/NOTIFY (SQLite is one controller: notices stay in the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_notice_reaches_other_controller() {
    common::run(Backend::Postgres, |ctx: Ctx| async move {
        let a = ctx.store.clone();
        let b = ctx.connect_again().await;
        let mut b_rx = b.notifier().subscribe();
        let mut a_rx = a.notifier().subscribe();
        let id = a
            .append_event(NewEvent::new("test.ping", "tester", json!({})))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match b_rx.recv().await {
                    Ok(Notice::Event { id: got }) if got == id => return,
                    Ok(_) => {}
                    Err(e) => panic!("receiver of controller B failed: {e}"),
                }
            }
        })
        .await;
        assert!(got.is_ok(), "controller B never heard of event {id}");

        // And the other way round, for a notice that is not an event.
        b.notifier().publish(Notice::Commands {
            host_id: "h-from-b".into(),
        });
        let got = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                match a_rx.recv().await {
                    Ok(Notice::Commands { host_id }) if host_id == "h-from-b" => return,
                    Ok(_) => {}
                    Err(e) => panic!("receiver of controller A failed: {e}"),
                }
            }
        })
        .await;
        assert!(got.is_ok(), "controller A never heard of B's notice");

        // A controller does not hear its own notices twice (once locally only).
        let mut count = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, b_rx.recv()).await {
            if n == (Notice::Commands {
                host_id: "h-from-b".into(),
            }) {
                count += 1;
            }
        }
        assert_eq!(count, 1, "B must see its own notice exactly once");
        b.close().await;
    })
    .await;
}

#[tokio::test]
async fn connect_rejects_unknown_url_scheme() {
    match Store::connect("mysql://root@localhost/drover").await {
        Err(StoreError::Config(msg)) => assert!(msg.contains("mysql://"), "{msg}"),
        Err(e) => panic!("expected a configuration error, got {e}"),
        Ok(_) => panic!("a mysql URL must be refused"),
    }
    match Store::connect("postgres://u:hunter2@127.0.0.1:1/x?sslmode=bogus").await {
        Err(e) => assert!(!e.to_string().contains("hunter2"), "password leaked: {e}"),
        Ok(_) => panic!("bad URL must be refused"),
    }
}

// ---------------------------------------------------------------------------------------
// Schema and meta

async fn migrations_run_and_connect_is_idempotent(ctx: Ctx) {
    let s = &ctx.store;
    let want = match ctx.backend {
        Backend::Sqlite => Dialect::Sqlite,
        Backend::Postgres => Dialect::Postgres,
    };
    assert_eq!(s.dialect(), want);
    // Every table is there and empty.
    assert!(s.list_hosts().await.unwrap().is_empty());
    assert!(s.list_tokens(true).await.unwrap().is_empty());
    assert!(events_of(s, "*").await.is_empty());
    assert!(s.unfinished_executions().await.unwrap().is_empty());
    assert!(
        s.list_executions(&ExecutionFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    assert_eq!(s.meta_get("schema.test").await.unwrap(), None);
    enroll(s, "web1").await;
    s.meta_set_once("schema.test", "one").await.unwrap();

    // Connecting again runs no migration twice and loses nothing.
    let again = ctx.connect_again().await;
    assert_eq!(again.dialect(), want);
    assert_eq!(
        again.meta_get("schema.test").await.unwrap().as_deref(),
        Some("one")
    );
    assert_eq!(again.list_hosts().await.unwrap().len(), 1);
    again.close().await;

    // Several controllers starting together on the same database.
    let (a, b) = tokio::join!(Store::connect(&ctx.url), Store::connect(&ctx.url));
    let (a, b) = (
        a.expect("concurrent connect a"),
        b.expect("concurrent connect b"),
    );
    assert_eq!(a.list_hosts().await.unwrap().len(), 1);
    assert_eq!(b.list_hosts().await.unwrap().len(), 1);
    a.close().await;
    b.close().await;
    // The first handle still works after the others closed.
    assert_eq!(s.list_hosts().await.unwrap().len(), 1);
}

async fn meta_set_once_is_true_exactly_once(ctx: Ctx) {
    let s = &ctx.store;
    assert!(s.meta_set_once("bootstrap", "first").await.unwrap());
    assert!(!s.meta_set_once("bootstrap", "second").await.unwrap());
    assert!(!s.meta_set_once("bootstrap", "first").await.unwrap());
    assert_eq!(
        s.meta_get("bootstrap").await.unwrap().as_deref(),
        Some("first")
    );
    // Another key is independent.
    assert!(s.meta_set_once("other", "x").await.unwrap());
    // Another controller sees it set.
    let again = ctx.connect_again().await;
    assert!(!again.meta_set_once("bootstrap", "third").await.unwrap());
    again.close().await;
}

async fn meta_set_once_concurrently_one_winner(ctx: Ctx) {
    let other = ctx.connect_again().await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 {
            ctx.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            (i, s.meta_set_once("bootstrap", &format!("task-{i}")).await)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won.unwrap_or_else(|e| panic!("task {i}: {e}")) {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        ctx.store.meta_get("bootstrap").await.unwrap(),
        Some(format!("task-{}", winners[0]))
    );
    other.close().await;
}

// ---------------------------------------------------------------------------------------
// Tokens

fn api_token(id: &str, role: Role) -> NewToken {
    NewToken {
        id: id.into(),
        name: format!("{id}-name"),
        kind: TokenKind::Api,
        role: Some(role),
        host_id: None,
        secret_hash: format!("sha-{id}"),
        created_by: "bootstrap".into(),
    }
}

async fn tokens_lifecycle(ctx: Ctx) {
    let s = &ctx.store;
    let before = now_ms();
    let admin = s.create_token(api_token("t1", Role::Admin)).await.unwrap();
    assert_eq!(admin.id, "t1");
    assert_eq!(admin.name, "t1-name");
    assert_eq!(admin.kind, TokenKind::Api);
    assert_eq!(admin.role, Some(Role::Admin));
    assert_eq!(admin.host_id, None);
    assert_eq!(admin.created_by, "bootstrap");
    assert!(admin.created_at.timestamp_millis() >= before);
    assert_eq!(admin.revoked_at, None);
    assert_eq!(admin.last_used_at, None);

    let join = s
        .create_token(NewToken {
            kind: TokenKind::Join,
            role: None,
            ..api_token("t2", Role::Viewer)
        })
        .await
        .unwrap();
    assert_eq!(join.kind, TokenKind::Join);
    assert_eq!(join.role, None);
    let agent = s
        .create_token(NewToken {
            host_id: Some("host-x".into()),
            ..credential("t3")
        })
        .await
        .unwrap();
    assert_eq!(agent.kind, TokenKind::Agent);
    assert_eq!(agent.host_id.as_deref(), Some("host-x"));

    // A secret hash is unique.
    let dup = s
        .create_token(NewToken {
            secret_hash: "sha-t1".into(),
            ..api_token("t9", Role::Viewer)
        })
        .await;
    assert!(dup.is_err(), "two tokens with one secret hash");

    // By hash.
    let rec = s.find_token_by_hash("sha-t1").await.unwrap().unwrap();
    assert_eq!(rec.info, admin);
    assert_eq!(rec.secret_hash, "sha-t1");
    assert_eq!(
        s.find_token_by_hash("hash-of-t3")
            .await
            .unwrap()
            .unwrap()
            .info
            .id,
        "t3"
    );
    assert!(s.find_token_by_hash("sha-nope").await.unwrap().is_none());
    assert_eq!(s.get_token("t2").await.unwrap().unwrap().info, join);
    assert!(s.get_token("nope").await.unwrap().is_none());

    // Listing: newest first; agent credentials only when asked.
    let ids =
        |v: Vec<drover_proto::auth::TokenInfo>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(s.list_tokens(false).await.unwrap()), ["t2", "t1"]);
    assert_eq!(ids(s.list_tokens(true).await.unwrap()), ["t3", "t2", "t1"]);

    // Revoke, twice: the second changes nothing.
    let revoked = s.revoke_token("t1").await.unwrap().unwrap();
    let at = revoked.revoked_at.expect("revoked_at set");
    assert!(at.timestamp_millis() >= before);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = s.revoke_token("t1").await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(at));
    assert!(s.revoke_token("nope").await.unwrap().is_none());
    // Revoked tokens are still found (the caller decides) and still listed.
    let rec = s.find_token_by_hash("sha-t1").await.unwrap().unwrap();
    assert_eq!(rec.info.revoked_at, Some(at));
    assert_eq!(s.list_tokens(false).await.unwrap().len(), 2);
    // Others untouched.
    assert_eq!(
        s.get_token("t2").await.unwrap().unwrap().info.revoked_at,
        None
    );

    // Touch: sets last_used_at, then at most once a minute.
    s.touch_token("t2").await.unwrap();
    let used = s
        .get_token("t2")
        .await
        .unwrap()
        .unwrap()
        .info
        .last_used_at
        .expect("last_used_at set");
    assert!(used.timestamp_millis() >= before);
    tokio::time::sleep(Duration::from_millis(5)).await;
    s.touch_token("t2").await.unwrap();
    assert_eq!(
        s.get_token("t2").await.unwrap().unwrap().info.last_used_at,
        Some(used)
    );
    assert_eq!(
        s.get_token("t1").await.unwrap().unwrap().info.last_used_at,
        None
    );
    s.touch_token("nope").await.unwrap();
}

// ---------------------------------------------------------------------------------------
// Hosts

async fn enroll_new_host(ctx: Ctx) {
    let s = &ctx.store;
    let mut rx = s.notifier().subscribe();
    let before = now_ms();
    let l = labels(&[("env", "prod"), ("role", "db")]);
    let got = s
        .enroll_host("h-1", "db1", &l, &facts("db1"), credential("c1"))
        .await
        .unwrap();
    assert!(got.created);
    assert_eq!(got.revoked_credentials, 0);
    let h = &got.host;
    assert_eq!(h.id, "h-1");
    assert_eq!(h.name, "db1");
    assert_eq!(h.status, HostStatus::Up);
    assert_eq!(h.labels, l);
    assert_eq!(h.facts, facts("db1"));
    assert!(h.enrolled_at.timestamp_millis() >= before);
    assert_eq!(h.enrolled_at, h.last_seen_at);

    assert_eq!(s.get_host("h-1").await.unwrap().as_ref(), Some(h));
    assert_eq!(s.get_host_by_name("db1").await.unwrap().as_ref(), Some(h));
    assert!(s.get_host("h-2").await.unwrap().is_none());
    assert!(s.get_host_by_name("db2").await.unwrap().is_none());

    // The credential is stored against the host.
    let cred = s.get_token("c1").await.unwrap().unwrap().info;
    assert_eq!(cred.kind, TokenKind::Agent);
    assert_eq!(cred.host_id.as_deref(), Some("h-1"));
    assert_eq!(cred.revoked_at, None);

    // One host.registered event, by the agent.
    let evs = events_of(s, types::HOST_REGISTERED).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].actor, "agent:db1");
    assert_eq!(evs[0].payload["host_id"], "h-1");
    assert_eq!(evs[0].payload["name"], "db1");
    assert_eq!(evs[0].payload["re_enrolled"], false);
    assert_eq!(evs[0].payload["labels"]["env"], "prod");

    // Notices for the event and the host.
    let mut saw_event = false;
    let mut saw_host = false;
    while let Ok(n) = rx.try_recv() {
        match n {
            Notice::Event { id } if id == evs[0].id => saw_event = true,
            Notice::Host { host_id } if host_id == "h-1" => saw_host = true,
            _ => {}
        }
    }
    assert!(saw_event && saw_host);

    // Listed by name.
    s.enroll_host("h-0", "app1", &l, &facts("app1"), credential("c0"))
        .await
        .unwrap();
    let names: Vec<String> = s
        .list_hosts()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.name)
        .collect();
    assert_eq!(names, ["app1", "db1"]);
}

async fn enroll_reuses_identity(ctx: Ctx) {
    let s = &ctx.store;
    let first = s
        .enroll_host(
            "h-first",
            "web1",
            &labels(&[("role", "web")]),
            &facts("web1"),
            credential("c1"),
        )
        .await
        .unwrap();
    assert!(first.created);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let mut new_facts = facts("web1");
    new_facts.cpus = 64;
    let second = s
        .enroll_host(
            "h-second",
            "web1",
            &labels(&[("role", "api")]),
            &new_facts,
            credential("c2"),
        )
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(second.revoked_credentials, 1);
    assert_eq!(second.host.id, "h-first", "re-enrollment keeps the id");
    assert_eq!(second.host.labels, labels(&[("role", "api")]));
    assert_eq!(second.host.facts.cpus, 64);
    assert_eq!(second.host.enrolled_at, first.host.enrolled_at);
    assert!(second.host.last_seen_at >= first.host.last_seen_at);
    assert!(s.get_host("h-second").await.unwrap().is_none());
    assert_eq!(s.list_hosts().await.unwrap().len(), 1);

    let old = s.get_token("c1").await.unwrap().unwrap().info;
    assert!(old.revoked_at.is_some(), "old credential must be revoked");
    let new = s.get_token("c2").await.unwrap().unwrap().info;
    assert_eq!(new.revoked_at, None);
    assert_eq!(new.host_id.as_deref(), Some("h-first"));

    // A third enrollment revokes only the one still active.
    let third = s
        .enroll_host(
            "h-third",
            "web1",
            &labels(&[]),
            &facts("web1"),
            credential("c3"),
        )
        .await
        .unwrap();
    assert_eq!(third.revoked_credentials, 1);
    assert_eq!(third.host.id, "h-first");
    assert_eq!(
        s.get_token("c1").await.unwrap().unwrap().info.revoked_at,
        old.revoked_at,
        "an already revoked credential keeps its revocation time"
    );
    assert!(
        s.get_token("c2")
            .await
            .unwrap()
            .unwrap()
            .info
            .revoked_at
            .is_some()
    );
    // Other kinds of tokens of no host are not touched.
    let evs = events_of(s, types::HOST_REGISTERED).await;
    assert_eq!(evs.len(), 3);
    assert_eq!(evs[1].payload["re_enrolled"], true);
    assert_eq!(evs[1].payload["revoked_credentials"], 1);
    assert_eq!(evs[1].payload["host_id"], "h-first");
    assert!(evs.iter().all(|e| e.actor == "agent:web1"));
}

/// An agent that retries its enrollment while the first attempt is still in flight
/// (or two agents claiming one name) must get one host, whichever database.
async fn enroll_concurrently_under_one_name(ctx: Ctx) {
    let other = ctx.connect_again().await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 {
            ctx.store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            s.enroll_host(
                &format!("h-{i}"),
                "dup",
                &labels(&[]),
                &facts("dup"),
                credential(&format!("c{i}")),
            )
            .await
        }));
    }
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap().expect("every enrollment succeeds"));
    }
    assert_eq!(outcomes.iter().filter(|o| o.created).count(), 1);
    let ids: BTreeSet<&str> = outcomes.iter().map(|o| o.host.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one host id: {ids:?}");
    let host_id = ids.into_iter().next().unwrap().to_string();
    assert_eq!(ctx.store.list_hosts().await.unwrap().len(), 1);
    let creds: Vec<_> = ctx
        .store
        .list_tokens(true)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.host_id.as_deref() == Some(host_id.as_str()))
        .collect();
    assert_eq!(creds.len(), 6);
    assert_eq!(
        creds.iter().filter(|t| t.revoked_at.is_none()).count(),
        1,
        "exactly one credential stays valid"
    );
    assert_eq!(events_of(&ctx.store, types::HOST_REGISTERED).await.len(), 6);
    other.close().await;
}

async fn heartbeat_updates_facts_and_labels(ctx: Ctx) {
    let s = &ctx.store;
    let h = enroll(s, "web1").await;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let beat = s.heartbeat(&h.id, None, None).await.unwrap().unwrap();
    assert!(!beat.came_up);
    assert!(beat.host.last_seen_at > h.last_seen_at);
    assert_eq!(beat.host.facts, h.facts);
    assert_eq!(beat.host.labels, h.labels);
    assert_eq!(beat.host.status, HostStatus::Up);

    let mut f = facts("web1");
    f.memory_bytes = 1;
    f.addresses = vec!["10.1.1.1".into(), "fe80::1".into()];
    let beat = s.heartbeat(&h.id, Some(&f), None).await.unwrap().unwrap();
    assert_eq!(beat.host.facts, f);
    assert_eq!(beat.host.labels, h.labels);

    let l = labels(&[("zone", "b")]);
    let beat = s.heartbeat(&h.id, None, Some(&l)).await.unwrap().unwrap();
    assert_eq!(beat.host.facts, f);
    assert_eq!(beat.host.labels, l);

    let f2 = facts("web1-renamed");
    let l2 = labels(&[("zone", "c"), ("tier", "1")]);
    let beat = s
        .heartbeat(&h.id, Some(&f2), Some(&l2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(beat.host.facts, f2);
    assert_eq!(beat.host.labels, l2);
    // Stored, not only returned.
    let stored = s.get_host(&h.id).await.unwrap().unwrap();
    assert_eq!(stored, beat.host);
    assert_eq!(stored.enrolled_at, h.enrolled_at);

    assert!(s.heartbeat("nope", None, None).await.unwrap().is_none());
    assert!(
        s.heartbeat("nope", Some(&f), Some(&l))
            .await
            .unwrap()
            .is_none()
    );
    assert!(events_of(s, types::HOST_UP).await.is_empty());
}

async fn heartbeat_comes_up_once_after_down(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "web", 2).await;
    // Nobody is stale yet.
    assert!(
        s.mark_down_stale(hosts[0].last_seen_at.timestamp_millis() - 1)
            .await
            .unwrap()
            .is_empty()
    );
    let down = s.mark_down_stale(now_ms() + 1_000).await.unwrap();
    let mut down_ids: Vec<&str> = down.iter().map(|h| h.id.as_str()).collect();
    down_ids.sort();
    assert_eq!(down_ids, ["host-web0", "host-web1"]);
    assert!(down.iter().all(|h| h.status == HostStatus::Down));
    assert_eq!(
        s.get_host(&hosts[0].id).await.unwrap().unwrap().status,
        HostStatus::Down
    );
    let evs = events_of(s, types::HOST_DOWN).await;
    assert_eq!(evs.len(), 2);
    assert!(evs.iter().all(|e| e.actor == "system"));
    let mut named: Vec<&str> = evs
        .iter()
        .map(|e| e.payload["name"].as_str().unwrap())
        .collect();
    named.sort();
    assert_eq!(named, ["web0", "web1"]);

    // A heartbeat brings it back, exactly once.
    let beat = s
        .heartbeat(&hosts[0].id, None, None)
        .await
        .unwrap()
        .unwrap();
    assert!(beat.came_up);
    assert_eq!(beat.host.status, HostStatus::Up);
    let beat = s
        .heartbeat(&hosts[0].id, None, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!beat.came_up);
    let ups = events_of(s, types::HOST_UP).await;
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].actor, "agent:web0");
    assert_eq!(ups[0].payload["host_id"], hosts[0].id);

    // Concurrent heartbeats of a down host (two controllers): one comes up.
    let other = ctx.connect_again().await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        let id = hosts[1].id.clone();
        tasks.push(tokio::spawn(async move {
            st.heartbeat(&id, None, None)
                .await
                .unwrap()
                .unwrap()
                .came_up
        }));
    }
    let mut came_up = 0;
    for t in tasks {
        if t.await.unwrap() {
            came_up += 1;
        }
    }
    assert_eq!(came_up, 1);
    let ups = events_of(s, types::HOST_UP).await;
    assert_eq!(ups.len(), 2);
    assert_eq!(ups[1].actor, "agent:web1");
    // Down again, up again: a second host.up.
    assert_eq!(s.mark_down_stale(now_ms() + 1_000).await.unwrap().len(), 2);
    assert!(
        s.heartbeat(&hosts[1].id, None, None)
            .await
            .unwrap()
            .unwrap()
            .came_up
    );
    assert_eq!(events_of(s, types::HOST_UP).await.len(), 3);
    assert_eq!(events_of(s, types::HOST_DOWN).await.len(), 4);
    other.close().await;
}

async fn mark_down_stale_returns_each_host_once_concurrently(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "h", 5).await;
    let other = ctx.connect_again().await;
    let cutoff = now_ms() + 1_000;
    let mut tasks = Vec::new();
    for i in 0..4 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(
            async move { st.mark_down_stale(cutoff).await },
        ));
    }
    let mut seen: Vec<String> = Vec::new();
    for t in tasks {
        seen.extend(t.await.unwrap().unwrap().into_iter().map(|h| h.id));
    }
    seen.sort();
    let mut want: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    want.sort();
    assert_eq!(seen, want, "every host returned by exactly one call");
    assert_eq!(events_of(s, types::HOST_DOWN).await.len(), 5);
    assert!(
        s.list_hosts()
            .await
            .unwrap()
            .iter()
            .all(|h| h.status == HostStatus::Down)
    );
    assert!(s.mark_down_stale(cutoff).await.unwrap().is_empty());
    other.close().await;
}

// ---------------------------------------------------------------------------------------
// Events

fn filter(kind: Option<&str>, order: EventOrder, cursor: Option<i64>, limit: u32) -> EventFilter {
    EventFilter {
        kind: kind.map(str::to_string),
        cursor,
        order,
        limit,
        ..Default::default()
    }
}

async fn kinds(s: &Store, f: &EventFilter) -> Vec<String> {
    s.list_events(f)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn events_filter_by_type(ctx: Ctx) {
    let s = &ctx.store;
    for kind in [
        "host.up",
        "hostile.takeover",
        "host.down",
        "Host.Shouting",
        "execution.finished",
        "a_b.x",
        "axb.y",
        "a%c.z",
        "host.up",
    ] {
        s.append_event(NewEvent::new(kind, "tester", json!({ "k": kind })))
            .await
            .unwrap();
    }
    let asc = |k: &str| filter(Some(k), EventOrder::Asc, None, 100);
    assert_eq!(kinds(s, &asc("host.up")).await, ["host.up", "host.up"]);
    assert_eq!(
        kinds(s, &asc("host.*")).await,
        ["host.up", "host.down", "host.up"],
        "a prefix is matched exactly: case-sensitive, and `host.` is not `hostile`"
    );
    assert_eq!(
        kinds(s, &asc("host*")).await,
        ["host.up", "hostile.takeover", "host.down", "host.up"]
    );
    assert_eq!(kinds(s, &asc("Host.*")).await, ["Host.Shouting"]);
    assert_eq!(kinds(s, &asc("a_b.*")).await, ["a_b.x"], "`_` is literal");
    assert_eq!(kinds(s, &asc("a%c.*")).await, ["a%c.z"], "`%` is literal");
    assert_eq!(kinds(s, &asc("a%")).await, Vec::<String>::new());
    assert_eq!(kinds(s, &asc("*")).await.len(), 9);
    assert!(kinds(s, &asc("nothing.*")).await.is_empty());
    assert!(kinds(s, &asc("host")).await.is_empty());

    let e = &s.list_events(&asc("execution.finished")).await.unwrap()[0];
    assert_eq!(e.actor, "tester");
    assert_eq!(e.payload, json!({ "k": "execution.finished" }));
}

async fn events_since_and_paging(ctx: Ctx) {
    let s = &ctx.store;
    let mut ids = Vec::new();
    for i in 0..7 {
        if i == 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ids.push(
            s.append_event(NewEvent::new(
                if i % 2 == 0 { "test.even" } else { "test.odd" },
                &format!("actor{i}"),
                json!({ "i": i }),
            ))
            .await
            .unwrap(),
        );
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let all = s
        .list_events(&filter(None, EventOrder::Asc, None, 100))
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(all[3].payload, json!({ "i": 3 }));
    assert_eq!(all[3].actor, "actor3");

    // Since: inclusive, by time.
    let since = all[4].time.timestamp_millis();
    let got = s
        .list_events(&EventFilter {
            since_ms: Some(since),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    let want: Vec<i64> = all
        .iter()
        .filter(|e| e.time.timestamp_millis() >= since)
        .map(|e| e.id)
        .collect();
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), want);
    assert!(want.len() >= 3 && want.len() < 7, "{want:?}");
    assert!(
        s.list_events(&EventFilter {
            since_ms: Some(now_ms() + 60_000),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
    // Since combined with a type.
    let got = s
        .list_events(&EventFilter {
            kind: Some("test.even".into()),
            since_ms: Some(since),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        got.iter()
            .all(|e| e.kind == "test.even" && e.time.timestamp_millis() >= since)
    );
    assert!(got.iter().any(|e| e.id == ids[4]) && got.iter().any(|e| e.id == ids[6]));

    // Until: exclusive, by time; with since it is a window.
    let got = s
        .list_events(&EventFilter {
            until_ms: Some(since),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(got.iter().all(|e| e.time.timestamp_millis() < since));
    assert!(got.iter().any(|e| e.id == ids[0]) && !got.iter().any(|e| e.id == ids[6]));

    // Actor: exact.
    let by = |actor: &str| EventFilter {
        actor: Some(actor.into()),
        limit: 100,
        ..Default::default()
    };
    let got = s.list_events(&by("actor3")).await.unwrap();
    assert_eq!(got.iter().map(|e| e.id).collect::<Vec<_>>(), [ids[3]]);
    assert!(s.list_events(&by("actor")).await.unwrap().is_empty());

    // Text: a substring of type, actor or payload, ASCII case ignored, `%`/`_` literal.
    let text = |t: &str| EventFilter {
        text: Some(t.into()),
        limit: 100,
        ..Default::default()
    };
    let ids_of = |v: Vec<drover_proto::events::Event>| v.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(
        ids_of(s.list_events(&text("ACTOR5")).await.unwrap()),
        [ids[5]]
    );
    assert_eq!(
        ids_of(s.list_events(&text("\"i\":2")).await.unwrap()),
        [ids[2]]
    );
    let odd = ids_of(s.list_events(&text("test.ODD")).await.unwrap());
    assert_eq!(odd, [ids[1], ids[3], ids[5]]);
    assert!(
        s.list_events(&text("%")).await.unwrap().is_empty(),
        "`%` is literal"
    );
    assert!(
        s.list_events(&text("actor_")).await.unwrap().is_empty(),
        "`_` is literal"
    );
    // Combined with a type and an actor.
    let got = s
        .list_events(&EventFilter {
            kind: Some("test.*".into()),
            actor: Some("actor4".into()),
            text: Some("4".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(ids_of(got), [ids[4]]);

    // Limit.
    assert_eq!(
        s.list_events(&filter(None, EventOrder::Asc, None, 3))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        s.list_events(&filter(None, EventOrder::Desc, None, 1))
            .await
            .unwrap()[0]
            .id,
        ids[6]
    );

    // Cursor paging, both ways, with and without a type.
    for (kind, want) in [
        (None, ids.clone()),
        (
            Some("test.even"),
            ids.iter().step_by(2).copied().collect::<Vec<_>>(),
        ),
    ] {
        for order in [EventOrder::Asc, EventOrder::Desc] {
            let mut cursor = None;
            let mut got = Vec::new();
            let mut pages = 0;
            loop {
                let page = s
                    .list_events(&filter(kind, order, cursor, 2))
                    .await
                    .unwrap();
                assert!(page.len() <= 2);
                let Some(last) = page.last() else { break };
                cursor = Some(last.id);
                got.extend(page.iter().map(|e| e.id));
                pages += 1;
                assert!(pages < 20, "paging does not end");
            }
            let mut want = want.clone();
            if order == EventOrder::Desc {
                want.reverse();
            }
            assert_eq!(got, want, "kind {kind:?} order {order:?}");
        }
    }
    // A cursor in the middle.
    let after = s
        .list_events(&filter(None, EventOrder::Asc, Some(ids[2]), 100))
        .await
        .unwrap();
    assert_eq!(after.iter().map(|e| e.id).collect::<Vec<_>>(), ids[3..]);
    let before = s
        .list_events(&filter(None, EventOrder::Desc, Some(ids[2]), 100))
        .await
        .unwrap();
    assert_eq!(
        before.iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[1], ids[0]]
    );
}

async fn notifier_delivers_event_notice(ctx: Ctx) {
    let s = &ctx.store;
    let mut rx = s.notifier().subscribe();
    let id = s
        .append_event(NewEvent::new("test.notice", "tester", json!({})))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Notice::Event { id: got } = rx.recv().await.unwrap() {
                return got;
            }
        }
    })
    .await
    .expect("a notice within 2 s");
    assert_eq!(got, id);

    // A subscriber from before sees published notices in order; a later one does not
    // see the past.
    s.notifier().publish(Notice::Host {
        host_id: "h".into(),
    });
    let late = s.notifier().subscribe();
    assert_eq!(
        rx.recv().await.unwrap(),
        Notice::Host {
            host_id: "h".into()
        }
    );
    assert!(late.is_empty());
}

// ---------------------------------------------------------------------------------------
// Executions

async fn create_and_get_execution(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "web", 3).await;
    let mut rx = s.notifier().subscribe();
    let before = now_ms();
    let new = new_execution("e1", &hosts, Some(2), Some(5_000));
    let e = s.create_execution(&new).await.unwrap();
    assert_eq!(e.id, "e1");
    assert_eq!(e.kind, "run");
    assert_eq!(e.status, ExecutionStatus::Requested);
    assert_eq!(e.actor, "token:alice");
    assert_eq!(e.selector, "all");
    assert_eq!(e.spec, new.spec);
    assert!(e.created_at.timestamp_millis() >= before);
    assert_eq!(e.started_at, None);
    assert_eq!(e.finished_at, None);
    assert_eq!(
        e.counts,
        TargetCounts {
            total: 3,
            pending: 3,
            ..Default::default()
        }
    );
    let names: Vec<&str> = e.targets.iter().map(|t| t.host_name.as_str()).collect();
    assert_eq!(names, ["web0", "web1", "web2"]);
    for t in &e.targets {
        assert_eq!(t.status, TargetStatus::Pending);
        assert_eq!(
            (t.exit_code, t.signal, &t.error, t.started_at, t.finished_at),
            (None, None, &None, None, None)
        );
        assert_eq!(
            (t.output_bytes, t.truncated, t.duration_ms),
            (0, false, None)
        );
    }
    assert_eq!(execution(s, "e1").await, e);
    assert!(s.get_execution("nope").await.unwrap().is_none());

    let evs = events_of(s, types::EXECUTION_REQUESTED).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].actor, "token:alice");
    assert_eq!(evs[0].payload["execution_id"], "e1");
    assert_eq!(evs[0].payload["targets"], json!(["web0", "web1", "web2"]));
    assert_eq!(evs[0].payload["selector"], "all");

    let mut saw = false;
    while let Ok(n) = rx.try_recv() {
        saw |= n
            == Notice::Execution {
                execution_id: "e1".into(),
            };
    }
    assert!(saw, "an execution notice");

    // An id is unique.
    assert!(s.create_execution(&new).await.is_err());
    assert_eq!(events_of(s, types::EXECUTION_REQUESTED).await.len(), 1);
}

async fn dispatch_respects_parallel(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "web", 5).await;
    s.create_execution(&new_execution("e1", &hosts, Some(2), None))
        .await
        .unwrap();
    let first = s.dispatch("e1").await.unwrap();
    assert!(first.finished.is_empty());
    let got: Vec<&str> = first
        .dispatched
        .iter()
        .map(|d| d.host_id.as_str())
        .collect();
    assert_eq!(got, ["host-web0", "host-web1"], "in target order");
    let e = execution(s, "e1").await;
    assert_eq!(e.status, ExecutionStatus::Running);
    assert!(e.started_at.is_some());
    assert_eq!(
        e.targets.iter().map(|t| t.status).collect::<Vec<_>>(),
        [
            TargetStatus::Dispatched,
            TargetStatus::Dispatched,
            TargetStatus::Pending,
            TargetStatus::Pending,
            TargetStatus::Pending
        ]
    );
    assert_eq!(e.counts.pending, 5);
    assert_eq!(events_of(s, types::EXECUTION_STARTED).await.len(), 1);

    // Full: nothing more.
    assert!(s.dispatch("e1").await.unwrap().dispatched.is_empty());
    assert_eq!(in_flight(s, "e1").await, 2);

    // One finishes: exactly one more.
    let c0 = command_for(&first.dispatched, "host-web0");
    let settled = s
        .finish_command(&c0, "host-web0", &ok())
        .await
        .unwrap()
        .unwrap();
    assert!(settled.finished.is_empty());
    let next = s.dispatch("e1").await.unwrap();
    assert_eq!(next.dispatched.len(), 1);
    assert_eq!(next.dispatched[0].host_id, "host-web2");
    assert!(s.dispatch("e1").await.unwrap().dispatched.is_empty());
    assert_eq!(in_flight(s, "e1").await, 2);

    // Drain like an agent would, never more than two in flight.
    let mut outstanding: Vec<(String, String)> = vec![
        (
            "host-web1".into(),
            command_for(&first.dispatched, "host-web1"),
        ),
        ("host-web2".into(), next.dispatched[0].command_id.clone()),
    ];
    let mut finished = None;
    while let Some((host, cmd)) = outstanding.pop() {
        let settled = s.finish_command(&cmd, &host, &ok()).await.unwrap().unwrap();
        if let Some(e) = settled.finished.into_iter().next() {
            finished = Some(e);
        }
        let more = s.dispatch("e1").await.unwrap();
        outstanding.extend(
            more.dispatched
                .into_iter()
                .map(|d| (d.host_id, d.command_id)),
        );
        assert!(in_flight(s, "e1").await <= 2);
        assert!(outstanding.len() <= 2);
    }
    let finished = finished.expect("the last finish settles the execution");
    assert_eq!(finished.status, ExecutionStatus::Succeeded);
    assert_eq!(finished.counts.ok, 5);
    assert_eq!(finished.targets.len(), 5);
    assert_eq!(events_of(s, types::EXECUTION_STARTED).await.len(), 1);
    assert_eq!(finished_events(s, "e1").await.len(), 1);
    // A finished execution dispatches nothing.
    let after = s.dispatch("e1").await.unwrap();
    assert!(after.dispatched.is_empty() && after.finished.is_empty());
    assert!(s.dispatch("nope").await.unwrap().dispatched.is_empty());

    // Without a bound, everything goes at once.
    s.create_execution(&new_execution("e2", &hosts, None, None))
        .await
        .unwrap();
    assert_eq!(s.dispatch("e2").await.unwrap().dispatched.len(), 5);
    // parallel 0 still makes progress, one at a time.
    s.create_execution(&new_execution("e3", &hosts, Some(0), None))
        .await
        .unwrap();
    assert_eq!(s.dispatch("e3").await.unwrap().dispatched.len(), 1);
    assert!(s.dispatch("e3").await.unwrap().dispatched.is_empty());
}

async fn dispatch_concurrently_never_exceeds_parallel(ctx: Ctx) {
    const PARALLEL: usize = 3;
    const TARGETS: usize = 12;
    let s = ctx.store.clone();
    let other = ctx.connect_again().await;
    let hosts = enroll_many(&s, "n", TARGETS).await;
    s.create_execution(&new_execution("e1", &hosts, Some(PARALLEL as u32), None))
        .await
        .unwrap();

    // Six dispatchers on two controllers; an agent side that finishes whatever it is
    // given; a watcher that checks the bound in the store after every step.
    let max_seen = Arc::new(AtomicUsize::new(0));
    let dispatched_total = Arc::new(AtomicUsize::new(0));
    let watch = |st: Store, max_seen: Arc<AtomicUsize>| async move {
        let n = in_flight(&st, "e1").await;
        max_seen.fetch_max(n, Ordering::SeqCst);
    };
    let mut tasks = Vec::new();
    for i in 0..6 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        let max_seen = max_seen.clone();
        let total = dispatched_total.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..40 {
                let d = st.dispatch("e1").await.unwrap();
                total.fetch_add(d.dispatched.len(), Ordering::SeqCst);
                mine.extend(d.dispatched);
                watch(st.clone(), max_seen.clone()).await;
                if execution(&st, "e1").await.status.is_final() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let agent = {
        let st = other.clone();
        let hosts = hosts.clone();
        let max_seen = max_seen.clone();
        tokio::spawn(async move {
            let mut done = 0;
            for _ in 0..2_000 {
                for h in &hosts {
                    let (cmds, _) = st.take_commands(&h.id, 60_000).await.unwrap();
                    for c in cmds {
                        st.finish_command(&c.id, &h.id, &ok())
                            .await
                            .unwrap()
                            .unwrap();
                        done += 1;
                    }
                }
                watch(st.clone(), max_seen.clone()).await;
                if done == TARGETS {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            done
        })
    };
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    // The dispatchers may stop before the end; finish the rest.
    loop {
        let d = s.dispatch("e1").await.unwrap();
        all.extend(d.dispatched.iter().cloned());
        dispatched_total.fetch_add(d.dispatched.len(), Ordering::SeqCst);
        watch(s.clone(), max_seen.clone()).await;
        if execution(&s, "e1").await.status.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(agent.await.unwrap(), TARGETS);
    let max = max_seen.load(Ordering::SeqCst);
    assert!(max <= PARALLEL, "{max} in flight with parallel {PARALLEL}");
    assert!(max >= 1);
    assert_eq!(dispatched_total.load(Ordering::SeqCst), TARGETS);
    let hosts_dispatched: BTreeSet<&str> = all.iter().map(|d| d.host_id.as_str()).collect();
    assert_eq!(
        hosts_dispatched.len(),
        TARGETS,
        "each target dispatched once"
    );
    let e = execution(&s, "e1").await;
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert_eq!(e.counts.ok as usize, TARGETS);
    assert_eq!(events_of(&s, types::EXECUTION_STARTED).await.len(), 1);
    assert_eq!(finished_events(&s, "e1").await.len(), 1);
    other.close().await;
}

async fn dispatch_marks_down_hosts_unreachable(ctx: Ctx) {
    let s = &ctx.store;
    let b = enroll(s, "b").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let a = enroll(s, "a").await;
    let c = enroll(s, "c").await;
    let down = s
        .mark_down_stale(b.last_seen_at.timestamp_millis() + 1)
        .await
        .unwrap();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].id, b.id);

    s.create_execution(&new_execution(
        "e1",
        &[a.clone(), b.clone(), c.clone()],
        Some(1),
        None,
    ))
    .await
    .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    assert_eq!(d.dispatched.len(), 1);
    assert_eq!(d.dispatched[0].host_id, a.id);
    let e = execution(s, "e1").await;
    let tb = &e.targets[1];
    assert_eq!(tb.status, TargetStatus::Unreachable);
    assert_eq!(tb.error.as_deref(), Some("host is down"));
    assert!(tb.finished_at.is_some());
    assert_eq!(e.targets[2].status, TargetStatus::Pending);
    assert_eq!(e.counts.failed, 1);
    // The unreachable target does not hold a slot: c goes next.
    s.finish_command(&d.dispatched[0].command_id, &a.id, &ok())
        .await
        .unwrap()
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    assert_eq!(d.dispatched.len(), 1);
    assert_eq!(d.dispatched[0].host_id, c.id);
    let settled = s
        .finish_command(&d.dispatched[0].command_id, &c.id, &ok())
        .await
        .unwrap()
        .unwrap();
    let fin = &settled.finished[0];
    assert_eq!(fin.status, ExecutionStatus::Failed);
    assert_eq!(
        fin.counts,
        TargetCounts {
            total: 3,
            ok: 2,
            failed: 1,
            ..Default::default()
        }
    );

    // Every host down: the execution settles at its first dispatch.
    s.mark_down_stale(now_ms() + 1_000).await.unwrap();
    s.create_execution(&new_execution("e2", &[a.clone(), c.clone()], None, None))
        .await
        .unwrap();
    let d = s.dispatch("e2").await.unwrap();
    assert!(d.dispatched.is_empty());
    assert_eq!(d.finished.len(), 1);
    assert_eq!(d.finished[0].status, ExecutionStatus::Failed);
    assert!(
        d.finished[0]
            .targets
            .iter()
            .all(|t| t.status == TargetStatus::Unreachable)
    );
    assert_eq!(execution(s, "e2").await.status, ExecutionStatus::Failed);
    assert!(execution(s, "e2").await.finished_at.is_some());
    let fe = finished_events(s, "e2").await;
    assert_eq!(fe.len(), 1);
    assert_eq!(fe[0].payload["status"], "failed");
    assert_eq!(fe[0].actor, "token:alice");
}

async fn execution_without_targets_fails(ctx: Ctx) {
    let s = &ctx.store;
    s.create_execution(&new_execution("e0", &[], None, None))
        .await
        .unwrap();
    let d = s.dispatch("e0").await.unwrap();
    assert_eq!(d.finished.len(), 1);
    assert_eq!(d.finished[0].status, ExecutionStatus::Failed);
    assert_eq!(finished_events(s, "e0").await.len(), 1);
    assert!(s.unfinished_executions().await.unwrap().is_empty());
}

async fn take_commands_delivers_once_then_redelivers(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    let h = &hosts[0].id;
    assert!(!s.has_work(h, 60_000).await.unwrap());
    let mut rx = s.notifier().subscribe();
    s.create_execution(&new_execution("e1", &hosts, None, Some(9_000)))
        .await
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    let cmd = command_for(&d.dispatched, h);
    let mut saw = false;
    while let Ok(n) = rx.try_recv() {
        saw |= n == Notice::Commands { host_id: h.clone() };
    }
    assert!(saw, "dispatch tells the host's poller");

    assert!(s.has_work(h, 60_000).await.unwrap());
    let (cmds, cancel) = s.take_commands(h, 60_000).await.unwrap();
    assert_eq!(cmds.len(), 1);
    assert_eq!(cmds[0].id, cmd);
    assert_eq!(cmds[0].execution_id, "e1");
    assert_eq!(cmds[0].spec, exec_command());
    assert!(cancel.is_empty());
    // Once.
    assert!(!s.has_work(h, 60_000).await.unwrap());
    assert!(s.take_commands(h, 60_000).await.unwrap().0.is_empty());
    // Not to another host.
    let (other_cmds, _) = s.take_commands(&hosts[1].id, 60_000).await.unwrap();
    assert_eq!(other_cmds.len(), 1);
    assert_ne!(other_cmds[0].id, cmd);
    assert!(s.take_commands("nobody", 0).await.unwrap().0.is_empty());

    // Again after redeliver_after without a `started`.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(s.has_work(h, 300).await.unwrap());
    let (again, _) = s.take_commands(h, 300).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, cmd);
    // ... and not right after that re-delivery (its time was refreshed).
    assert!(s.take_commands(h, 300).await.unwrap().0.is_empty());

    // Once started, it is not re-delivered however long it runs.
    assert!(s.command_started(&cmd, h).await.unwrap());
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(!s.has_work(h, 10).await.unwrap());
    assert!(s.take_commands(h, 10).await.unwrap().0.is_empty());

    // A reconnecting agent gets its started commands again.
    assert_eq!(s.requeue_started(h).await.unwrap(), 1);
    assert_eq!(s.requeue_started(h).await.unwrap(), 0);
    let (again, _) = s.take_commands(h, 60_000).await.unwrap();
    assert_eq!(
        again.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [cmd.as_str()]
    );
    // The target stayed running throughout.
    assert_eq!(
        execution(s, "e1").await.targets[0].status,
        TargetStatus::Running
    );

    // A finished command is not delivered again.
    s.finish_command(&cmd, h, &ok()).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(s.take_commands(h, 10).await.unwrap().0.is_empty());
    assert!(!s.has_work(h, 10).await.unwrap());
}

async fn command_started_marks_target_running(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    s.create_execution(&new_execution("e1", &hosts, None, None))
        .await
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    let c0 = command_for(&d.dispatched, &hosts[0].id);
    let c1 = command_for(&d.dispatched, &hosts[1].id);
    s.take_commands(&hosts[0].id, 60_000).await.unwrap();

    // Wrong host, unknown command: refused, nothing changes.
    assert!(!s.command_started(&c0, &hosts[1].id).await.unwrap());
    assert!(!s.command_started("nope", &hosts[0].id).await.unwrap());
    assert_eq!(
        execution(s, "e1").await.targets[0].status,
        TargetStatus::Dispatched
    );

    let before = now_ms();
    assert!(s.command_started(&c0, &hosts[0].id).await.unwrap());
    let e = execution(s, "e1").await;
    assert_eq!(e.targets[0].status, TargetStatus::Running);
    let started = e.targets[0].started_at.expect("started_at");
    assert!(started.timestamp_millis() >= before);
    assert_eq!(e.targets[1].status, TargetStatus::Dispatched);
    assert_eq!(e.status, ExecutionStatus::Running);
    assert_eq!(e.counts.pending, 2);
    // Repeated: still true, nothing moves.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(s.command_started(&c0, &hosts[0].id).await.unwrap());
    assert_eq!(
        execution(s, "e1").await.targets[0].started_at,
        Some(started)
    );
    // Started straight from queued (the delivery raced the start).
    assert!(s.command_started(&c1, &hosts[1].id).await.unwrap());
    assert_eq!(
        execution(s, "e1").await.targets[1].status,
        TargetStatus::Running
    );
    assert!(
        s.take_commands(&hosts[1].id, 60_000)
            .await
            .unwrap()
            .0
            .is_empty()
    );

    // Started after finishing (a late message) does not reopen the target.
    s.finish_command(&c0, &hosts[0].id, &ok())
        .await
        .unwrap()
        .unwrap();
    assert!(s.command_started(&c0, &hosts[0].id).await.unwrap());
    assert_eq!(execution(s, "e1").await.targets[0].status, TargetStatus::Ok);
}

fn chunk(seq: u64, data: &str) -> OutputChunk {
    OutputChunk {
        seq,
        stream: if seq.is_multiple_of(2) {
            OutputStream::Stdout
        } else {
            OutputStream::Stderr
        },
        data: data.to_string(),
    }
}

/// One execution on one host, dispatched; returns (host id, command id).
async fn one_running(s: &Store, id: &str, host: &str) -> (String, String) {
    let h = match s.get_host_by_name(host).await.unwrap() {
        Some(h) => h,
        None => enroll(s, host).await,
    };
    s.create_execution(&new_execution(id, std::slice::from_ref(&h), None, None))
        .await
        .unwrap();
    let d = s.dispatch(id).await.unwrap();
    (h.id.clone(), command_for(&d.dispatched, &h.id))
}

async fn stored_text(s: &Store, execution_id: &str) -> String {
    s.list_output(execution_id, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, o)| o.data)
        .collect()
}

async fn append_output_dedups_by_seq(ctx: Ctx) {
    let s = &ctx.store;
    let (h, cmd) = one_running(s, "e1", "w0").await;
    let mut rx = s.notifier().subscribe();
    let got = s
        .append_output(&cmd, &h, &[chunk(0, "a"), chunk(1, "b"), chunk(2, "c")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.execution_id, "e1");
    assert_eq!(
        got.fresh.iter().map(|o| o.seq).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    assert_eq!(got.fresh[1].host_id, h);
    assert_eq!(got.fresh[1].host_name, "w0");
    assert_eq!(got.fresh[1].stream, OutputStream::Stderr);
    assert_eq!(got.fresh[1].data, "b");
    // Each fresh chunk is published.
    let mut notices = Vec::new();
    while let Ok(n) = rx.try_recv() {
        if let Notice::Output {
            execution_id,
            chunk,
        } = n
        {
            assert_eq!(execution_id, "e1");
            notices.push(chunk.expect("small chunks ride along").seq);
        }
    }
    assert_eq!(notices, [0, 1, 2]);

    // A resend overlapping what was stored: only the new chunk is fresh.
    let got = s
        .append_output(&cmd, &h, &[chunk(1, "b"), chunk(2, "c"), chunk(3, "d")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.fresh.iter().map(|o| o.seq).collect::<Vec<_>>(), [3]);
    // Entirely old: nothing.
    let got = s
        .append_output(&cmd, &h, &[chunk(0, "a")])
        .await
        .unwrap()
        .unwrap();
    assert!(got.fresh.is_empty());
    // Duplicates within one batch.
    let got = s
        .append_output(&cmd, &h, &[chunk(4, "e"), chunk(4, "e")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.fresh.len(), 1);
    // An empty batch.
    assert!(
        s.append_output(&cmd, &h, &[])
            .await
            .unwrap()
            .unwrap()
            .fresh
            .is_empty()
    );

    let out = s.list_output("e1", 0, 100).await.unwrap();
    assert_eq!(
        out.iter()
            .map(|(_, o)| (o.seq, o.data.as_str()))
            .collect::<Vec<_>>(),
        [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e")]
    );
    assert_eq!(out[3].1.stream, OutputStream::Stderr);
    let t = &execution(s, "e1").await.targets[0];
    assert_eq!(t.output_bytes, 5);
    assert!(!t.truncated);

    // Unknown command, or another host's: refused.
    assert!(
        s.append_output("nope", &h, &[chunk(9, "x")])
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.append_output(&cmd, "host-other", &[chunk(9, "x")])
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(s.list_output("e1", 0, 100).await.unwrap().len(), 5);
}

async fn append_output_truncates_once(ctx: Ctx) {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 20; // 1.25 MiB
    let s = &ctx.store;
    let (h, cmd) = one_running(s, "e1", "w0").await;
    let chunks: Vec<OutputChunk> = (0..CHUNKS)
        .map(|i| OutputChunk {
            seq: i as u64,
            stream: OutputStream::Stdout,
            data: ((b'a' + (i % 26) as u8) as char).to_string().repeat(CHUNK),
        })
        .collect();
    let mut fresh = 0;
    for batch in chunks.chunks(3) {
        let got = s.append_output(&cmd, &h, batch).await.unwrap().unwrap();
        // Every fresh chunk comes back whole, stored or not (live streams see all).
        for (f, c) in got.fresh.iter().zip(batch) {
            assert_eq!(f.data.len(), c.data.len());
        }
        fresh += got.fresh.len();
    }
    assert_eq!(fresh, CHUNKS);

    let input: String = chunks.iter().map(|c| c.data.as_str()).collect();
    let limit = STORED_OUTPUT_LIMIT as usize;
    let stored = stored_text(s, "e1").await;
    assert_eq!(stored.len(), limit + TRUNCATION_MARKER.len());
    assert!(
        stored.starts_with(&input[..limit]),
        "the first MiB, in order"
    );
    assert!(stored.ends_with(TRUNCATION_MARKER));
    assert_eq!(stored.matches(TRUNCATION_MARKER).count(), 1);
    let t = &execution(s, "e1").await.targets[0];
    assert_eq!(t.output_bytes, STORED_OUTPUT_LIMIT);
    assert!(t.truncated);

    // More output after truncation: fresh, but nothing stored, no second marker.
    let more = s
        .append_output(&cmd, &h, &[chunk(CHUNKS as u64, "late")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(more.fresh.len(), 1);
    // Resending everything changes nothing.
    let again = s.append_output(&cmd, &h, &chunks).await.unwrap().unwrap();
    assert!(again.fresh.is_empty());
    let stored = stored_text(s, "e1").await;
    assert_eq!(stored.len(), limit + TRUNCATION_MARKER.len());
    assert_eq!(stored.matches(TRUNCATION_MARKER).count(), 1);

    // The bound is per host: another host of another execution stores its own MiB.
    let (h2, cmd2) = one_running(s, "e2", "w1").await;
    s.append_output(&cmd2, &h2, &[chunk(0, "small")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_text(s, "e2").await, "small");
}

async fn append_output_truncates_at_char_boundary(ctx: Ctx) {
    let s = &ctx.store;
    let (h, cmd) = one_running(s, "e1", "w0").await;
    // 3-byte characters: 1 MiB is not a multiple of 3.
    let piece = "€".repeat(21_845); // 65_535 bytes
    let chunks: Vec<OutputChunk> = (0..17)
        .map(|i| OutputChunk {
            seq: i,
            stream: OutputStream::Stdout,
            data: piece.clone(),
        })
        .collect();
    for batch in chunks.chunks(4) {
        s.append_output(&cmd, &h, batch).await.unwrap().unwrap();
    }
    let stored = stored_text(s, "e1").await;
    let body = stored
        .strip_suffix(TRUNCATION_MARKER)
        .expect("marker at the end");
    let want = (STORED_OUTPUT_LIMIT as usize / 3) * 3;
    assert_eq!(body.len(), want);
    assert!(body.chars().all(|c| c == '€'));
    let t = &execution(s, "e1").await.targets[0];
    assert_eq!(t.output_bytes as usize, want);
    assert!(t.truncated);
}

/// An agent that resends a batch while the first request is still in flight (a
/// timeout and retry) must not get its output stored twice.
async fn append_output_resent_concurrently_is_stored_once(ctx: Ctx) {
    let other = ctx.connect_again().await;
    for round in 0..3 {
        let id = format!("e{round}");
        let (h, cmd) = one_running(&ctx.store, &id, "w0").await;
        let batch: Vec<OutputChunk> = (0..10).map(|i| chunk(i, &format!("line {i}\n"))).collect();
        let mut tasks = Vec::new();
        for i in 0..4 {
            let st = if i % 2 == 0 {
                ctx.store.clone()
            } else {
                other.clone()
            };
            let (h, cmd, batch) = (h.clone(), cmd.clone(), batch.clone());
            tasks.push(tokio::spawn(async move {
                st.append_output(&cmd, &h, &batch)
                    .await
                    .unwrap()
                    .unwrap()
                    .fresh
                    .len()
            }));
        }
        let mut fresh = 0;
        for t in tasks {
            fresh += t.await.unwrap();
        }
        assert_eq!(fresh, 10, "round {round}: each chunk fresh once");
        let want: String = batch.iter().map(|c| c.data.as_str()).collect();
        assert_eq!(stored_text(&ctx.store, &id).await, want, "round {round}");
        assert_eq!(
            execution(&ctx.store, &id).await.targets[0].output_bytes as usize,
            want.len()
        );
    }
    other.close().await;
}

async fn finish_command_maps_outcomes_and_is_idempotent(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 5).await;
    s.create_execution(&new_execution("e1", &hosts, None, None))
        .await
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    let cmd = |i: usize| command_for(&d.dispatched, &hosts[i].id);
    let outcomes = [
        (CommandOutcome::Ok, TargetStatus::Ok),
        (CommandOutcome::Failed, TargetStatus::Failed),
        (CommandOutcome::Error, TargetStatus::Failed),
        (CommandOutcome::TimedOut, TargetStatus::TimedOut),
        (CommandOutcome::Cancelled, TargetStatus::Cancelled),
    ];

    // Unknown, or another host's: None and nothing changes.
    assert!(
        s.finish_command("nope", &hosts[0].id, &ok())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.finish_command(&cmd(0), &hosts[1].id, &ok())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(in_flight(s, "e1").await, 5);

    let before = now_ms();
    for (i, (outcome, _)) in outcomes.iter().enumerate().take(4) {
        let r = CommandResult {
            outcome: *outcome,
            exit_code: Some(i as i32),
            signal: if i == 3 { Some(9) } else { None },
            duration_ms: 1_000,
            error: if *outcome == CommandOutcome::Error {
                Some("cannot exec".into())
            } else {
                None
            },
            chunks: 0,
        };
        let settled = s
            .finish_command(&cmd(i), &hosts[i].id, &r)
            .await
            .unwrap()
            .unwrap();
        assert!(settled.finished.is_empty(), "{i}: not the last");
        assert!(settled.dispatched.is_empty());
    }
    let e = execution(s, "e1").await;
    assert_eq!(e.status, ExecutionStatus::Running);
    for (i, (_, want)) in outcomes.iter().enumerate().take(4) {
        let t = &e.targets[i];
        assert_eq!(t.status, *want, "target {i}");
        assert_eq!(t.exit_code, Some(i as i32));
        assert_eq!(t.duration_ms, Some(1_000));
        let fin = t.finished_at.expect("finished_at").timestamp_millis();
        assert!(fin >= before);
        // Never started explicitly: start time derived from the duration.
        let st = t.started_at.expect("started_at").timestamp_millis();
        assert_eq!(fin - st, 1_000);
    }
    assert_eq!(e.targets[2].error.as_deref(), Some("cannot exec"));
    assert_eq!(e.targets[3].signal, Some(9));
    assert_eq!(e.targets[0].signal, None);
    assert_eq!(
        e.counts,
        TargetCounts {
            total: 5,
            pending: 1,
            ok: 1,
            failed: 3,
            cancelled: 0
        }
    );

    // A resend, even with another outcome, changes nothing.
    let resent = s
        .finish_command(&cmd(0), &hosts[0].id, &result(CommandOutcome::Failed))
        .await
        .unwrap()
        .unwrap();
    assert!(resent.finished.is_empty());
    assert_eq!(execution(s, "e1").await.targets, e.targets);

    // The last one settles the execution: a cancelled target makes it cancelled.
    let started_target = s.command_started(&cmd(4), &hosts[4].id).await.unwrap();
    assert!(started_target);
    let settled = s
        .finish_command(&cmd(4), &hosts[4].id, &result(CommandOutcome::Cancelled))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settled.finished.len(), 1);
    let fin = &settled.finished[0];
    assert_eq!(fin.id, "e1");
    assert_eq!(fin.status, ExecutionStatus::Cancelled);
    assert!(fin.finished_at.is_some());
    assert_eq!(fin.targets.len(), 5);
    assert_eq!(fin.targets[4].status, TargetStatus::Cancelled);
    assert_eq!(fin.counts.cancelled, 1);
    let stored = execution(s, "e1").await;
    assert_eq!(stored.status, ExecutionStatus::Cancelled);
    assert_eq!(stored.finished_at, fin.finished_at);
    let evs = finished_events(s, "e1").await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].payload["status"], "cancelled");
    assert_eq!(evs[0].payload["counts"]["failed"], 3);
    assert_eq!(evs[0].actor, "token:alice");

    // Resending the last result: no second finish.
    let again = s
        .finish_command(&cmd(4), &hosts[4].id, &result(CommandOutcome::Cancelled))
        .await
        .unwrap()
        .unwrap();
    assert!(again.finished.is_empty());
    assert_eq!(finished_events(s, "e1").await.len(), 1);
    assert_eq!(execution(s, "e1").await.finished_at, fin.finished_at);
}

async fn finish_command_all_ok_succeeds(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    // Ok + failed → failed.
    s.create_execution(&new_execution("e1", &hosts, None, None))
        .await
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    s.finish_command(
        &command_for(&d.dispatched, &hosts[0].id),
        &hosts[0].id,
        &ok(),
    )
    .await
    .unwrap();
    let fin = s
        .finish_command(
            &command_for(&d.dispatched, &hosts[1].id),
            &hosts[1].id,
            &result(CommandOutcome::Failed),
        )
        .await
        .unwrap()
        .unwrap()
        .finished;
    assert_eq!(fin[0].status, ExecutionStatus::Failed);
    assert_eq!(
        finished_events(s, "e1").await[0].payload["status"],
        "failed"
    );

    // All ok → succeeded.
    s.create_execution(&new_execution("e2", &hosts, None, None))
        .await
        .unwrap();
    let d = s.dispatch("e2").await.unwrap();
    let mut finished = Vec::new();
    for h in &hosts {
        let settled = s
            .finish_command(&command_for(&d.dispatched, &h.id), &h.id, &ok())
            .await
            .unwrap()
            .unwrap();
        finished.extend(settled.finished);
    }
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].status, ExecutionStatus::Succeeded);
    assert_eq!(finished[0].counts.ok, 2);
    let e = execution(s, "e2").await;
    assert_eq!(e.status, ExecutionStatus::Succeeded);
    assert!(e.started_at.unwrap() <= e.finished_at.unwrap());
    assert_eq!(
        finished_events(s, "e2").await[0].payload["status"],
        "succeeded"
    );
}

/// The last targets of an execution finishing at the same instant, reported to two
/// controllers: the execution must finish once, not zero times, not twice.
async fn finish_command_concurrently_settles_once(ctx: Ctx) {
    let other = ctx.connect_again().await;
    let hosts = enroll_many(&ctx.store, "w", 6).await;
    for round in 0..5 {
        let id = format!("e{round}");
        ctx.store
            .create_execution(&new_execution(&id, &hosts, None, None))
            .await
            .unwrap();
        let d = ctx.store.dispatch(&id).await.unwrap();
        let mut tasks = Vec::new();
        for (i, dc) in d.dispatched.into_iter().enumerate() {
            let st = if i % 2 == 0 {
                ctx.store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                st.finish_command(&dc.command_id, &dc.host_id, &ok())
                    .await
                    .unwrap()
                    .unwrap()
                    .finished
                    .len()
            }));
        }
        let mut finished = 0;
        for t in tasks {
            finished += t.await.unwrap();
        }
        let e = execution(&ctx.store, &id).await;
        assert_eq!(e.counts.ok, 6, "round {round}");
        assert_eq!(
            e.status,
            ExecutionStatus::Succeeded,
            "round {round}: every target is ok, the execution must be finished"
        );
        assert_eq!(finished, 1, "round {round}: settled by exactly one call");
        assert_eq!(
            finished_events(&ctx.store, &id).await.len(),
            1,
            "round {round}"
        );
    }
    other.close().await;
}

async fn request_cancel_cancels_queued_and_flags_delivered(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 4).await;
    s.create_execution(&new_execution("e1", &hosts, Some(2), None))
        .await
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    let c0 = command_for(&d.dispatched, &hosts[0].id);
    let c1 = command_for(&d.dispatched, &hosts[1].id);
    // w0's agent has its command; w1's is still queued.
    assert_eq!(
        s.take_commands(&hosts[0].id, 60_000).await.unwrap().0.len(),
        1
    );
    assert!(s.command_started(&c0, &hosts[0].id).await.unwrap());

    assert!(s.request_cancel("nope", "bob").await.unwrap().is_none());
    let mut rx = s.notifier().subscribe();
    let settled = s.request_cancel("e1", "bob").await.unwrap().unwrap();
    assert!(settled.finished.is_empty(), "w0 is still running");
    let e = execution(s, "e1").await;
    assert_eq!(e.status, ExecutionStatus::Running);
    assert_eq!(
        e.targets.iter().map(|t| t.status).collect::<Vec<_>>(),
        [
            TargetStatus::Running,
            TargetStatus::Cancelled,
            TargetStatus::Cancelled,
            TargetStatus::Cancelled
        ]
    );
    assert!(e.targets[1..].iter().all(|t| t.finished_at.is_some()));
    let evs = events_of(s, types::EXECUTION_CANCEL_REQUESTED).await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].actor, "bob");
    assert_eq!(evs[0].payload["execution_id"], "e1");
    let mut told = false;
    while let Ok(n) = rx.try_recv() {
        told |= n
            == Notice::Commands {
                host_id: hosts[0].id.clone(),
            };
    }
    assert!(told, "w0's poller is woken for the cancel");

    // The queued command is withdrawn; the delivered one is cancelled through its agent.
    assert!(!s.has_work(&hosts[1].id, 0).await.unwrap());
    assert!(s.take_commands(&hosts[1].id, 0).await.unwrap().0.is_empty());
    assert!(s.has_work(&hosts[0].id, 60_000).await.unwrap());
    let (cmds, cancel) = s.take_commands(&hosts[0].id, 60_000).await.unwrap();
    assert!(cmds.is_empty());
    assert_eq!(cancel, std::slice::from_ref(&c0));
    // Cancelled targets are not dispatched; no slot is refilled.
    let again = s.dispatch("e1").await.unwrap();
    assert!(again.dispatched.is_empty());
    // A late result of the withdrawn command changes nothing.
    s.finish_command(&c1, &hosts[1].id, &ok())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        execution(s, "e1").await.targets[1].status,
        TargetStatus::Cancelled
    );

    // The agent reports the kill: the execution is cancelled.
    let settled = s
        .finish_command(&c0, &hosts[0].id, &result(CommandOutcome::Cancelled))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(settled.finished.len(), 1);
    assert_eq!(settled.finished[0].status, ExecutionStatus::Cancelled);
    assert_eq!(
        settled.finished[0].counts,
        TargetCounts {
            total: 4,
            cancelled: 4,
            ..Default::default()
        }
    );
    let fe = finished_events(s, "e1").await;
    assert_eq!(fe.len(), 1);
    assert_eq!(fe[0].payload["status"], "cancelled");

    // Cancelling a final execution changes nothing.
    let noop = s.request_cancel("e1", "bob").await.unwrap().unwrap();
    assert!(noop.finished.is_empty() && noop.dispatched.is_empty());
    assert_eq!(
        events_of(s, types::EXECUTION_CANCEL_REQUESTED).await.len(),
        1
    );
    assert_eq!(finished_events(s, "e1").await.len(), 1);
}

async fn request_cancel_before_dispatch(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 3).await;
    s.create_execution(&new_execution("e1", &hosts, None, None))
        .await
        .unwrap();
    let settled = s.request_cancel("e1", "carol").await.unwrap().unwrap();
    assert_eq!(settled.finished.len(), 1);
    assert_eq!(settled.finished[0].status, ExecutionStatus::Cancelled);
    let e = execution(s, "e1").await;
    assert_eq!(e.status, ExecutionStatus::Cancelled);
    assert!(
        e.targets
            .iter()
            .all(|t| t.status == TargetStatus::Cancelled)
    );
    assert_eq!(e.counts.cancelled, 3);
    assert!(s.dispatch("e1").await.unwrap().dispatched.is_empty());
    for h in &hosts {
        assert!(s.take_commands(&h.id, 0).await.unwrap().0.is_empty());
    }
    let fe = finished_events(s, "e1").await;
    assert_eq!(fe.len(), 1);
    assert_eq!(fe[0].payload["status"], "cancelled");

    // An agent that finishes ok despite a cancel: the execution is still cancelled.
    s.create_execution(&new_execution("e2", &hosts[..1], None, None))
        .await
        .unwrap();
    let d = s.dispatch("e2").await.unwrap();
    let c = command_for(&d.dispatched, &hosts[0].id);
    s.take_commands(&hosts[0].id, 60_000).await.unwrap();
    assert!(
        s.request_cancel("e2", "carol")
            .await
            .unwrap()
            .unwrap()
            .finished
            .is_empty()
    );
    let fin = s
        .finish_command(&c, &hosts[0].id, &ok())
        .await
        .unwrap()
        .unwrap()
        .finished;
    assert_eq!(fin[0].status, ExecutionStatus::Cancelled);
    assert_eq!(fin[0].targets[0].status, TargetStatus::Ok);
}

async fn fail_host_targets_marks_unreachable(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 3).await;
    let (a, b, c) = (&hosts[0].id, &hosts[1].id, &hosts[2].id);
    // e1: a and b in flight, c pending behind parallel 2.
    s.create_execution(&new_execution("e1", &hosts, Some(2), None))
        .await
        .unwrap();
    let d1 = s.dispatch("e1").await.unwrap();
    // e2: only a.
    s.create_execution(&new_execution("e2", &hosts[..1], None, None))
        .await
        .unwrap();
    let d2 = s.dispatch("e2").await.unwrap();
    s.take_commands(a, 60_000).await.unwrap();
    assert!(
        s.command_started(&command_for(&d1.dispatched, a), a)
            .await
            .unwrap()
    );

    let settled = s.fail_host_targets(a, "host went down").await.unwrap();
    // e2 had nothing else: finished; e1 goes on.
    assert_eq!(
        settled
            .finished
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["e2"]
    );
    assert_eq!(settled.finished[0].status, ExecutionStatus::Failed);
    let e1 = execution(s, "e1").await;
    assert_eq!(e1.status, ExecutionStatus::Running);
    assert_eq!(e1.targets[0].status, TargetStatus::Unreachable);
    assert_eq!(e1.targets[0].error.as_deref(), Some("host went down"));
    assert!(e1.targets[0].finished_at.is_some());
    assert_eq!(e1.targets[1].status, TargetStatus::Dispatched);
    assert_eq!(e1.targets[2].status, TargetStatus::Pending);
    let e2 = execution(s, "e2").await;
    assert_eq!(e2.targets[0].status, TargetStatus::Unreachable);
    assert_eq!(finished_events(s, "e2").await.len(), 1);
    assert!(finished_events(s, "e1").await.is_empty());

    // The agent, if it comes back, is told to stop what it was running.
    let (_, cancel) = s.take_commands(a, 60_000).await.unwrap();
    let mut cancel = cancel;
    cancel.sort();
    let mut want = vec![
        command_for(&d1.dispatched, a),
        command_for(&d2.dispatched, a),
    ];
    want.sort();
    assert_eq!(cancel, want);
    // Its late result changes nothing.
    s.finish_command(&command_for(&d1.dispatched, a), a, &ok())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        execution(s, "e1").await.targets[0].status,
        TargetStatus::Unreachable
    );

    // Nothing more in flight on a: a second call is a no-op.
    let again = s.fail_host_targets(a, "host went down").await.unwrap();
    assert!(again.finished.is_empty());
    // The freed slot goes to c; then b and c fail too and e1 settles.
    let d = s.dispatch("e1").await.unwrap();
    assert_eq!(d.dispatched.len(), 1);
    assert_eq!(&d.dispatched[0].host_id, c);
    assert!(
        s.fail_host_targets(b, "gone")
            .await
            .unwrap()
            .finished
            .is_empty()
    );
    // b's command was queued, never taken: once given up it is never delivered.
    let (commands, cancels) = s.take_commands(b, 0).await.unwrap();
    assert!(
        commands.is_empty() && cancels.is_empty(),
        "given-up queued command delivered: {commands:?} {cancels:?}"
    );
    let settled = s.fail_host_targets(c, "gone").await.unwrap();
    assert_eq!(settled.finished.len(), 1);
    assert_eq!(settled.finished[0].id, "e1");
    assert_eq!(settled.finished[0].status, ExecutionStatus::Failed);
    assert_eq!(settled.finished[0].counts.failed, 3);
    assert_eq!(finished_events(s, "e1").await.len(), 1);
}

async fn expire_overdue_times_out_overdue_targets(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    let t0 = now_ms();
    s.create_execution(&new_execution("timed", &hosts, None, Some(1_000)))
        .await
        .unwrap();
    s.dispatch("timed").await.unwrap();
    s.create_execution(&new_execution("untimed", &hosts, None, None))
        .await
        .unwrap();
    s.dispatch("untimed").await.unwrap();

    // Not yet: the deadline is the timeout plus a grace period.
    let settled = s.expire_overdue(now_ms()).await.unwrap();
    assert!(settled.finished.is_empty());
    let settled = s.expire_overdue(t0 + 1_000).await.unwrap();
    assert!(settled.finished.is_empty());
    assert_eq!(in_flight(s, "timed").await, 2);

    let settled = s.expire_overdue(now_ms() + 10 * 60_000).await.unwrap();
    assert_eq!(
        settled
            .finished
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        ["timed"]
    );
    assert_eq!(settled.finished[0].status, ExecutionStatus::Failed);
    let e = execution(s, "timed").await;
    for t in &e.targets {
        assert_eq!(t.status, TargetStatus::TimedOut);
        assert!(t.error.as_deref().unwrap_or_default().contains("timeout"));
    }
    assert_eq!(finished_events(s, "timed").await.len(), 1);
    // No timeout, no deadline.
    assert_eq!(in_flight(s, "untimed").await, 2);
    // Once.
    assert!(
        s.expire_overdue(now_ms() + 10 * 60_000)
            .await
            .unwrap()
            .finished
            .is_empty()
    );
    assert_eq!(finished_events(s, "timed").await.len(), 1);
}

async fn unfinished_executions_lists_open_ones(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 1).await;
    for id in ["e3", "e1", "e2", "e4"] {
        s.create_execution(&new_execution(id, &hosts, None, None))
            .await
            .unwrap();
    }
    assert_eq!(
        s.unfinished_executions().await.unwrap(),
        ["e1", "e2", "e3", "e4"]
    );
    let d = s.dispatch("e2").await.unwrap(); // running
    assert_eq!(
        s.unfinished_executions().await.unwrap(),
        ["e1", "e2", "e3", "e4"]
    );
    s.request_cancel("e3", "x").await.unwrap();
    s.finish_command(&d.dispatched[0].command_id, &hosts[0].id, &ok())
        .await
        .unwrap();
    assert_eq!(s.unfinished_executions().await.unwrap(), ["e1", "e4"]);
    // Another controller, starting up, sees the same.
    let again = ctx.connect_again().await;
    assert_eq!(again.unfinished_executions().await.unwrap(), ["e1", "e4"]);
    again.close().await;
}

async fn list_executions_filters_and_pages(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    for i in 1..=6 {
        let mut new = new_execution(&format!("e{i}"), &hosts, None, None);
        if i % 2 == 0 {
            new.actor = "token:bob".into();
        }
        if i == 5 {
            new.kind = "deploy".into();
        }
        s.create_execution(&new).await.unwrap();
    }
    // e2 succeeds, e3 is cancelled.
    let d = s.dispatch("e2").await.unwrap();
    for dc in &d.dispatched {
        s.finish_command(&dc.command_id, &dc.host_id, &ok())
            .await
            .unwrap();
    }
    s.request_cancel("e3", "x").await.unwrap();

    let list = |f: ExecutionFilter| async move {
        s.list_executions(&f)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let all = ExecutionFilter {
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        list(all.clone()).await,
        ["e6", "e5", "e4", "e3", "e2", "e1"]
    );
    assert_eq!(
        list(ExecutionFilter {
            actor: Some("token:bob".into()),
            ..all.clone()
        })
        .await,
        ["e6", "e4", "e2"]
    );
    assert_eq!(
        list(ExecutionFilter {
            kind: Some("deploy".into()),
            ..all.clone()
        })
        .await,
        ["e5"]
    );
    assert_eq!(
        list(ExecutionFilter {
            status: Some(ExecutionStatus::Succeeded),
            ..all.clone()
        })
        .await,
        ["e2"]
    );
    assert_eq!(
        list(ExecutionFilter {
            status: Some(ExecutionStatus::Requested),
            actor: Some("token:alice".into()),
            kind: Some("run".into()),
            ..all.clone()
        })
        .await,
        ["e1"]
    );
    assert!(
        list(ExecutionFilter {
            status: Some(ExecutionStatus::Running),
            ..all.clone()
        })
        .await
        .is_empty()
    );

    // A time window, by creation time: since is inclusive, until exclusive.
    let listed = s.list_executions(&all).await.unwrap();
    let created = |id: &str| {
        listed
            .iter()
            .find(|e| e.id == id)
            .map(|e| e.created_at.timestamp_millis())
            .unwrap()
    };
    let window = |since: Option<i64>, until: Option<i64>| ExecutionFilter {
        since_ms: since,
        until_ms: until,
        ..all.clone()
    };
    assert_eq!(list(window(Some(created("e1")), None)).await.len(), 6);
    assert!(list(window(None, Some(created("e1")))).await.is_empty());
    assert!(list(window(Some(created("e6") + 1), None)).await.is_empty());
    let upto = list(window(None, Some(created("e6") + 1))).await;
    assert_eq!(upto.len(), 6);
    let recent = list(window(Some(created("e4")), None)).await;
    assert!(recent.contains(&"e4".to_string()) && recent.contains(&"e6".to_string()));
    assert!(!recent.contains(&"e1".to_string()) || created("e1") == created("e4"));

    // By parent: none of these has one.
    assert!(
        list(ExecutionFilter {
            parent_id: Some("e1".into()),
            ..all.clone()
        })
        .await
        .is_empty()
    );

    // Paging with `before`.
    let mut got = Vec::new();
    let mut before = None;
    loop {
        let page = list(ExecutionFilter {
            before: before.clone(),
            limit: 4,
            ..Default::default()
        })
        .await;
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        before = Some(last.clone());
        got.extend(page);
    }
    assert_eq!(got, ["e6", "e5", "e4", "e3", "e2", "e1"]);
    assert_eq!(
        list(ExecutionFilter {
            before: Some("e4".into()),
            actor: Some("token:bob".into()),
            ..all.clone()
        })
        .await,
        ["e2"]
    );

    // Counts come along; per-host detail does not.
    let listed = s.list_executions(&all).await.unwrap();
    let e2 = listed.iter().find(|e| e.id == "e2").unwrap();
    assert_eq!(e2.status, ExecutionStatus::Succeeded);
    assert_eq!(
        e2.counts,
        TargetCounts {
            total: 2,
            ok: 2,
            ..Default::default()
        }
    );
    assert!(e2.targets.is_empty());
    let e3 = listed.iter().find(|e| e.id == "e3").unwrap();
    assert_eq!(e3.counts.cancelled, 2);
    assert_eq!(e3.status, ExecutionStatus::Cancelled);
    let e1 = listed.iter().find(|e| e.id == "e1").unwrap();
    assert_eq!(e1.counts.pending, 2);
    // get_execution agrees on the counts.
    assert_eq!(execution(s, "e2").await.counts, e2.counts);
    assert_eq!(execution(s, "e3").await.counts, e3.counts);
}

async fn list_output_order_and_cursor(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    s.create_execution(&new_execution("e1", &hosts, None, None))
        .await
        .unwrap();
    let d = s.dispatch("e1").await.unwrap();
    let (a, b) = (&hosts[0].id, &hosts[1].id);
    let (ca, cb) = (command_for(&d.dispatched, a), command_for(&d.dispatched, b));
    // Another execution's output must not show.
    let (ho, co) = one_running(s, "e-other", "w0").await;
    s.append_output(&co, &ho, &[chunk(0, "other")])
        .await
        .unwrap();

    // Interleaved arrival across hosts.
    let mut want = Vec::new();
    for i in 0..5u64 {
        let (h, c, name) = if i % 2 == 0 {
            (a, &ca, "w0")
        } else {
            (b, &cb, "w1")
        };
        let seq = i / 2;
        s.append_output(c, h, &[chunk(seq, &format!("{name}-{i}"))])
            .await
            .unwrap()
            .unwrap();
        want.push((h.clone(), name.to_string(), seq, format!("{name}-{i}")));
    }
    let all = s.list_output("e1", 0, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|(_, o)| (
                o.host_id.clone(),
                o.host_name.clone(),
                o.seq,
                o.data.clone()
            ))
            .collect::<Vec<_>>(),
        want
    );
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "row ids increase");

    // Paging by cursor gives the same.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = s.list_output("e1", after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some((last, _)) = page.last() else { break };
        after = *last;
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert!(s.list_output("e1", all[4].0, 100).await.unwrap().is_empty());
    assert_eq!(s.list_output("e1", all[2].0, 100).await.unwrap(), all[3..]);
    assert!(s.list_output("nope", 0, 100).await.unwrap().is_empty());
    let other = s.list_output("e-other", 0, 100).await.unwrap();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].1.data, "other");
    assert_eq!(other[0].1.host_name, "w0");

    // Output notices carry the chunk; a reader can also catch up from the store.
    let mut rx = s.notifier().subscribe();
    s.append_output(&ca, a, &[chunk(3, "tail")]).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let Notice::Output {
        execution_id,
        chunk: Some(c),
    } = n
    else {
        panic!("expected an output notice, got {n:?}");
    };
    assert_eq!(execution_id, "e1");
    assert_eq!(c.data, "tail");
    assert!(
        eventually(Duration::from_secs(2), || async {
            s.list_output("e1", after, 10).await.unwrap().len() == 1
        })
        .await
    );
}

/// A follower paging with a cursor (`events --follow`, the rule engine) while several
/// controllers append must see every event: an id must never become visible after a
/// larger one was read.
async fn events_follower_sees_every_event(ctx: Ctx) {
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    // An enrollment appends two events (host.added, host.registered).
    const TOTAL: usize = WRITERS * EACH + WRITERS * EACH / 10;
    let other = ctx.connect_again().await;
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let st = if w % 2 == 0 {
            ctx.store.clone()
        } else {
            other.clone()
        };
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                if i % 10 == 0 {
                    // A bigger transaction with its event at the end.
                    st.enroll_host(
                        &format!("h-{w}-{i}"),
                        &format!("n-{w}-{i}"),
                        &labels(&[]),
                        &facts("x"),
                        credential(&format!("c-{w}-{i}")),
                    )
                    .await
                    .unwrap();
                } else {
                    ids.push(
                        st.append_event(NewEvent::new("test.load", "w", json!({ "w": w })))
                            .await
                            .unwrap(),
                    );
                }
            }
            ids
        }));
    }
    let follower = {
        let st = ctx.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = None;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while seen.len() < TOTAL && tokio::time::Instant::now() < deadline {
                let page = st
                    .list_events(&filter(None, EventOrder::Asc, cursor, 1_000))
                    .await
                    .unwrap();
                if let Some(last) = page.last() {
                    cursor = Some(last.id);
                }
                seen.extend(page.into_iter().map(|e| e.id));
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = follower.await.unwrap();
    let all: Vec<i64> = events_of(&ctx.store, "*")
        .await
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), TOTAL);
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    let missed: Vec<i64> = all
        .iter()
        .copied()
        .filter(|id| !seen_set.contains(id))
        .collect();
    assert!(
        missed.is_empty(),
        "the follower missed {} events: {missed:?}",
        missed.len()
    );
    other.close().await;
}

/// The same for stored output: a reader following an execution's output by row id while
/// its hosts report together must see every stored chunk.
async fn output_follower_sees_every_chunk(ctx: Ctx) {
    const HOSTS: usize = 6;
    const EACH: u64 = 40;
    let other = ctx.connect_again().await;
    let hosts = enroll_many(&ctx.store, "w", HOSTS).await;
    ctx.store
        .create_execution(&new_execution("e1", &hosts, None, None))
        .await
        .unwrap();
    let d = ctx.store.dispatch("e1").await.unwrap();
    let mut agents = Vec::new();
    for (i, dc) in d.dispatched.into_iter().enumerate() {
        let st = if i % 2 == 0 {
            ctx.store.clone()
        } else {
            other.clone()
        };
        agents.push(tokio::spawn(async move {
            for seq in 0..EACH {
                st.append_output(&dc.command_id, &dc.host_id, &[chunk(seq, "x\n")])
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
    }
    let follower = {
        let st = ctx.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while seen.len() < HOSTS * EACH as usize && tokio::time::Instant::now() < deadline {
                let page = st.list_output("e1", after, 1_000).await.unwrap();
                if let Some((last, _)) = page.last() {
                    after = *last;
                }
                seen.extend(page.into_iter().map(|(id, _)| id));
                tokio::task::yield_now().await;
            }
            seen
        })
    };
    for a in agents {
        a.await.unwrap();
    }
    let seen: BTreeSet<i64> = follower.await.unwrap().into_iter().collect();
    let all = ctx.store.list_output("e1", 0, 100_000).await.unwrap();
    assert_eq!(all.len(), HOSTS * EACH as usize);
    let missed: Vec<i64> = all
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| !seen.contains(id))
        .collect();
    assert!(
        missed.is_empty(),
        "the follower missed {} chunks: {missed:?}",
        missed.len()
    );
    other.close().await;
}

fn report(
    service: &str,
    index: u32,
    version: &str,
    state: LifecycleState,
    health: Health,
) -> InstanceReport {
    InstanceReport {
        service: service.to_string(),
        index,
        version: version.to_string(),
        state,
        health,
        spec_hash: "h1".to_string(),
        pid: Some(42),
        restarts: 0,
        drift: None,
    }
}

async fn instances_replace_emits_one_event_per_difference(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "w", 2).await;
    let (h, name) = (&hosts[0].id, &hosts[0].name);
    let web = report("web", 0, "1.0", LifecycleState::Running, Health::Healthy);
    let db = report("db", 0, "5", LifecycleState::Stopped, Health::Unknown);
    assert_eq!(
        s.replace_instances(h, name, &[web.clone(), db.clone()])
            .await
            .unwrap(),
        2
    );
    // The same report again changes nothing.
    assert_eq!(
        s.replace_instances(h, name, &[web.clone(), db.clone()])
            .await
            .unwrap(),
        0
    );
    assert_eq!(events_of(s, "instance.changed").await.len(), 2);
    // Health flips: one change. A pid-only change is stored but is no event.
    let mut web2 = web.clone();
    web2.health = Health::Unhealthy;
    let mut db2 = db.clone();
    db2.pid = Some(43);
    assert_eq!(
        s.replace_instances(h, name, &[web2.clone(), db2.clone()])
            .await
            .unwrap(),
        1
    );
    let changed = events_of(s, "instance.changed").await;
    let last = changed.last().unwrap();
    assert_eq!(last.payload["from"]["health"], "healthy");
    assert_eq!(last.payload["to"]["health"], "unhealthy");
    assert_eq!(last.actor, format!("agent:{name}"));
    // Drift is its own event, once per new drift text.
    let mut web3 = web2.clone();
    web3.drift = Some("process exited with code 1; restarting".into());
    web3.restarts = 1;
    s.replace_instances(h, name, &[web3.clone(), db2.clone()])
        .await
        .unwrap();
    s.replace_instances(h, name, &[web3.clone(), db2.clone()])
        .await
        .unwrap();
    let drifted = events_of(s, "instance.drifted").await;
    assert_eq!(drifted.len(), 1);
    assert_eq!(drifted[0].payload["service"], "web");
    // An instance that is gone: instance.removed; the other host is untouched.
    s.replace_instances(&hosts[1].id, &hosts[1].name, std::slice::from_ref(&web))
        .await
        .unwrap();
    s.replace_instances(h, name, &[web3.clone()]).await.unwrap();
    assert_eq!(events_of(s, "instance.removed").await.len(), 1);
    let live = s.list_instances().await.unwrap();
    assert_eq!(live.len(), 2);
    assert!(
        live.iter()
            .any(|r| r.host_name == hosts[1].name && r.report == web)
    );
    assert!(
        live.iter()
            .any(|r| r.host_name == *name && r.report == web3)
    );
}

async fn model_versions_are_numbered_and_kept(ctx: Ctx) {
    let s = &ctx.store;
    assert!(s.current_model_version().await.unwrap().is_none());
    let files = vec![StoredFile {
        path: "web.yaml".into(),
        text: "kind: service\n".into(),
    }];
    let v1 = s
        .add_model_version("hash1", "alice", "first", &files)
        .await
        .unwrap();
    let v2 = s
        .add_model_version("hash2", "bob", "second", &[])
        .await
        .unwrap();
    assert!(v2.id > v1.id);
    assert_eq!(s.current_model_version().await.unwrap().unwrap().id, v2.id);
    assert_eq!(
        s.get_model_version(v1.id).await.unwrap().unwrap().files,
        files
    );
    let list = s.list_model_versions(None, 10).await.unwrap();
    assert_eq!(
        list.iter().map(|v| v.message.as_str()).collect::<Vec<_>>(),
        ["second", "first"]
    );
    assert!(
        list.iter().all(|v| v.files.is_empty()),
        "listings carry no files"
    );
    // Keyset pages: newest first, then those older than the cursor.
    let first_page = s.list_model_versions(None, 1).await.unwrap();
    assert_eq!(first_page.len(), 1);
    assert_eq!(first_page[0].id, v2.id);
    let next = s.list_model_versions(Some(v2.id), 10).await.unwrap();
    assert_eq!(next.iter().map(|v| v.id).collect::<Vec<_>>(), [v1.id]);
    assert!(
        s.list_model_versions(Some(v1.id), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let applied = events_of(s, "model.applied").await;
    assert_eq!(applied.len(), 2);
    assert_eq!(applied[0].actor, "alice");
}

async fn artifacts_are_recorded_once(ctx: Ctx) {
    let s = &ctx.store;
    let sha = "a".repeat(64);
    let (a, created) = s
        .record_artifact(&sha, 10, "web.tar.gz", "alice")
        .await
        .unwrap();
    assert!(created);
    assert_eq!(a.size, 10);
    let (b, created) = s
        .record_artifact(&sha, 10, "other-name.tar.gz", "bob")
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(b.uploaded_by, "alice", "first upload wins");
    assert_eq!(s.list_artifacts().await.unwrap().len(), 1);
    assert!(s.get_artifact(&"b".repeat(64)).await.unwrap().is_none());
    assert_eq!(events_of(s, "artifact.pushed").await.len(), 1);
}

// ---------------------------------------------------------------------------------------
// Inventory: provider hosts merged with enrolled agents, and every change recorded

mod inventory {
    suite!(
        inventory_sync_adds_changes_and_removes,
        inventory_merges_with_agent_by_name,
        inventory_merges_with_agent_by_instance_id_label,
        inventory_agent_enrolls_onto_missing_host,
        inventory_unlisted_host_with_agent_is_kept,
        inventory_forget_provider,
        inventory_provider_failure_keeps_hosts_stale,
        inventory_claim_provider_sync_once_until_due,
        inventory_history_survives_removal,
        inventory_drain_and_undrain,
        inventory_name_collision_between_providers,
        inventory_heartbeat_records_changes,
        inventory_sync_of_many_hosts,
    );
}

fn discovered(id: &str, name: &str, address: Option<&str>) -> DiscoveredHost {
    DiscoveredHost {
        id: id.to_string(),
        name: name.to_string(),
        address: address.map(str::to_string),
        region: Some("eu-west-1a".into()),
        labels: labels(&[("role", "provider-role"), ("team", "infra")]),
        attributes: labels(&[("instance_type", "t3.small")]),
    }
}

async fn host_named(s: &Store, name: &str) -> Host {
    s.get_host_by_name(name)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no host {name}"))
}

async fn inventory_sync_adds_changes_and_removes(ctx: Ctx) {
    let s = &ctx.store;
    let listed = vec![
        discovered("i-1", "web1", Some("10.0.0.1")),
        discovered("i-2", "web2", Some("10.0.0.2")),
    ];
    let o = s
        .sync_provider("aws", &listed, "provider:aws")
        .await
        .unwrap();
    assert_eq!(
        o,
        SyncOutcome {
            added: 2,
            changed: 0,
            removed: 0,
            unchanged: 0
        }
    );
    let h = host_named(s, "web1").await;
    assert_eq!(h.status, HostStatus::Missing);
    assert_eq!(h.provider.as_deref(), Some("aws"));
    assert_eq!(h.provider_id.as_deref(), Some("i-1"));
    assert_eq!(h.address.as_deref(), Some("10.0.0.1"));
    assert_eq!(h.region.as_deref(), Some("eu-west-1a"));
    assert_eq!(h.labels["team"], "infra");
    assert_eq!(h.attributes["instance_type"], "t3.small");
    assert!(!h.stale && !h.drained);
    let added = events_of(s, types::HOST_ADDED).await;
    assert_eq!(added.len(), 2);
    assert_eq!(added[0].actor, "provider:aws");
    assert_eq!(added[0].payload["provider"], "aws");
    let synced = events_of(s, types::PROVIDER_SYNCED).await;
    assert_eq!(synced.len(), 1);
    assert_eq!(synced[0].payload["added"], 2);
    let p = s.providers().await.unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!((p[0].status.as_str(), p[0].host_count), ("ok", 2));
    assert!(p[0].last_ok_at.is_some() && p[0].error.is_none());

    // The same list again writes nothing.
    let before = events_of(s, "*").await.len();
    let o = s
        .sync_provider("aws", &listed, "provider:aws")
        .await
        .unwrap();
    assert_eq!((o.added, o.changed, o.removed, o.unchanged), (0, 0, 0, 2));
    assert_eq!(events_of(s, "*").await.len(), before);
    assert_eq!(s.host_history("web1", None, 10).await.unwrap().len(), 1);

    // web1 moves and gets a label; web2 is gone.
    let mut moved = discovered("i-1", "web1-renamed", Some("10.0.9.9"));
    moved.labels.insert("zone".into(), "b".into());
    let o = s
        .sync_provider("aws", std::slice::from_ref(&moved), "provider:aws")
        .await
        .unwrap();
    assert_eq!((o.added, o.changed, o.removed, o.unchanged), (0, 1, 1, 0));
    let h2 = host_named(s, "web1").await;
    assert_eq!(h2.id, h.id, "a match keeps id and name");
    assert_eq!(h2.address.as_deref(), Some("10.0.9.9"));
    assert_eq!(h2.labels["zone"], "b");
    assert!(s.get_host_by_name("web2").await.unwrap().is_none());
    let changed = events_of(s, types::HOST_CHANGED).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].payload["host"], "web1");
    assert_eq!(changed[0].payload["host_id"], h.id);
    assert_eq!(changed[0].payload["provider"], "aws");
    assert_eq!(
        changed[0].payload["changes"]["address"],
        json!({ "from": "10.0.0.1", "to": "10.0.9.9" })
    );
    assert_eq!(
        changed[0].payload["changes"]["provider_labels.zone"],
        json!({ "from": null, "to": "b" })
    );
    let removed = events_of(s, types::HOST_REMOVED).await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].payload["host"], "web2");
    let history = s.host_history("web1", None, 10).await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
        ["changed", "added"]
    );
    assert_eq!(history[0].actor, "provider:aws");
    assert_eq!(history[0].changes["address"].to, Some(json!("10.0.9.9")));
    assert_eq!(history[1].changes["status"].to, Some(json!("missing")));
    assert_eq!(events_of(s, types::PROVIDER_SYNCED).await.len(), 2);
    assert_eq!(s.providers().await.unwrap()[0].host_count, 1);
}

async fn inventory_merges_with_agent_by_name(ctx: Ctx) {
    let s = &ctx.store;
    let agent = enroll(s, "web1").await; // agent label role=web
    let o = s
        .sync_provider(
            "aws",
            &[discovered("i-1", "web1", Some("10.0.0.1"))],
            "provider:aws",
        )
        .await
        .unwrap();
    assert_eq!((o.added, o.changed), (0, 1));
    let h = host_named(s, "web1").await;
    assert_eq!(h.id, agent.id);
    assert_eq!(h.status, HostStatus::Up);
    assert_eq!(h.provider_id.as_deref(), Some("i-1"));
    assert_eq!(
        h.labels["role"], "web",
        "agent labels override provider labels"
    );
    assert_eq!(h.labels["team"], "infra");
    assert_eq!(s.list_hosts().await.unwrap().len(), 1);
    // Matched once, it stays matched by provider id.
    let o = s
        .sync_provider(
            "aws",
            &[discovered("i-1", "web1", Some("10.0.0.1"))],
            "provider:aws",
        )
        .await
        .unwrap();
    assert_eq!((o.added, o.changed, o.unchanged), (0, 0, 1));
    let history = s.host_history(&agent.id, None, 10).await.unwrap();
    assert_eq!(history[0].kind, "changed");
    assert_eq!(history[0].changes["provider"].to, Some(json!("aws")));
    assert_eq!(history[1].kind, "added");
}

async fn inventory_merges_with_agent_by_instance_id_label(ctx: Ctx) {
    let s = &ctx.store;
    let agent = s
        .enroll_host(
            "h-agent",
            "agent-x",
            &labels(&[(INSTANCE_ID_LABEL, "i-9")]),
            &facts("agent-x"),
            credential("c-agent"),
        )
        .await
        .unwrap()
        .host;
    let o = s
        .sync_provider(
            "aws",
            &[discovered("i-9", "ip-10-0-0-9", Some("10.0.0.9"))],
            "provider:aws",
        )
        .await
        .unwrap();
    assert_eq!((o.added, o.changed), (0, 1));
    let h = host_named(s, "agent-x").await;
    assert_eq!(h.id, agent.id, "the agent's host, under the agent's name");
    assert_eq!(h.provider_id.as_deref(), Some("i-9"));
    assert_eq!(h.address.as_deref(), Some("10.0.0.9"));
    assert!(s.get_host_by_name("ip-10-0-0-9").await.unwrap().is_none());
    assert_eq!(s.list_hosts().await.unwrap().len(), 1);
}

async fn inventory_agent_enrolls_onto_missing_host(ctx: Ctx) {
    let s = &ctx.store;
    s.sync_provider(
        "aws",
        &[
            discovered("i-1", "web1", Some("10.0.0.1")),
            discovered("i-2", "web2", Some("10.0.0.2")),
        ],
        "provider:aws",
    )
    .await
    .unwrap();
    let missing = host_named(s, "web1").await;
    // The down monitor never marks a host without an agent down.
    assert!(
        s.mark_down_stale(now_ms() + 60_000)
            .await
            .unwrap()
            .is_empty()
    );
    let got = s
        .enroll_host(
            "h-new",
            "web1",
            &labels(&[("role", "web")]),
            &facts("web1"),
            credential("c1"),
        )
        .await
        .unwrap();
    assert!(!got.created);
    let h = got.host;
    assert_eq!(h.id, missing.id, "the provider's host gets its agent");
    assert_eq!(h.status, HostStatus::Up);
    assert_eq!(h.provider_id.as_deref(), Some("i-1"));
    assert_eq!(h.labels["role"], "web");
    assert_eq!(h.labels["team"], "infra");
    assert_eq!(h.facts, facts("web1"));
    assert!(h.enrolled_at >= missing.enrolled_at);
    let changed = events_of(s, types::HOST_CHANGED).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        changed[0].payload["changes"]["status"],
        json!({ "from": "missing", "to": "up" })
    );
    assert_eq!(changed[0].actor, "agent:web1");
    let history = s.host_history("web1", None, 10).await.unwrap();
    assert_eq!(history[0].kind, "changed");
    assert_eq!(history[0].changes["status"].from, Some(json!("missing")));
    assert_eq!(history[0].changes["status"].to, Some(json!("up")));
    assert!(
        events_of(s, types::HOST_ADDED).await.len() == 2,
        "no second added"
    );
    // Now it can go down; web2 still cannot.
    let down = s.mark_down_stale(now_ms() + 60_000).await.unwrap();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].name, "web1");
    assert_eq!(host_named(s, "web2").await.status, HostStatus::Missing);
    let history = s.host_history("web1", None, 1).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].kind, "down");
    // The next page starts below the cursor and goes back to where the host began.
    let all = s.host_history("web1", None, 100).await.unwrap();
    let older = s
        .host_history("web1", Some(history[0].id), 100)
        .await
        .unwrap();
    assert_eq!(older, all[1..], "the rest, in the same order");
}

async fn inventory_unlisted_host_with_agent_is_kept(ctx: Ctx) {
    let s = &ctx.store;
    s.sync_provider(
        "aws",
        &[
            discovered("i-1", "web1", Some("10.0.0.1")),
            discovered("i-2", "web2", None),
        ],
        "provider:aws",
    )
    .await
    .unwrap();
    enroll(s, "web1").await;
    let o = s.sync_provider("aws", &[], "provider:aws").await.unwrap();
    assert_eq!((o.added, o.changed, o.removed), (0, 1, 1));
    let h = host_named(s, "web1").await;
    assert_eq!(h.status, HostStatus::Up);
    assert_eq!(h.provider, None);
    assert_eq!(h.provider_id, None);
    assert_eq!(h.address, None);
    assert!(h.attributes.is_empty());
    assert_eq!(
        h.labels,
        labels(&[("role", "web")]),
        "the agent's labels remain"
    );
    assert!(s.get_host_by_name("web2").await.unwrap().is_none());
    let changed = events_of(s, types::HOST_CHANGED).await;
    let last = changed.last().unwrap();
    assert_eq!(
        last.payload["changes"]["provider"],
        json!({ "from": "aws", "to": null })
    );
    assert_eq!(events_of(s, types::HOST_REMOVED).await.len(), 1);
    // Listed again: matched by name, not added twice.
    let o = s
        .sync_provider("aws", &[discovered("i-1", "web1", None)], "provider:aws")
        .await
        .unwrap();
    assert_eq!((o.added, o.changed), (0, 1));
    assert_eq!(s.list_hosts().await.unwrap().len(), 1);
}

async fn inventory_forget_provider(ctx: Ctx) {
    let s = &ctx.store;
    s.sync_provider("aws", &[discovered("i-1", "a1", None)], "provider:aws")
        .await
        .unwrap();
    s.sync_provider(
        "old",
        &[discovered("o-1", "x1", None), discovered("o-2", "y1", None)],
        "provider:old",
    )
    .await
    .unwrap();
    enroll(s, "y1").await;
    let forgotten = s
        .forget_providers_except(&["aws".to_string()])
        .await
        .unwrap();
    assert_eq!(forgotten, ["old"]);
    assert!(s.get_host_by_name("x1").await.unwrap().is_none());
    let y = host_named(s, "y1").await;
    assert_eq!((y.provider, y.status), (None, HostStatus::Up));
    assert_eq!(host_named(s, "a1").await.provider.as_deref(), Some("aws"));
    let names: Vec<String> = s
        .providers()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["aws"]);
    let removed = events_of(s, types::HOST_REMOVED).await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].payload["host"], "x1");
    // Nothing left to forget.
    assert!(
        s.forget_providers_except(&["aws".to_string()])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn inventory_provider_failure_keeps_hosts_stale(ctx: Ctx) {
    let s = &ctx.store;
    let listed = [
        discovered("i-1", "web1", None),
        discovered("i-2", "web2", None),
    ];
    s.sync_provider("aws", &listed, "provider:aws")
        .await
        .unwrap();
    for _ in 0..3 {
        s.provider_failed("aws", "connection refused", "provider:aws")
            .await
            .unwrap();
    }
    let hosts = s.list_hosts().await.unwrap();
    assert_eq!(hosts.len(), 2, "a failed sync keeps every host");
    assert!(hosts.iter().all(|h| h.stale));
    let p = &s.providers().await.unwrap()[0];
    assert_eq!(p.status, "stale");
    assert_eq!(p.error.as_deref(), Some("connection refused"));
    assert_eq!(p.host_count, 2);
    assert!(p.last_attempt_at >= p.last_ok_at);
    let failed = events_of(s, types::PROVIDER_FAILED).await;
    assert_eq!(failed.len(), 1, "one event for a repeated error");
    assert_eq!(
        failed[0].payload,
        json!({ "provider": "aws", "error": "connection refused" })
    );
    s.provider_failed("aws", "403 forbidden", "provider:aws")
        .await
        .unwrap();
    assert_eq!(events_of(s, types::PROVIDER_FAILED).await.len(), 2);

    let o = s
        .sync_provider("aws", &listed, "provider:aws")
        .await
        .unwrap();
    assert_eq!(o.unchanged, 2);
    assert!(s.list_hosts().await.unwrap().iter().all(|h| !h.stale));
    let p = &s.providers().await.unwrap()[0];
    assert_eq!((p.status.as_str(), p.error.as_deref()), ("ok", None));
    assert_eq!(events_of(s, types::PROVIDER_RECOVERED).await.len(), 1);
    // Nothing changed in that sync: no provider.synced for it.
    assert_eq!(events_of(s, types::PROVIDER_SYNCED).await.len(), 1);
    s.sync_provider("aws", &listed, "provider:aws")
        .await
        .unwrap();
    assert_eq!(events_of(s, types::PROVIDER_RECOVERED).await.len(), 1);
    // A provider that never synced fails too.
    s.provider_failed("gcp", "no credentials", "provider:gcp")
        .await
        .unwrap();
    assert_eq!(events_of(s, types::PROVIDER_FAILED).await.len(), 3);
}

async fn inventory_claim_provider_sync_once_until_due(ctx: Ctx) {
    let s = &ctx.store;
    let other = ctx.connect_again().await;
    let every = Duration::from_secs(60);
    let now = now_ms();
    assert!(s.claim_provider_sync("aws", every, now).await.unwrap());
    assert!(!s.claim_provider_sync("aws", every, now).await.unwrap());
    assert!(
        !other
            .claim_provider_sync("aws", every, now + 59_999)
            .await
            .unwrap()
    );
    assert_eq!(s.providers().await.unwrap()[0].status, "pending");
    assert!(
        other
            .claim_provider_sync("aws", every, now + 60_000)
            .await
            .unwrap()
    );
    // Asked for: due at once.
    s.request_provider_sync("aws").await.unwrap();
    assert!(
        s.claim_provider_sync("aws", every, now + 60_001)
            .await
            .unwrap()
    );
    // Several controllers at the same instant: one wins.
    let at = now + 10 * 60_000;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let st = if i % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            st.claim_provider_sync("aws", every, at).await.unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
    other.close().await;
}

async fn inventory_history_survives_removal(ctx: Ctx) {
    let s = &ctx.store;
    s.sync_provider("aws", &[discovered("i-1", "tmp1", None)], "provider:aws")
        .await
        .unwrap();
    let id = host_named(s, "tmp1").await.id;
    s.sync_provider("aws", &[], "provider:aws").await.unwrap();
    assert!(s.get_host(&id).await.unwrap().is_none());
    for key in ["tmp1", id.as_str()] {
        let history = s.host_history(key, None, 10).await.unwrap();
        assert_eq!(
            history.iter().map(|c| c.kind.as_str()).collect::<Vec<_>>(),
            ["removed", "added"]
        );
        assert!(history[0].id > history[1].id);
        assert_eq!(history[0].host_id, id);
        assert_eq!(history[0].changes["provider"].from, Some(json!("aws")));
    }
    assert!(matches!(
        s.host_history("never-was", None, 10).await,
        Err(StoreError::NotFound(_))
    ));
    // An enrolled host's history starts with `added`.
    enroll(s, "fresh").await;
    assert_eq!(s.host_history("fresh", None, 10).await.unwrap().len(), 1);
}

async fn inventory_drain_and_undrain(ctx: Ctx) {
    let s = &ctx.store;
    let h = enroll(s, "web1").await;
    let d = s.set_host_drained("web1", true, "alice").await.unwrap();
    assert!(d.drained);
    assert!(host_named(s, "web1").await.drained);
    // Unchanged: no event.
    assert!(
        s.set_host_drained("web1", true, "alice")
            .await
            .unwrap()
            .drained
    );
    assert_eq!(events_of(s, types::HOST_DRAINED).await.len(), 1);
    let u = s.set_host_drained(&h.id, false, "bob").await.unwrap();
    assert!(!u.drained);
    let undrained = events_of(s, types::HOST_UNDRAINED).await;
    assert_eq!(undrained.len(), 1);
    assert_eq!(undrained[0].actor, "bob");
    assert_eq!(undrained[0].payload["host"], "web1");
    let history = s.host_history("web1", None, 2).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|c| (c.kind.as_str(), c.actor.as_str()))
            .collect::<Vec<_>>(),
        [("undrained", "bob"), ("drained", "alice")]
    );
    assert_eq!(history[1].changes["drained"].to, Some(json!(true)));
    assert!(matches!(
        s.set_host_drained("nope", true, "alice").await,
        Err(StoreError::NotFound(_))
    ));
}

async fn inventory_name_collision_between_providers(ctx: Ctx) {
    let s = &ctx.store;
    s.sync_provider("aws", &[discovered("a-1", "web1", None)], "provider:aws")
        .await
        .unwrap();
    let o = s
        .sync_provider("gcp", &[discovered("g-1", "web1", None)], "provider:gcp")
        .await
        .unwrap();
    assert_eq!(o.added, 1);
    assert_eq!(host_named(s, "web1").await.provider.as_deref(), Some("aws"));
    let g = host_named(s, "web1.gcp").await;
    assert_eq!(g.provider_id.as_deref(), Some("g-1"));
    // Both stay as they are.
    let o = s
        .sync_provider("gcp", &[discovered("g-1", "web1", None)], "provider:gcp")
        .await
        .unwrap();
    assert_eq!(o.unchanged, 1);
    s.sync_provider("aws", &[discovered("a-1", "web1", None)], "provider:aws")
        .await
        .unwrap();
    assert_eq!(s.list_hosts().await.unwrap().len(), 2);
    // One provider listing one name twice, and one id twice.
    let o = s
        .sync_provider(
            "dup",
            &[
                discovered("d-1", "db", None),
                discovered("d-2", "db", None),
                discovered("d-2", "other", None),
            ],
            "provider:dup",
        )
        .await
        .unwrap();
    assert_eq!(o.added, 2);
    assert_eq!(
        host_named(s, "db.dup").await.provider_id.as_deref(),
        Some("d-2")
    );
}

async fn inventory_heartbeat_records_changes(ctx: Ctx) {
    let s = &ctx.store;
    let h = enroll(s, "web1").await;
    let added = events_of(s, types::HOST_ADDED).await;
    assert_eq!(added.len(), 1);
    assert_eq!(added[0].payload["host"], "web1");
    // Same facts and labels: no history.
    s.heartbeat(
        &h.id,
        Some(&facts("web1")),
        Some(&labels(&[("role", "web")])),
    )
    .await
    .unwrap();
    assert_eq!(s.host_history("web1", None, 10).await.unwrap().len(), 1);
    assert!(events_of(s, types::HOST_CHANGED).await.is_empty());
    let mut f = facts("web1");
    f.cpus = 8;
    s.heartbeat(&h.id, Some(&f), Some(&labels(&[("role", "db")])))
        .await
        .unwrap();
    let history = s.host_history("web1", None, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].kind, "changed");
    assert_eq!(history[0].actor, "agent:web1");
    assert_eq!(
        history[0]
            .changes
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["facts.cpus", "labels.role"]
    );
    assert_eq!(history[0].changes["facts.cpus"].from, Some(json!(4)));
    let changed = events_of(s, types::HOST_CHANGED).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].payload["changes"]["labels.role"]["to"], "db");
    // Down and up again are recorded too.
    s.mark_down_stale(now_ms() + 1_000).await.unwrap();
    assert!(
        s.heartbeat(&h.id, None, None)
            .await
            .unwrap()
            .unwrap()
            .came_up
    );
    let kinds: Vec<String> = s
        .host_history("web1", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.kind)
        .collect();
    assert_eq!(kinds, ["up", "down", "changed", "added"]);
}

async fn inventory_sync_of_many_hosts(ctx: Ctx) {
    const N: usize = 10_000;
    let s = &ctx.store;
    let listed: Vec<DiscoveredHost> = (0..N)
        .map(|i| discovered(&format!("i-{i}"), &format!("node{i:05}"), None))
        .collect();
    let started = std::time::Instant::now();
    let o = s
        .sync_provider("big", &listed, "provider:big")
        .await
        .unwrap();
    let first = started.elapsed();
    assert_eq!(o.added, N as u64);
    let started = std::time::Instant::now();
    let o = s
        .sync_provider("big", &listed, "provider:big")
        .await
        .unwrap();
    let again = started.elapsed();
    assert_eq!(o.unchanged, N as u64);
    assert_eq!(s.list_hosts().await.unwrap().len(), N);
    assert_eq!(events_of(s, types::HOST_ADDED).await.len(), N);
    let started = std::time::Instant::now();
    let o = s.sync_provider("big", &[], "provider:big").await.unwrap();
    let removal = started.elapsed();
    assert_eq!(o.removed, N as u64);
    eprintln!("sync of {N} hosts: add {first:?}, unchanged {again:?}, remove {removal:?}");
    // Batched work, not one statement per host and event (generous for debug builds).
    for t in [first, again, removal] {
        assert!(t < Duration::from_secs(20), "sync took {t:?}");
    }
}

/// Enrolls agents `(name, labels)`, then has provider `aws` list one more host,
/// `provider_host`, known to the provider only (its labels are the provider's, its
/// status missing).
async fn enroll_labeled_and_one_provider_host(
    s: &Store,
    agents: &[(&str, &[(&str, &str)])],
    provider_host: &str,
) {
    for (name, pairs) in agents {
        s.enroll_host(
            &format!("host-{name}"),
            name,
            &labels(pairs),
            &facts(name),
            credential(&format!("cred-{name}")),
        )
        .await
        .unwrap();
    }
    s.sync_provider(
        "aws",
        &[discovered("i-1", provider_host, None)],
        "provider:aws",
    )
    .await
    .unwrap();
}

async fn hosts_prefilters_narrow_the_scan(ctx: Ctx) {
    let s = &ctx.store;
    let odd = r#"say "hi" \ 50%_off"#;
    enroll_labeled_and_one_provider_host(
        s,
        &[
            ("a1", &[("rack", "r07"), ("note", odd)]),
            ("a2", &[("rack", "r070")]),
            ("b1", &[]),
        ],
        "p1",
    )
    .await;
    let names = |hosts: Vec<Host>| hosts.into_iter().map(|h| h.name).collect::<Vec<_>>();
    // (selector, what the store returns, what the selector then keeps)
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("all", &["a1", "a2", "b1", "p1"], &["a1", "a2", "b1", "p1"]),
        ("label.rack=r07", &["a1"], &["a1"]),
        ("label.rack=r07*", &["a1", "a2"], &["a1", "a2"]),
        ("label.rack=*", &["a1", "a2"], &["a1", "a2"]),
        ("label.rack=*7", &["a1", "a2"], &["a1"]),
        (r#"label.note=say "hi" \ 50%_off"#, &["a1"], &["a1"]),
        ("label.note=say*", &["a1"], &["a1"]),
        ("label.note=50%*", &[], &[]),
        ("label.team=infra", &["p1"], &["p1"]),
        ("label.role=provider-*", &["p1"], &["p1"]),
        ("fact.status=missing", &["p1"], &["p1"]),
        ("fact.status=up,name=a*", &["a1", "a2"], &["a1", "a2"]),
        ("fact.status!=up", &["p1"], &["p1"]),
        ("fact.provider=aws", &["p1"], &["p1"]),
        ("fact.region=eu-west-1a", &["p1"], &["p1"]),
        // Agents have no provider or region: a negated term keeps them (NULL passes).
        (
            "fact.provider!=aws",
            &["a1", "a2", "b1"],
            &["a1", "a2", "b1"],
        ),
        (
            "fact.region!=us-east-1",
            &["a1", "a2", "b1", "p1"],
            &["a1", "a2", "b1", "p1"],
        ),
        ("fact.address!=x,fact.status=missing", &["p1"], &["p1"]),
        // Text facts: the provider-only host has none, and `*` matches its empty ones.
        ("fact.os=linux", &["a1", "a2", "b1"], &["a1", "a2", "b1"]),
        // `"a` also starts the keys `"arch"` and `"agent_version"`: a necessary
        // condition, not a sufficient one; the selector decides.
        ("fact.hostname=a*", &["a1", "a2", "b1"], &["a1", "a2"]),
        ("fact.hostname=b1", &["b1"], &["b1"]),
        (
            "fact.os_release=debian 1?",
            &["a1", "a2", "b1"],
            &["a1", "a2", "b1"],
        ),
        ("fact.kernel=5.*", &[], &[]),
        (
            "fact.os=*",
            &["a1", "a2", "b1", "p1"],
            &["a1", "a2", "b1", "p1"],
        ),
        ("name=*1", &["a1", "b1", "p1"], &["a1", "b1", "p1"]),
        ("name=?1", &["a1", "b1", "p1"], &["a1", "b1", "p1"]),
        ("name=%", &[], &[]),
        (
            "label.rack!=r07",
            &["a1", "a2", "b1", "p1"],
            &["a2", "b1", "p1"],
        ),
    ];
    for (text, stored, kept) in cases {
        let selector = drover_core::selector::parse(text).unwrap();
        let read = s.list_hosts_where(&selector.prefilters()).await.unwrap();
        let matched: Vec<Host> = read
            .iter()
            .filter(|h| selector.matches(*h))
            .cloned()
            .collect();
        assert_eq!(names(read), *stored, "store rows for `{text}`");
        assert_eq!(names(matched), *kept, "matches for `{text}`");
    }
    // Paged with a cursor, the same prefilters apply.
    let pre = drover_core::selector::parse("name=*1")
        .unwrap()
        .prefilters();
    let page = s.list_hosts_page(Some("a1"), 1, &pre).await.unwrap();
    assert_eq!(names(page), ["b1"]);
    let page = s.list_hosts_page(Some("b1"), 5, &pre).await.unwrap();
    assert_eq!(names(page), ["p1"]);
}

async fn hosts_page_and_instance_counts_per_host(ctx: Ctx) {
    let s = &ctx.store;
    let hosts = enroll_many(s, "pg", 5).await;
    let mut names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    names.sort();
    let page = |after: Option<String>, limit| async move {
        s.list_hosts_page(after.as_deref(), limit, &[])
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect::<Vec<_>>()
    };
    // Pages follow the names, from after the cursor, and cover everything once.
    assert_eq!(page(None, 2).await, names[..2]);
    assert_eq!(page(Some(names[1].clone()), 2).await, names[2..4]);
    assert_eq!(page(Some(names[3].clone()), 2).await, names[4..]);
    assert!(page(Some(names[4].clone()), 2).await.is_empty());
    assert_eq!(page(Some(String::new()), 100).await, names);
    // By number: offset and limit.
    let at = |offset, limit| async move {
        s.list_hosts_at(offset, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(at(0, 2).await, names[..2]);
    assert_eq!(at(3, 10).await, names[3..]);
    assert!(at(5, 10).await.is_empty());
    let counts = s.host_status_counts().await.unwrap();
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 5);
    let full = s.list_hosts_page(None, 100, &[]).await.unwrap();
    assert_eq!(
        full,
        s.list_hosts().await.unwrap(),
        "same rows as the full list"
    );

    // Counts: only the hosts asked about, and none for a host without instances.
    let web = report("web", 0, "1.0", LifecycleState::Running, Health::Healthy);
    let web1 = report("web", 1, "1.0", LifecycleState::Running, Health::Healthy);
    let db = report("db", 0, "5", LifecycleState::Running, Health::Healthy);
    s.replace_instances(
        &hosts[0].id,
        &hosts[0].name,
        &[web.clone(), web1.clone(), db.clone()],
    )
    .await
    .unwrap();
    s.replace_instances(&hosts[1].id, &hosts[1].name, std::slice::from_ref(&db))
        .await
        .unwrap();
    let ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    let counts = s.instance_counts(&ids).await.unwrap();
    assert_eq!(counts.get(&hosts[0].id), Some(&3));
    assert_eq!(counts.get(&hosts[1].id), Some(&1));
    assert_eq!(counts.len(), 2, "{counts:?}");
    let counts = s.instance_counts(&ids[1..]).await.unwrap();
    assert_eq!(counts.len(), 1);
    assert!(s.instance_counts(&[]).await.unwrap().is_empty());

    // One host's instances, by service and index.
    let mine = s.host_instances(&hosts[0].id).await.unwrap();
    let got: Vec<(String, u32)> = mine
        .iter()
        .map(|r| (r.report.service.clone(), r.report.index))
        .collect();
    assert_eq!(
        got,
        [("db".into(), 0), ("web".into(), 0), ("web".into(), 1)]
    );
    assert!(mine.iter().all(|r| r.host_name == hosts[0].name));
    assert!(s.host_instances(&hosts[2].id).await.unwrap().is_empty());
}

async fn instances_kv_and_artifacts_page_from_a_cursor(ctx: Ctx) {
    use drover_store::{InstanceQuery, KvQuery, KvWrite};
    let s = &ctx.store;
    let hosts = enroll_many(s, "pi", 2).await;
    let up = |svc: &str, i| report(svc, i, "1.0", LifecycleState::Running, Health::Healthy);
    let gone = report("web", 2, "1.0", LifecycleState::None, Health::Unknown);
    for h in &hosts {
        s.replace_instances(
            &h.id,
            &h.name,
            &[up("web", 0), up("web", 1), up("db", 0), gone.clone()],
        )
        .await
        .unwrap();
    }
    // Instances: by host name, service, index; a walk of pages of 3 visits all 8 once.
    let mut names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
    names.sort();
    let mut walked: Vec<(String, String, u32)> = Vec::new();
    loop {
        let last = walked.last().cloned();
        let query = InstanceQuery {
            host: None,
            service: None,
            after: last.as_ref().map(|(h, s, i)| (h.as_str(), s.as_str(), *i)),
            limit: 3,
        };
        let page = s.instances_page(&query).await.unwrap();
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        walked.extend(
            page.into_iter()
                .map(|r| (r.host_name, r.report.service, r.report.index)),
        );
    }
    let mut expected = Vec::new();
    for h in &names {
        for (svc, i) in [("db", 0), ("web", 0), ("web", 1), ("web", 2)] {
            expected.push((h.to_string(), svc.to_string(), i));
        }
    }
    assert_eq!(walked, expected);
    let only = InstanceQuery {
        host: Some(names[1]),
        service: Some("web"),
        after: Some((names[1], "web", 0)),
        limit: 10,
    };
    let rows = s.instances_page(&only).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.report.index).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // Live counts leave out instances in state `none`.
    let ids: Vec<String> = hosts.iter().map(|h| h.id.clone()).collect();
    let counts = s.instance_counts(&ids).await.unwrap();
    assert_eq!(counts.get(&hosts[0].id), Some(&3));

    // The datastore's version moves with every change, and only then.
    let v0 = s.kv_version().await.unwrap();
    let w = KvWrite {
        scope: "system".into(),
        name: "short".into(),
        value: "v".into(),
        secret: false,
        expires_at: Some(now_ms() - 1),
    };
    s.kv_set(&w, "test").await.unwrap();
    assert_eq!(s.kv_version().await.unwrap(), v0 + 1, "set");
    assert_eq!(s.kv_expire().await.unwrap(), 1);
    assert_eq!(s.kv_version().await.unwrap(), v0 + 2, "expired");
    assert_eq!(s.kv_expire().await.unwrap(), 0);
    assert!(!s.kv_delete("system", "short", "test").await.unwrap());
    assert_eq!(s.kv_version().await.unwrap(), v0 + 2, "nothing changed");

    // Keys: by scope and name, only the scopes asked for, from after the cursor.
    for (scope, name) in [
        ("system", "a"),
        ("system", "b"),
        ("system", "c_1"),
        ("system", "c%2"),
        ("user:alice", "a"),
        ("user:bob", "a"),
    ] {
        let w = KvWrite {
            scope: scope.into(),
            name: name.into(),
            value: "v".into(),
            secret: false,
            expires_at: None,
        };
        s.kv_set(&w, "test").await.unwrap();
    }
    async fn key_names(s: &Store, q: KvQuery<'_>) -> Vec<String> {
        s.kv_page(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|k| format!("{}/{}", k.scope, k.name))
            .collect()
    }
    let keys = |q| key_names(s, q);
    let visible = vec!["system".to_string(), "user:alice".to_string()];
    let first = keys(KvQuery {
        scopes: Some(&visible),
        limit: Some(2),
        ..KvQuery::default()
    })
    .await;
    assert_eq!(first, vec!["system/a", "system/b"]);
    let mut rest = keys(KvQuery {
        scopes: Some(&visible),
        after: Some(("system", "b")),
        limit: Some(10),
        ..KvQuery::default()
    })
    .await;
    // How `_` and `%` sort against each other is the database collation's business.
    rest.sort();
    assert_eq!(
        rest,
        vec!["system/c%2", "system/c_1", "user:alice/a"],
        "bob's key is not visible"
    );
    // `_` and `%` in a prefix are literal.
    let prefixed = keys(KvQuery {
        prefix: "c_",
        ..KvQuery::default()
    })
    .await;
    assert_eq!(prefixed, vec!["system/c_1"]);
    assert!(
        keys(KvQuery {
            scopes: Some(&[]),
            ..KvQuery::default()
        })
        .await
        .is_empty()
    );

    // Artifacts: newest first, then by digest; the cursor is (created_at, digest).
    for c in ['a', 'b', 'c'] {
        s.record_artifact(&c.to_string().repeat(64), 1, "x.tar.gz", "t")
            .await
            .unwrap();
    }
    let all = s.list_artifacts().await.unwrap();
    let mut paged = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = s
            .artifacts_page(after.as_ref().map(|(ms, sha)| (*ms, sha.as_str())), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some((last.created_at.timestamp_millis(), last.sha256.clone()));
        paged.extend(page);
    }
    assert_eq!(paged, all);
    assert_eq!(paged.len(), 3);
}

async fn host_labels_and_hosts_by_name(ctx: Ctx) {
    let s = &ctx.store;
    enroll_labeled_and_one_provider_host(
        s,
        &[
            ("b", &[("rack", "r1")]),
            ("a", &[("rack", "r2"), ("role", "web")]),
        ],
        "p",
    )
    .await;
    let all = s.host_labels_where(&[]).await.unwrap();
    let names: Vec<&str> = all.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "p"]);
    assert_eq!(all[0].labels.get("role").map(String::as_str), Some("web"));
    assert_eq!(all[2].labels.get("team").map(String::as_str), Some("infra"));
    let pre = drover_core::selector::parse("label.rack=r1")
        .unwrap()
        .prefilters();
    let r1 = s.host_labels_where(&pre).await.unwrap();
    assert_eq!(r1.len(), 1);
    assert_eq!(r1[0].name, "b");
    // Whole rows for chosen names, by name; unknown names are left out.
    let rows = s
        .hosts_named(&["p".into(), "nope".into(), "a".into()])
        .await
        .unwrap();
    let names: Vec<&str> = rows.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["a", "p"]);
    assert_eq!(
        rows,
        vec![host_named(s, "a").await, host_named(s, "p").await]
    );
    assert!(s.hosts_named(&[]).await.unwrap().is_empty());
}
