//! The dashboard's executions: the list (filters, paging, bad filters), and the detail
//! page's controls (cancel, rerun, pause and resume of a workflow with its tasks), each
//! posted as a form with its CSRF token, refused to viewers. A real controller and
//! agent; the last test drives Debian's chromium through chromedriver (missing ones
//! fail the test, never skip it).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::web::*;
use common::{Controller, Db, wait_until};
use thirtyfour::prelude::*;

/// `(id, kind, status)` of each execution row of a list page.
fn rows(html: &str) -> Vec<(String, String, String)> {
    let attr = |tag: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let at = tag.find(&key).expect(name) + key.len();
        tag[at..].split('"').next().expect("value").to_string()
    };
    html.split("<tr class=\"execution\"")
        .skip(1)
        .map(|t| {
            let tag = t.split('>').next().expect("tag");
            (
                attr(tag, "data-id"),
                attr(tag, "data-kind"),
                attr(tag, "data-status"),
            )
        })
        .collect()
}

/// Posts a control form; returns the status and the `Location`.
async fn post_control(
    c: &reqwest::Client,
    url: &str,
    session: &str,
    id: &str,
    verb: &str,
    csrf: Option<&str>,
) -> (u16, String) {
    let body = match csrf {
        Some(t) => form(&[("csrf", t)]),
        None => String::new(),
    };
    let resp = c
        .post(format!("{url}/ui/executions/{id}/{verb}"))
        .header("cookie", session)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", url)
        .body(body)
        .send()
        .await
        .expect("POST control");
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (resp.status().as_u16(), location)
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

fn status_of(ctl: &Controller, id: &str) -> String {
    ctl.cli_json(&["executions", "get", id, "--json"])["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn executions_list_filters_pages_and_controls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let _agent = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    assert!(ctl.cli(&["run", "--", "true"]).status.success());
    assert!(!ctl.cli(&["run", "--", "false"]).status.success());
    let viewer = ctl.cli_json(&["tokens", "create", "looker", "--json"])["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let pack = dir.path().join("wf");
    write(
        &pack,
        &[
            ("pack.yaml", "ref: wf\nname: wf\nversion: 0.1.0\n"),
            (
                "actions/two.yaml",
                "name: two\nrunner_type: orquesta\nentry_point: workflows/two.yaml\n",
            ),
            (
                "actions/workflows/two.yaml",
                "version: 1.0\ntasks:\n  first:\n    action: core.local\n    input:\n      cmd: sleep 3\n    next:\n      - when: '{{ succeeded() }}'\n        do: second\n  second:\n    action: core.noop\n",
            ),
        ],
    );
    let out = ctl.cli(&["packs", "install", pack.to_str().expect("path")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let url = ctl.url.as_str();
        let api = |path: &str| {
            c.get(format!("{url}/api/v1{path}"))
                .bearer_auth(&ctl.admin_token)
                .send()
        };
        // 51 noop actions make a second page.
        for _ in 0..51 {
            let resp = c
                .post(format!("{url}/api/v1/actions/core.noop/run"))
                .bearer_auth(&ctl.admin_token)
                .json(&serde_json::json!({ "parameters": {} }))
                .send()
                .await
                .expect("run noop");
            assert_eq!(resp.status(), 201);
        }
        let admin = sign_in_to(&c, url, &ctl.admin_token, "/ui/executions").await;

        // The list: newest first, 50 a page, the next page from the cursor.
        let html = page(&c, url, &admin, "/ui/executions").await;
        let first = rows(&html);
        assert_eq!(first.len(), 50);
        assert!(first.iter().all(|(_, k, _)| k == "action"));
        assert!(html.contains("aria-current=\"page\">Executions"));
        let at = html.find("rel=\"next\" href=\"").expect("older link") + 17;
        let older = html[at..]
            .split('"')
            .next()
            .expect("href")
            .replace("&amp;", "&");
        let second = rows(&page(&c, url, &admin, &older).await);
        assert_eq!(second.len(), 3, "{second:?}");
        let mut seen: Vec<&String> = first.iter().chain(&second).map(|r| &r.0).collect();
        seen.dedup();
        assert_eq!(seen.len(), 53, "every execution once");

        // Filters, kept in the URL.
        let failed = rows(&page(&c, url, &admin, "/ui/executions?status=failed").await);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].1, "run");
        let runs = rows(&page(&c, url, &admin, "/ui/executions?kind=run&actor=admin").await);
        assert_eq!(runs.len(), 2);
        assert!(
            rows(&page(&c, url, &admin, "/ui/executions?kind=run&actor=nobody").await).is_empty()
        );
        assert_eq!(
            rows(&page(&c, url, &admin, "/ui/executions?kind=run&since=1h").await).len(),
            2
        );
        assert!(rows(&page(&c, url, &admin, "/ui/executions?until=1h").await).is_empty());
        // Bad filters: each named, nothing listed.
        let bad = page(
            &c,
            url,
            &admin,
            "/ui/executions?status=done&kind=rn&since=soon",
        )
        .await;
        assert!(bad.contains("Status `done`: one of"), "{bad}");
        assert!(bad.contains("Kind `rn`: one of"));
        assert!(bad.contains("`soon` is not a time"));
        assert!(rows(&bad).is_empty());
        // The API has the same filters.
        assert_eq!(
            api("/executions?since=soon").await.expect("GET").status(),
            400
        );
        let future: serde_json::Value = api("/executions?since=2099-01-01T00:00:00Z")
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        assert!(future["items"].as_array().expect("items").is_empty());

        // A workflow: its tasks show, and it pauses and resumes from the page.
        let wf: serde_json::Value = c
            .post(format!("{url}/api/v1/actions/wf.two/run"))
            .bearer_auth(&ctl.admin_token)
            .json(&serde_json::json!({ "parameters": {} }))
            .send()
            .await
            .expect("run workflow")
            .json()
            .await
            .expect("JSON");
        let wf_id = wf["id"].as_str().expect("id").to_string();
        let detail = format!("/ui/executions/{wf_id}");
        // Pause shows once the workflow has started (its state is stored).
        let deadline = Instant::now() + Duration::from_secs(20);
        let html = loop {
            let html = page(&c, url, &admin, &detail).await;
            if html.contains("id=\"control-pause\"") {
                break html;
            }
            assert!(Instant::now() < deadline, "no pause control: {html}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            html.contains("<code>wf.two</code>"),
            "the heading names the action"
        );
        assert!(html.contains("id=\"control-cancel\""));
        let csrf = csrf_in(&html);
        // Without the token, nothing happens.
        let (code, _) = post_control(&c, url, &admin, &wf_id, "pause", None).await;
        assert_eq!(code, 403);
        let (code, to) = post_control(&c, url, &admin, &wf_id, "pause", Some(&csrf)).await;
        assert_eq!((code, to.as_str()), (303, detail.as_str()));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let html = page(&c, url, &admin, &detail).await;
            if html.contains("id=\"control-resume\"") {
                assert!(html.contains("data-task=\"first\""), "{html}");
                break;
            }
            assert!(Instant::now() < deadline, "never paused: {html}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (code, _) = post_control(&c, url, &admin, &wf_id, "resume", Some(&csrf)).await;
        assert_eq!(code, 303);
        wait_until(Duration::from_secs(30), "the workflow finished", || {
            status_of(&ctl, &wf_id) == "succeeded"
        });
        let html = page(&c, url, &admin, &detail).await;
        assert!(html.contains("data-task=\"first\"") && html.contains("data-task=\"second\""));
        assert!(html.contains("id=\"action-result\""));
        assert!(
            html.contains("id=\"control-rerun\""),
            "a finished workflow can run again"
        );
        assert!(!html.contains("id=\"control-pause\"") && !html.contains("id=\"control-cancel\""));
        let tasks: serde_json::Value = api(&format!("/executions?parent={wf_id}"))
            .await
            .expect("GET")
            .json()
            .await
            .expect("JSON");
        assert_eq!(tasks["items"].as_array().expect("items").len(), 2);

        // A viewer sees no control and cannot cancel, even with its own token.
        let out = ctl.cli(&["actions", "run", "core.local", "cmd=sleep 30", "--async"]);
        let long = String::from_utf8_lossy(&out.stdout).trim().to_string();
        wait_until(Duration::from_secs(10), "running", || {
            status_of(&ctl, &long) == "running"
        });
        let look = sign_in_to(&c, url, &viewer, "/ui/executions").await;
        let html = page(&c, url, &look, &format!("/ui/executions/{long}")).await;
        assert!(!html.contains("id=\"control-"), "no controls for a viewer");
        let viewer_csrf = csrf_in(&html);
        let (code, _) = post_control(&c, url, &look, &long, "cancel", Some(&viewer_csrf)).await;
        assert_eq!(code, 403);
        assert_eq!(status_of(&ctl, &long), "running");
        // An unknown verb is a 404 and changes nothing.
        let (code, _) = post_control(&c, url, &admin, &long, "explode", Some(&csrf)).await;
        assert_eq!(code, 404);
        // The operator cancels it.
        let (code, _) = post_control(&c, url, &admin, &long, "cancel", Some(&csrf)).await;
        assert_eq!(code, 303);
        wait_until(Duration::from_secs(20), "cancelled", || {
            status_of(&ctl, &long) == "cancelled"
        });

        // Rerun a finished run: a new execution, and the page goes there.
        let run_id = &runs
            .iter()
            .find(|r| r.2 == "succeeded")
            .expect("the `true` run")
            .0;
        let (code, to) = post_control(&c, url, &admin, run_id, "rerun", Some(&csrf)).await;
        assert_eq!(code, 303);
        let new_id = to.trim_start_matches("/ui/executions/").to_string();
        assert!(!new_id.is_empty() && new_id != *run_id, "{to}");
        wait_until(Duration::from_secs(20), "the rerun finished", || {
            status_of(&ctl, &new_id) == "succeeded"
        });
    });
}

#[test]
fn cancel_and_rerun_by_click() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let _agent = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let profile = tempfile::tempdir().expect("profile dir");
    let rt = runtime();
    let d = rt.block_on(browser(&driver, profile.path()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            let url = ctl.url.as_str();
            d.goto(format!("{url}/ui/executions")).await.expect("goto");
            type_in(&d, By::Id("token"), &format!("{}\n", ctl.admin_token)).await;
            wait_for(Duration::from_secs(20), "the executions page", || async {
                (path_of(&d).await == "/ui/executions").then_some(())
            })
            .await;
            let out = ctl.cli(&["run", "--on", "name=web-1", "--", "true"]);
            assert!(out.status.success());
            let out = ctl.cli(&["actions", "run", "core.local", "cmd=sleep 30", "--async"]);
            let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
            // The first page follows new executions without a reload.
            let row = format!("tr.execution[data-id='{id}']");
            wait_for(
                Duration::from_secs(20),
                "the new execution listed",
                || async { attr_of(&d, &row, "data-status").await },
            )
            .await;
            shot(&d, "executions").await;
            click(&d, By::Css(format!("{row} a"))).await;
            wait_for(Duration::from_secs(20), "the running action", || async {
                (attr_of(&d, "#execution-live", "data-status")
                    .await
                    .as_deref()
                    == Some("running"))
                .then_some(())
            })
            .await;
            click(&d, By::Id("control-cancel")).await;
            wait_for(Duration::from_secs(20), "cancelled", || async {
                (attr_of(&d, "#execution-live", "data-status")
                    .await
                    .as_deref()
                    == Some("cancelled"))
                .then_some(())
            })
            .await;
            assert!(
                d.find(By::Id("control-cancel")).await.is_err(),
                "no cancel on a final execution"
            );
            click(&d, By::Id("control-rerun")).await;
            wait_for(Duration::from_secs(20), "the rerun's page", || async {
                let p = path_of(&d).await;
                (p.starts_with("/ui/executions/") && !p.ends_with(&id)).then_some(())
            })
            .await;
            shot(&d, "execution-action").await;
        })
    }));
    let _ = rt.block_on(d.quit());
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
