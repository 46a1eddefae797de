//! The dashboard's model pages over plain HTTP, and one browser pass: two model versions
//! applied through the real CLI to a real agent; the versions list, one version's files,
//! the diff (file lines with + and -, and the services that changed), the plan preview
//! while a canary waits for promotion, promotion from the rollout's execution page, and
//! the preview in sync afterwards. Bad versions get 404 or a named error.

mod common;

use std::time::{Duration, Instant};

use common::web::*;
use common::{Controller, Db, text, write_sleeper_model};
use thirtyfour::prelude::*;

/// Waits until `path`'s page contains `needle`; returns that page.
async fn page_with(
    c: &reqwest::Client,
    url: &str,
    session: &str,
    path: &str,
    needle: &str,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let html = page(c, url, session, path).await;
        if html.contains(needle) {
            return html;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never showed {needle}: {html}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[test]
fn model_versions_diff_and_plan_preview() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let _agent = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    let sha = common::push_sleeper_release(&ctl, dir.path());
    // Version 1: one instance, deployed to the end.
    let m1 = dir.path().join("m1");
    write_sleeper_model(&m1, &sha, 1, 0, 1);
    let out = ctl.cli(&[
        "apply",
        "--yes",
        "-m",
        "first sleeper",
        m1.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);
    // Version 2: three, the first new one a canary that waits for promotion.
    let m2 = dir.path().join("m2");
    write_sleeper_model(&m2, &sha, 3, 1, 1);
    let out = ctl.cli(&[
        "apply",
        "--yes",
        "--no-wait",
        "-m",
        "three sleepers",
        m2.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out).1);

    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let url = ctl.url.as_str();
        let admin = sign_in_to(&c, url, &ctl.admin_token, "/ui/model").await;

        // Versions, newest first, with author and message; the newest is current.
        let html = page(&c, url, &admin, "/ui/model").await;
        let v2 = html.find("data-version=\"2\"").expect("version 2 listed");
        let v1 = html.find("data-version=\"1\"").expect("version 1 listed");
        assert!(v2 < v1, "newest first");
        assert!(html.contains("three sleepers") && html.contains("first sleeper"));
        assert!(html.contains("data-author=\"admin\""));
        assert!(html.contains("current</span>"));
        assert!(html.contains("href=\"/ui/model/diff?from=1&amp;to=2\""));

        // One version's files.
        let html = page(&c, url, &admin, "/ui/model/1").await;
        assert!(html.contains("sleeper.yaml") && html.contains("per_host: 1"));

        // The diff: the changed lines with their sign, and what that means.
        let html = page(&c, url, &admin, "/ui/model/diff?from=1&to=2").await;
        assert!(
            html.contains("<span class=\"del\">-placement: {hostclass: web, per_host: 1}</span>"),
            "{html}"
        );
        assert!(
            html.contains("<span class=\"add\">+placement: {hostclass: web, per_host: 3}</span>")
        );
        assert!(html.contains("<span class=\"add\">+  canary: 1</span>"));
        assert!(html.contains("data-part=\"services\""));
        assert!(html.contains("changed <code>sleeper</code>"));
        assert!(
            !html.contains("data-path=\"hostclasses.yaml\""),
            "unchanged files are left out"
        );
        // The default compares the two latest.
        assert!(
            page(&c, url, &admin, "/ui/model/diff")
                .await
                .contains("data-path=\"sleeper.yaml\"")
        );
        let same = page(&c, url, &admin, "/ui/model/diff?from=2&to=2").await;
        assert!(same.contains("id=\"no-model-change\"") && same.contains("id=\"no-file-change\""));

        // Bad versions: named, nothing compared; unknown ones are 404.
        let get = |path: &str| {
            c.get(format!("{url}{path}"))
                .header("cookie", &admin)
                .send()
        };
        let resp = get("/ui/model/diff?from=abc&to=2").await.expect("GET");
        assert_eq!(resp.status(), 422);
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("From: `abc` is not a version number"),
            "{body}"
        );
        let resp = get("/ui/model/diff?from=1&to=99").await.expect("GET");
        assert_eq!(resp.status(), 404);
        assert!(
            resp.text()
                .await
                .expect("body")
                .contains("no model version 99")
        );
        assert_eq!(get("/ui/model/99").await.expect("GET").status(), 404);
        assert_eq!(get("/ui/model/x1").await.expect("GET").status(), 404);

        // Older pages: the versions before a cursor, with a way back to the newest.
        let html = page(&c, url, &admin, "/ui/model?before=2").await;
        assert!(html.contains("data-version=\"1\"") && !html.contains("data-version=\"2\""));
        assert!(html.contains("href=\"/ui/model\">Newest"), "{html}");
        assert!(!html.contains("Older versions"), "version 1 is the oldest");
        let resp = get("/ui/model?before=x").await.expect("GET");
        assert_eq!(resp.status(), 400);
        assert!(resp.text().await.expect("body").contains("`before`"));

        // The plan preview while the canary waits: the third instance is still to
        // deploy (the canary's is done, the first was there before).
        let html = page_with(&c, url, &admin, "/ui/model/plan", "data-kind=\"deploy\"").await;
        assert!(
            html.contains("data-service=\"sleeper\" data-host=\"web-1\""),
            "{html}"
        );
        assert!(html.contains("version 2"));

        // Promote from the rollout's execution page, then the preview is in sync.
        let rollout: serde_json::Value = c
            .get(format!("{url}/api/v1/rollouts/latest"))
            .bearer_auth(&ctl.admin_token)
            .send()
            .await
            .expect("GET rollout")
            .json()
            .await
            .expect("JSON");
        let id = rollout["rollout"]["execution_id"]
            .as_str()
            .expect("id")
            .to_string();
        let exec_page = format!("/ui/executions/{id}");
        let html = page_with(&c, url, &admin, &exec_page, "id=\"control-promote\"").await;
        assert!(html.contains("data-state=\"awaiting-promotion\""));
        assert!(html.contains("id=\"control-abort\""));
        let csrf = csrf_in(&html);
        let resp = c
            .post(format!("{url}{exec_page}/promote"))
            .header("cookie", &admin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("csrf", &csrf)]))
            .send()
            .await
            .expect("POST promote");
        assert_eq!(resp.status(), 303);
        page_with(&c, url, &admin, "/ui/model/plan", "id=\"in-sync\"").await;
        // The finished rollout of the current version offers a roll back.
        page_with(&c, url, &admin, &exec_page, "id=\"control-rollback\"").await;
    });

    // In a browser: from the versions to a diff.
    let driver = start_chromedriver(&dir.path().join("chromedriver.log"));
    let profile = tempfile::tempdir().expect("profile dir");
    let d = rt.block_on(browser(&driver, profile.path()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            d.goto(format!("{}/ui/model", ctl.url)).await.expect("goto");
            type_in(&d, By::Id("token"), &format!("{}\n", ctl.admin_token)).await;
            wait_for(Duration::from_secs(20), "the model page", || async {
                (path_of(&d).await == "/ui/model").then_some(())
            })
            .await;
            shot(&d, "model").await;
            click(&d, By::LinkText("diff with 1")).await;
            wait_for(Duration::from_secs(20), "the diff page", || async {
                (path_of(&d).await == "/ui/model/diff").then_some(())
            })
            .await;
            assert!(d.find(By::Css("pre.diff .add")).await.is_ok());
            shot(&d, "model-diff").await;
            d.goto(format!("{}/ui/model/plan", ctl.url))
                .await
                .expect("goto");
            shot(&d, "model-plan").await;
        })
    }));
    let _ = rt.block_on(d.quit());
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
