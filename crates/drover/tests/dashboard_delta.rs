//! The dashboard's delta page over plain HTTP (no browser): a small model deployed to
//! two web agents shows every instance `ok`; a killed agent's instances turn red with
//! the reason `unreachable`, and `?errors=1` lists only those.

mod common;

use std::time::Duration;

use common::web::{client, page, runtime, sign_in_to};
use common::{Db, Fleet, text, wait_until};

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
    let sha = common::push_sleeper_release(&fleet.ctl, fleet.dir.path());
    let model = fleet.dir.path().join("model");
    common::write_sleeper_model(&model, &sha, 1, 0, 2);
    let out = fleet
        .ctl
        .cli(&["apply", "--yes", model.to_str().expect("path")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let deployed = started.elapsed();

    let rt = runtime();
    let url = fleet.ctl.url.clone();
    let admin = fleet.ctl.admin_token.clone();
    let c = client();
    let session = rt.block_on(sign_in_to(&c, &url, &admin, "/ui/delta"));

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
