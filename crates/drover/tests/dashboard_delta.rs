//! The dashboard's delta page over plain HTTP (no browser): a small model deployed to
//! two web agents shows every instance `ok`; a killed agent's instances turn red with
//! the reason `unreachable`, and `?errors=1` lists only those.

mod common;

use std::time::Duration;

use common::{Db, Fleet, text, wait_until};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A plain HTTP client that follows no redirect.
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `name=value` of a `Set-Cookie` the answer sets, if any.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|kv| kv.starts_with(&format!("{name}=")) && kv.len() > name.len() + 1)
        .map(str::to_string)
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Signs in with `token` and returns the session cookie.
async fn sign_in(c: &reqwest::Client, url: &str, token: &str) -> String {
    let page = c
        .get(format!("{url}/ui/signin"))
        .send()
        .await
        .expect("GET signin");
    let pre = set_cookie(&page, "drover_signin").expect("sign-in cookie");
    let html = page.text().await.expect("body");
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    let csrf = html[at..].split('"').next().expect("value").to_string();
    let resp = c
        .post(format!("{url}/ui/signin"))
        .header("cookie", &pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "token={}&csrf={}&next={}",
            enc(token),
            enc(&csrf),
            enc("/ui/delta")
        ))
        .send()
        .await
        .expect("POST signin");
    assert_eq!(resp.status(), 303);
    set_cookie(&resp, "drover_session").expect("session cookie")
}

/// GETs a dashboard path with the session; checks 200 and the CSP, returns the HTML.
async fn page(c: &reqwest::Client, url: &str, session: &str, path: &str) -> String {
    let resp = c
        .get(format!("{url}{path}"))
        .header("cookie", session)
        .send()
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200, "{path}");
    let csp = resp
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert_eq!(csp, CSP, "{path}");
    resp.text().await.expect("body")
}

/// The instance rows of a delta page: `(service, host, status)`.
fn rows(html: &str) -> Vec<(String, String, String)> {
    let attr = |tag: &str, name: &str| -> String {
        let key = format!("{name}=\"");
        let at = tag.find(&key).expect(name) + key.len();
        tag[at..].split('"').next().expect("value").to_string()
    };
    html.split("<tr class=\"instance ")
        .skip(1)
        .map(|t| {
            let tag = t.split('>').next().expect("tag");
            (
                attr(tag, "data-service"),
                attr(tag, "data-host"),
                attr(tag, "data-status"),
            )
        })
        .collect()
}

#[test]
fn delta_page_shows_ok_then_the_killed_agents_instances_unreachable() {
    let started = std::time::Instant::now();
    let mut fleet = Fleet::start(Db::Sqlite);
    // A release: one script that sleeps, on both web hosts.
    let src = fleet.dir.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("run.sh"), "#!/bin/sh\nexec sleep 3600\n").expect("write");
    let tarball = fleet.dir.path().join("sleeper-1.0.0.tar.gz");
    common::tarball(&src, &tarball);
    let pushed = fleet.ctl.cli_json(&[
        "artifacts",
        "push",
        tarball.to_str().expect("path"),
        "--json",
    ]);
    let sha = pushed["artifact"]["sha256"]
        .as_str()
        .expect("sha")
        .to_string();
    let model = fleet.dir.path().join("model");
    std::fs::create_dir_all(&model).expect("mkdir");
    std::fs::write(
        model.join("hostclasses.yaml"),
        "kind: hostclass\nname: web\nselector: label.role=web\n",
    )
    .expect("write");
    std::fs::write(
        model.join("sleeper.yaml"),
        format!(
            "kind: service\nname: sleeper\nversion: \"1.0.0\"\n\
             artifact: {{url: \"store:{sha}\", sha256: {sha}}}\n\
             placement: {{hostclass: web, per_host: 1}}\n\
             rollout:\n  max_parallel: 2\n  min_healthy_time: 0s\n  healthy_deadline: 10s\n  progress_deadline: 60s\n\
             run: [\"sh\", \"run.sh\"]\n"
        ),
    )
    .expect("write");
    let out = fleet
        .ctl
        .cli(&["apply", "--yes", model.to_str().expect("path")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let deployed = started.elapsed();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = fleet.ctl.url.clone();
    let admin = fleet.ctl.admin_token.clone();
    let c = client();
    let session = rt.block_on(sign_in(&c, &url, &admin));

    // Signed out: sent to sign-in, with the CSP.
    let resp = rt
        .block_on(c.get(format!("{url}/ui/delta")).send())
        .expect("GET");
    assert_eq!(resp.status(), 303);
    assert!(resp.headers().contains_key("content-security-policy"));

    // After the deploy: both instances ok, linked from the nav, live fragment polled.
    let html = rt.block_on(page(&c, &url, &session, "/ui/delta"));
    assert!(
        html.contains("href=\"/ui/delta\" aria-current=\"page\""),
        "{html}"
    );
    assert!(
        html.contains("hx-get=\"/ui/delta/live\" hx-trigger=\"every 2s\""),
        "{html}"
    );
    assert!(html.contains("<label for=\"errors\">Errors only</label>"));
    assert!(html.contains("<caption"));
    let mut got = rows(&html);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("sleeper".into(), "web-1".into(), "ok".into()),
            ("sleeper".into(), "web-2".into(), "ok".into()),
        ],
        "{html}"
    );
    assert!(html.contains("id=\"count-ok\">2<"), "{html}");
    let errors = rt.block_on(page(&c, &url, &session, "/ui/delta?errors=1"));
    assert!(rows(&errors).is_empty(), "{errors}");

    // web-2's agent dies: its instance turns red with the reason.
    fleet.agent("web-2").kill9();
    wait_until(
        Duration::from_secs(20),
        "web-2 unreachable on /ui/delta",
        || {
            let html = rt.block_on(page(&c, &url, &session, "/ui/delta/live"));
            rows(&html).contains(&("sleeper".into(), "web-2".into(), "unreachable".into()))
        },
    );
    let html = rt.block_on(page(&c, &url, &session, "/ui/delta?group=host"));
    assert!(html.contains("<th scope=\"colgroup\" colspan=\"7\">host: web-2</th>"));
    assert!(html.contains("delta-unreachable delta-error"), "{html}");
    assert!(html.contains("id=\"count-unreachable\">1<"), "{html}");
    assert!(html.contains("<option value=\"host\" selected>"), "{html}");
    let errors = rt.block_on(page(&c, &url, &session, "/ui/delta?errors=1&group=service"));
    assert_eq!(
        rows(&errors),
        vec![("sleeper".into(), "web-2".into(), "unreachable".into())],
        "{errors}"
    );
    assert!(errors.contains("unreachable"), "{errors}");
    // The filter stays in the URL of the polled fragment.
    assert!(
        errors.contains("hx-get=\"/ui/delta/live?group=service&#38;errors=1\""),
        "{errors}"
    );
    assert!(errors.contains(" checked>"), "{errors}");
    eprintln!(
        "delta page test: deploy {:?}, total {:?}",
        deployed,
        started.elapsed()
    );
}
