//! The web dashboard, end to end: a real controller and agents, and Debian's chromium
//! driven through chromedriver (WebDriver). Missing chromium or chromedriver fails the
//! test, it never skips (`.ci/run` installs both). Screenshots of the main pages are
//! saved under `target/dashboard-screenshots/` as CI artifacts.
//!
//! The second test needs no browser: every page sets the CSP, and a state-changing
//! POST without its CSRF token is refused and changes nothing.

mod common;

use std::time::{Duration, Instant};

use common::web::*;
use common::{Controller, Db, Fleet};
use thirtyfour::prelude::*;

#[test]
fn dashboard_in_a_browser() {
    let mut fleet = Fleet::start(Db::Sqlite);
    let driver = start_chromedriver(&fleet.dir.path().join("chromedriver.log"));
    let profile = tempfile::tempdir().expect("profile dir");
    let url = fleet.ctl.url.clone();
    let admin = fleet.ctl.admin_token.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let d = rt.block_on(browser(&driver, profile.path()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(async {
            // Signed out, the fleet page sends to sign-in.
            d.goto(format!("{url}/ui/fleet")).await.expect("goto");
            assert_eq!(path_of(&d).await, "/ui/signin");

            // A wrong token shows an error and stays on the form.
            type_in(&d, By::Id("token"), "drover_api_not-a-real-token").await;
            click(&d, By::Css("form button[type=submit]")).await;
            let error = wait_for(Duration::from_secs(20), "the sign-in error", || async {
                d.find(By::Id("signin-error")).await.ok()?.text().await.ok()
            })
            .await;
            assert!(error.contains("refused"), "{error}");
            shot(&d, "signin-refused").await;
            assert_eq!(path_of(&d).await, "/ui/signin");

            // The right token lands on the fleet (keyboard only: Enter submits).
            type_in(&d, By::Id("token"), &format!("{admin}\n")).await;
            wait_for(Duration::from_secs(20), "the fleet page", || async {
                (path_of(&d).await == "/ui/fleet").then_some(())
            })
            .await;
            for host in ["web-1", "web-2", "db-1"] {
                let css = format!("tr[data-host='{host}']");
                let status = wait_for(Duration::from_secs(20), "host rows", || async {
                    attr_of(&d, &css, "data-status").await
                })
                .await;
                assert_eq!(status, "up", "{host}");
            }
            shot(&d, "fleet").await;
            // htmx loaded under the strict CSP, with eval off (from the meta config).
            let htmx = d
                .execute(
                    "return typeof htmx === 'object' && htmx.config.allowEval === false;",
                    Vec::new(),
                )
                .await
                .expect("ask htmx");
            assert_eq!(htmx.json(), &serde_json::json!(true), "htmx is not running");
            // Keyboard: the first Tab reaches the skip link.
            d.action_chain()
                .send_keys(Key::Tab)
                .perform()
                .await
                .expect("press Tab");
            let focused = d.active_element().await.expect("focused element");
            assert_eq!(
                focused.attr("href").await.expect("href").as_deref(),
                Some("#main"),
                "the skip link comes first"
            );

            // A marker in the window: a reload would lose it.
            d.execute("window.droverMarker = 'kept';", Vec::new())
                .await
                .expect("set marker");
            fleet.agent("db-1").kill9();
            let started = Instant::now();
            wait_for(Duration::from_secs(30), "db-1 turning red", || async {
                let status = attr_of(&d, "tr[data-host='db-1']", "data-status").await?;
                let class = attr_of(&d, "tr[data-host='db-1']", "class").await?;
                (status == "down" && class.contains("status-down")).then_some(())
            })
            .await;
            eprintln!("db-1 shown down {:?} after the kill", started.elapsed());
            let marker = d
                .execute("return window.droverMarker || null;", Vec::new())
                .await
                .expect("read marker");
            assert_eq!(
                marker.json(),
                &serde_json::json!("kept"),
                "the page reloaded instead of updating in place"
            );
            assert_eq!(
                attr_of(&d, "tr[data-host='web-1']", "data-status")
                    .await
                    .as_deref(),
                Some("up")
            );
            shot(&d, "fleet-db-1-down").await;
            d.set_window_rect(0, 0, 390, 844).await.expect("phone size");
            shot(&d, "fleet-phone").await;
            d.set_window_rect(0, 0, 1280, 900)
                .await
                .expect("laptop size");

            // Filter with a selector (kept in the URL), and a wrong one shows its column.
            type_in(&d, By::Id("selector"), "label.role=web\n").await;
            wait_for(Duration::from_secs(20), "the filtered view", || async {
                let url = d.current_url().await.ok()?;
                let rows = d.find_all(By::Css("tr.host")).await.ok()?;
                (url.query()
                    .is_some_and(|q| q.contains("selector=label.role%3Dweb"))
                    && rows.len() == 2)
                    .then_some(())
            })
            .await;
            assert!(d.find(By::Css("tr[data-host='db-1']")).await.is_err());
            d.goto(format!("{url}/ui/fleet?selector=nmae%3Dweb"))
                .await
                .expect("goto");
            let error = d
                .find(By::Id("selector-error"))
                .await
                .expect("selector error")
                .text()
                .await
                .expect("text");
            assert!(error.contains("column"), "{error}");
            d.goto(format!("{url}/ui/fleet?group=role"))
                .await
                .expect("goto");
            let groups = d.find_all(By::Css("tr.group")).await.expect("groups");
            assert_eq!(groups.len(), 2, "role=db and role=web");

            // The host page, reached by its link; run a command from it.
            click(&d, By::Css("tr[data-host='web-1'] a")).await;
            wait_for(Duration::from_secs(20), "the host page", || async {
                (path_of(&d).await == "/ui/hosts/web-1").then_some(())
            })
            .await;
            let facts = d
                .find(By::Css("dl.facts"))
                .await
                .expect("facts")
                .text()
                .await
                .expect("text");
            assert!(facts.contains("kernel"), "{facts}");
            shot(&d, "host").await;
            d.find(By::Id("command"))
                .await
                .expect("command field")
                .send_keys("echo dashboard-run-1; sleep 1; echo dashboard-run-2")
                .await
                .expect("type");
            click(&d, By::Css("form.run button[type=submit]")).await;
            let exec_path = wait_for(Duration::from_secs(20), "the execution page", || async {
                let p = path_of(&d).await;
                p.starts_with("/ui/executions/").then_some(p)
            })
            .await;
            let out = wait_for(Duration::from_secs(30), "the command's output", || async {
                let text = d
                    .find(By::Css("pre.out[data-host='web-1']"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                text.contains("dashboard-run-2").then_some(text)
            })
            .await;
            assert!(out.contains("dashboard-run-1"), "{out}");
            wait_for(
                Duration::from_secs(30),
                "the execution to succeed",
                || async {
                    let s = attr_of(&d, "#execution-live", "data-status").await?;
                    (s == "succeeded").then_some(())
                },
            )
            .await;
            shot(&d, "execution").await;
            let exec_id = exec_path.trim_start_matches("/ui/executions/").to_string();

            // The events page lists what was just done, newest first.
            click(&d, By::LinkText("Events")).await;
            wait_for(Duration::from_secs(20), "the events page", || async {
                (path_of(&d).await == "/ui/events").then_some(())
            })
            .await;
            let rows = d.find_all(By::Css("tr.event")).await.expect("rows");
            let mut types = Vec::new();
            for r in &rows {
                types.push(r.attr("data-type").await.ok().flatten().unwrap_or_default());
            }
            let table = d
                .find(By::Css("table.events"))
                .await
                .expect("table")
                .text()
                .await
                .expect("text");
            assert!(
                types.iter().any(|t| t == "execution.requested"),
                "{types:?}"
            );
            assert!(table.contains(&exec_id), "the run's events name {exec_id}");
            assert!(types.iter().any(|t| t == "auth.login"), "{types:?}");
            assert!(types.iter().any(|t| t == "auth.failed"), "{types:?}");
            assert!(types.iter().any(|t| t == "host.down"), "{types:?}");
            shot(&d, "events").await;
            // Filtered by type.
            d.goto(format!("{url}/ui/events?type=execution.*"))
                .await
                .expect("goto");
            for r in d.find_all(By::Css("tr.event")).await.expect("rows") {
                let t = r.attr("data-type").await.ok().flatten().unwrap_or_default();
                assert!(t.starts_with("execution."), "{t}");
            }

            // The first page is a live tail: a new event shows up without a reload
            // (the search box found before it is still the same element afterwards).
            d.goto(format!("{url}/ui/events")).await.expect("goto");
            let search = d.find(By::Id("q")).await.expect("search box");
            let out = fleet.ctl.cli(&["kv", "set", "tail_probe", "seen-live"]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let actor = wait_for(Duration::from_secs(20), "the new kv event", || async {
                attr_of(&d, "tr.event[data-type='kv.set']", "data-actor").await
            })
            .await;
            assert!(
                search
                    .is_displayed()
                    .await
                    .expect("same element, no reload")
            );
            // Search by text and actor: only the matching event is left, and the
            // filters are in the URL.
            search.send_keys("TAIL_probe").await.expect("type");
            type_in(&d, By::Id("actor"), &actor).await;
            click(&d, By::Css("form.filters button[type=submit]")).await;
            let rows = wait_for(Duration::from_secs(20), "the search result", || async {
                let url = d.current_url().await.ok()?;
                url.query()?.contains("q=TAIL_probe").then_some(())?;
                d.find_all(By::Css("tr.event")).await.ok()
            })
            .await;
            assert_eq!(rows.len(), 1, "one event names tail_probe");
            assert_eq!(
                rows[0].attr("data-type").await.ok().flatten().as_deref(),
                Some("kv.set")
            );
            shot(&d, "events-search").await;
            // A bad time is explained next to the form, and nothing is listed.
            d.goto(format!("{url}/ui/events?since=soonish"))
                .await
                .expect("goto");
            let errors = d
                .find(By::Id("filter-errors"))
                .await
                .expect("the errors")
                .text()
                .await
                .expect("text");
            assert!(errors.contains("`soonish` is not a time"), "{errors}");
            assert!(
                d.find_all(By::Css("tr.event"))
                    .await
                    .expect("rows")
                    .is_empty()
            );

            // Automation: the installed pack's rules with their switch, actions, and
            // datastore keys with secrets masked. Disabling a rule is a click.
            let pack = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/packs/remediation");
            let out = fleet
                .ctl
                .cli(&["packs", "install", pack.to_str().expect("path")]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                fleet
                    .ctl
                    .cli(&["kv", "set", "db_password", "hunter2-browser", "--secret"])
                    .status
                    .success()
            );
            d.goto(format!("{url}/ui/automation")).await.expect("goto");
            let rule = "tr[data-rule='remediation.restart_unhealthy']";
            assert_eq!(
                attr_of(&d, rule, "data-enabled").await.as_deref(),
                Some("true")
            );
            let html = d.source().await.expect("source");
            assert!(html.contains("core.local"), "built-in actions are listed");
            assert!(html.contains("db_password") && html.contains("********"));
            assert!(
                !html.contains("hunter2-browser"),
                "a secret is never on the page"
            );
            shot(&d, "automation").await;
            click(&d, By::Css(format!("{rule} button"))).await;
            wait_for(Duration::from_secs(20), "the rule disabled", || async {
                (attr_of(&d, rule, "data-enabled").await.as_deref() == Some("false")).then_some(())
            })
            .await;
            let switched = fleet.ctl.events("rule.disabled");
            assert_eq!(
                switched[0]["payload"]["rule"],
                "remediation.restart_unhealthy"
            );

            // An action's page has a form built from its parameter schema. A bad value
            // comes back on the form with the reason and runs nothing; a good one runs
            // and lands on the new execution.
            click(&d, By::Css("tr[data-action='core.local'] a")).await;
            wait_for(Duration::from_secs(20), "the action page", || async {
                (path_of(&d).await == "/ui/actions/core.local").then_some(())
            })
            .await;
            let actions_before = fleet
                .ctl
                .cli_json(&["executions", "--limit", "200", "--json"]);
            let count = |v: &serde_json::Value| v.as_array().map(Vec::len).unwrap_or(0);
            let cmd = d.find(By::Id("param-cmd")).await.expect("the cmd field");
            assert_eq!(
                cmd.attr("required").await.ok().flatten().as_deref(),
                Some("true"),
                "cmd is required"
            );
            cmd.send_keys("echo from-the-form").await.expect("type");
            type_in(&d, By::Id("param-timeout"), "soon").await;
            click(&d, By::Id("run-action")).await;
            let error = wait_for(Duration::from_secs(20), "the refusal", || async {
                d.find(By::Id("run-error")).await.ok()?.text().await.ok()
            })
            .await;
            assert!(error.contains("timeout"), "{error}");
            assert_eq!(
                attr_of(&d, "#param-cmd", "value").await.as_deref(),
                Some("echo from-the-form"),
                "what was typed stays"
            );
            assert_eq!(
                count(
                    &fleet
                        .ctl
                        .cli_json(&["executions", "--limit", "200", "--json"])
                ),
                count(&actions_before),
                "a refused form runs nothing"
            );
            let timeout = d.find(By::Id("param-timeout")).await.expect("field");
            timeout.clear().await.expect("clear");
            timeout.send_keys("30").await.expect("type");
            shot(&d, "action-form").await;
            click(&d, By::Id("run-action")).await;
            let exec_path = wait_for(Duration::from_secs(20), "the new execution", || async {
                let p = path_of(&d).await;
                p.starts_with("/ui/executions/").then_some(p)
            })
            .await;
            let id = exec_path.trim_start_matches("/ui/executions/").to_string();
            common::wait_until(Duration::from_secs(20), "the action finished", || {
                let v = fleet.ctl.cli_json(&["executions", "get", &id, "--json"]);
                v["status"] == "succeeded"
                    && v["action"]["result"]["stdout"] == "from-the-form"
                    && v["actor"] == "admin"
            });

            // Sign out: back to the form, and the fleet page needs sign-in again.
            click(&d, By::Css("form.user button")).await;
            wait_for(Duration::from_secs(20), "the sign-in page", || async {
                (path_of(&d).await == "/ui/signin").then_some(())
            })
            .await;
            d.goto(format!("{url}/ui/fleet")).await.expect("goto");
            assert_eq!(path_of(&d).await, "/ui/signin");
        })
    }));
    let _ = rt.block_on(d.quit());
    drop(driver);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn executions(c: &reqwest::Client, ctl: &Controller) -> usize {
    let v: serde_json::Value = c
        .get(format!("{}/api/v1/executions", ctl.url))
        .bearer_auth(&ctl.admin_token)
        .send()
        .await
        .expect("list executions")
        .json()
        .await
        .expect("JSON");
    v["items"].as_array().map(Vec::len).unwrap_or(0)
}

#[test]
fn dashboard_pages_set_csp_and_forms_need_csrf() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let _agent = ctl.agent(dir.path(), "web-1", &["role=web"]);
    ctl.wait_hosts_up(&["web-1"]);
    let created = ctl.cli_json(&["tokens", "create", "look", "--json"]);
    let viewer = created["secret"].as_str().expect("secret").to_string();
    let viewer_id = created["token"]["id"].as_str().expect("id").to_string();
    let rt = runtime();
    rt.block_on(async {
        let c = client();
        let url = &ctl.url;
        // Signed out: every answer carries the CSP, pages send to sign-in.
        for (path, status) in [
            ("/", 303),
            ("/ui/fleet", 303),
            ("/ui/fleet/live", 303),
            ("/ui/hosts/web-1", 303),
            ("/ui/events", 303),
            ("/ui/signin", 200),
            ("/ui/assets/htmx.min.js", 200),
            ("/ui/assets/dashboard.css", 200),
            ("/ui/no-such-page", 404),
        ] {
            let resp = c.get(format!("{url}{path}")).send().await.expect("GET");
            assert_eq!(resp.status().as_u16(), status, "{path}");
            assert_eq!(csp_of(&resp), CSP, "{path}");
        }
        // An htmx poll without a session is told where to go, not given the form.
        let resp = c
            .get(format!("{url}/ui/fleet/live"))
            .header("HX-Request", "true")
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("hx-redirect"));

        // Behind a TLS proxy, the cookies are marked Secure.
        let resp = c
            .get(format!("{url}/ui/signin"))
            .header("X-Forwarded-Proto", "https")
            .send()
            .await
            .expect("GET");
        let cookie = resp
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.contains("Secure"),
            "{cookie}"
        );

        // Sign-in without the form's CSRF token: refused, no session.
        let signin_page = c.get(format!("{url}/ui/signin")).send().await.expect("GET");
        let pre = set_cookie(&signin_page, "drover_signin").expect("sign-in cookie");
        let resp = c
            .post(format!("{url}/ui/signin"))
            .header("cookie", &pre)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("token", ctl.admin_token.as_str())]))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 403);
        assert_eq!(csp_of(&resp), CSP);
        assert!(set_cookie(&resp, "drover_session").is_none());

        let session = sign_in(&c, url, &ctl.admin_token).await;
        let page = c
            .get(format!("{url}/ui/hosts/web-1"))
            .header("cookie", &session)
            .send()
            .await
            .expect("GET host");
        assert_eq!(page.status(), 200);
        assert_eq!(csp_of(&page), CSP);
        let html = page.text().await.expect("body");
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "nothing inline"
        );
        let csrf = csrf_in(&html);

        // The run form without its token, with another's, or from another site: 403,
        // and no execution is created.
        let before = executions(&c, &ctl).await;
        for (token, site) in [
            (None, None),
            (Some("0badc0de"), None),
            (Some(csrf.as_str()), Some("cross-site")),
        ] {
            let mut fields = vec![("command", "echo should-not-run")];
            if let Some(t) = token {
                fields.push(("csrf", t));
            }
            let mut req = c
                .post(format!("{url}/ui/hosts/web-1/run"))
                .header("cookie", &session)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&fields));
            if let Some(s) = site {
                req = req.header("Sec-Fetch-Site", s);
            }
            let resp = req.send().await.expect("POST run");
            assert_eq!(resp.status(), 403, "csrf {token:?}, site {site:?}");
            assert_eq!(csp_of(&resp), CSP);
        }
        assert_eq!(
            executions(&c, &ctl).await,
            before,
            "a refused form changed nothing"
        );

        // Sign-out without the token is refused and the session still works.
        let resp = c
            .post(format!("{url}/ui/signout"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[("x", "y")]))
            .send()
            .await
            .expect("POST signout");
        assert_eq!(resp.status(), 403);
        let still = c
            .get(format!("{url}/ui/fleet"))
            .header("cookie", &session)
            .send()
            .await
            .expect("GET");
        assert_eq!(still.status(), 200);

        // A viewer's session may look but not run, even with a valid token.
        let look = sign_in(&c, url, &viewer).await;
        let html = c
            .get(format!("{url}/ui/hosts/web-1"))
            .header("cookie", &look)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        assert!(!html.contains("id=\"command\""), "no run form for a viewer");
        let viewer_csrf = csrf_in(&html);
        let resp = c
            .post(format!("{url}/ui/hosts/web-1/run"))
            .header("cookie", &look)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("command", "echo nope"),
                ("csrf", viewer_csrf.as_str()),
            ]))
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 403);
        assert_eq!(executions(&c, &ctl).await, before);
        // Revoking the token ends its sessions at once.
        let out = ctl.cli(&["tokens", "revoke", &viewer_id]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let resp = c
            .get(format!("{url}/ui/fleet"))
            .header("cookie", &look)
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 303, "a revoked token's session is over");

        // With its token the form runs the command, and every page of it has the CSP.
        let resp = c
            .post(format!("{url}/ui/hosts/web-1/run"))
            .header("cookie", &session)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("command", "echo from-the-form"),
                ("csrf", csrf.as_str()),
            ]))
            .send()
            .await
            .expect("POST run");
        assert_eq!(resp.status(), 303);
        let exec = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_string();
        assert!(exec.starts_with("/ui/executions/"), "{exec}");
        assert_eq!(executions(&c, &ctl).await, before + 1);
        for path in [
            "/ui/fleet",
            "/ui/fleet?selector=nmae%3Dweb&group=role",
            "/ui/fleet/live?group=hostclass&page=7",
            "/ui/hosts/web-1",
            "/ui/hosts/no-such-host",
            exec.as_str(),
            &format!("{exec}/live"),
            "/ui/executions/no-such-execution",
            "/ui/events",
            "/ui/events?type=execution.*",
            "/ui/events?type=%3Cscript%3E",
            "/ui/events?q=%25&actor=admin&since=2h&until=2099-01-01",
            "/ui/events?since=soon&until=%3Cb%3E",
            "/ui/events?live=0&before=5",
            "/ui/events/live?type=host.*&q=web",
        ] {
            let resp = c
                .get(format!("{url}{path}"))
                .header("cookie", &session)
                .send()
                .await
                .expect("GET");
            assert!(
                [200, 404].contains(&resp.status().as_u16()),
                "{path}: {}",
                resp.status()
            );
            assert_eq!(csp_of(&resp), CSP, "{path}");
            let html = resp.text().await.expect("body");
            assert!(!html.contains("<script>"), "{path}: inline script");
        }
        // A bad selector is shown with its column.
        let html = c
            .get(format!("{url}/ui/fleet?selector=nmae%3Dweb"))
            .header("cookie", &session)
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        assert!(
            html.contains("selector-error") && html.contains("column"),
            "{html}"
        );
    });
}
