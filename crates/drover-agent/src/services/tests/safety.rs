//! Artifacts that must not be used: wrong digest, hostile paths and links; and the
//! credential that goes to the controller's artifact store only.

use std::sync::Mutex;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get as get_route;
use drover_proto::deploy::{LifecycleState, Transition};

use super::*;
use crate::services::ControllerAccess;

fn assert_nothing_installed(state: &Path, service: &str) {
    let releases = instance_dir(state, service).join("releases");
    let left: Vec<_> = std::fs::read_dir(&releases)
        .map(|d| d.map(|e| e.expect("e").file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in releases/: {left:?}");
}

#[tokio::test]
async fn a_digest_mismatch_is_refused_before_unpacking() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let mut a = loop_artifact(work.path(), "1");
    let actual = a.sha256.clone();
    let expected = "0".repeat(64);
    a.sha256 = expected.clone();
    let s = spec("bad", "1", a);
    let d = step(&m, &s, Transition::Install).await;
    let msg = error_message(&d);
    assert!(
        msg.contains(&format!("expected {expected}, got {actual}")),
        "{msg}"
    );
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    assert_nothing_installed(state.path(), "bad");
    assert!(report(&m, "bad").is_none());
    let cached = std::fs::read_dir(state.path().join("artifacts"))
        .expect("ls")
        .count();
    assert_eq!(cached, 0, "a refused artifact stays out of the cache");
    m.detach().await;
}

#[tokio::test]
async fn hostile_archives_are_refused_whole() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let outside = work.path().join("evil");
    let cases: Vec<(&str, Vec<Member<'_>>, &str)> = vec![
        (
            "dotdot",
            vec![
                Member::File("bin/server", LOOP_SERVER, 0o755),
                Member::RawFile("../../../evil", "owned"),
            ],
            "escapes the release directory",
        ),
        (
            "absolute",
            vec![Member::RawFile("/tmp/drover-evil-absolute", "owned")],
            "escapes the release directory",
        ),
        (
            "symlink",
            vec![
                Member::Link("etc", "/etc"),
                Member::File("bin/server", LOOP_SERVER, 0o755),
            ],
            "is a symlink to \"/etc\", outside the release directory",
        ),
        (
            "relative-symlink",
            vec![Member::Link("up", "../../..")],
            "outside the release directory",
        ),
    ];
    for (name, members, want) in cases {
        let a = artifact(work.path(), &format!("{name}.tar.gz"), &members);
        let s = spec(name, "1", a);
        let d = step(&m, &s, Transition::Install).await;
        let msg = error_message(&d);
        assert!(msg.contains(want), "{name}: {msg}");
        assert_nothing_installed(state.path(), name);
        assert!(report(&m, name).is_none(), "{name} reported");
    }
    assert!(!outside.exists());
    assert!(!Path::new("/tmp/drover-evil-absolute").exists());
    m.detach().await;
}

#[tokio::test]
async fn missing_and_unsupported_sources_are_errors() {
    let state = tempfile::tempdir().expect("tempdir");
    let m = ServiceManager::open(state.path(), fast()).expect("open");
    let mut a = ArtifactRef {
        url: "file:///nonexistent/drover/a.tar.gz".into(),
        sha256: "a".repeat(64),
    };
    let d = step(&m, &spec("m", "1", a.clone()), Transition::Install).await;
    let msg = error_message(&d);
    assert!(
        msg.contains("cannot read artifact file:///nonexistent"),
        "{msg}"
    );
    a.url = "ftp://host/a.tar.gz".into();
    let d = step(&m, &spec("m", "1", a), Transition::Install).await;
    assert!(error_message(&d).contains("unsupported scheme \"ftp\""));
    m.detach().await;
}

#[derive(Default)]
struct Seen {
    auth: Mutex<Vec<Option<String>>>,
    body: Vec<u8>,
}

async fn serve(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> Vec<u8> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    seen.auth.lock().expect("lock").push(auth);
    seen.body.clone()
}

async fn artifact_server(body: Vec<u8>) -> (String, Arc<Seen>) {
    let seen = Arc::new(Seen {
        auth: Mutex::new(Vec::new()),
        body,
    });
    let app = axum::Router::new()
        .route("/api/v1/artifacts/{sha}", get_route(serve))
        .route("/files/{name}", get_route(serve))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn http_artifacts_carry_the_credential_only_to_the_controller() {
    let state = tempfile::tempdir().expect("tempdir");
    let work = tempfile::tempdir().expect("tempdir");
    let local = loop_artifact(work.path(), "1");
    let body = std::fs::read(work.path().join("loop-1.tar.gz")).expect("read");
    let (controller, at_controller) = artifact_server(body).await;
    let options = Options {
        controller: Some(ControllerAccess {
            base: format!("{controller}/"),
            credential: "agent-cred".into(),
        }),
        ..fast()
    };
    let m = ServiceManager::open(state.path(), options).expect("open");
    let a = ArtifactRef {
        url: format!("{controller}/api/v1/artifacts/{}", local.sha256),
        sha256: local.sha256.clone(),
    };
    walk(&m, &spec("c", "1", a), &[Transition::Install]).await;
    assert_eq!(
        *at_controller.auth.lock().expect("lock"),
        vec![Some("Bearer agent-cred".to_string())]
    );
    // Cached now: a second instance of the same artifact fetches nothing.
    let mut again = spec(
        "c",
        "1",
        ArtifactRef {
            url: format!("{controller}/api/v1/artifacts/{}", local.sha256),
            sha256: local.sha256.clone(),
        },
    );
    again.index = 1;
    walk(&m, &again, &[Transition::Install]).await;
    assert_eq!(at_controller.auth.lock().expect("lock").len(), 1);

    // Elsewhere: no credential. Another digest so it is not cached.
    let other = http_artifact(work.path(), "2");
    let (elsewhere, at_elsewhere) =
        artifact_server(std::fs::read(work.path().join("http-2.tar.gz")).expect("read")).await;
    let a = ArtifactRef {
        url: format!("{elsewhere}/files/http-2.tar.gz"),
        sha256: other.sha256,
    };
    walk(&m, &spec("e", "2", a), &[Transition::Install]).await;
    assert_eq!(*at_elsewhere.auth.lock().expect("lock"), vec![None]);
    assert_eq!(
        report(&m, "e").map(|r| r.state),
        Some(LifecycleState::Installed)
    );

    // An HTTP error is named.
    let missing = ArtifactRef {
        url: format!("{controller}/nothing-here.tar.gz"),
        sha256: "b".repeat(64),
    };
    let d = step(&m, &spec("n", "1", missing), Transition::Install).await;
    assert!(error_message(&d).contains("HTTP 404"), "{:?}", d.result);
    m.detach().await;
}
