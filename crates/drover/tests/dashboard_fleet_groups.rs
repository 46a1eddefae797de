//! The fleet page grouped by a label, over plain HTTP (no browser), with more hosts than
//! a page holds: the groups and their hosts come in order across pages, and a selector
//! decided on names and labels alone gives the same page as one that needs facts (two
//! different read paths in the controller).

mod common;

use common::web::{client, page, runtime, sign_in_to};
use common::{Controller, Db};

/// The group headings and host names of a fleet fragment, in document order
/// (`# heading` for a heading).
fn rows(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in html.split("<tr ").skip(1) {
        if let Some(rest) =
            part.strip_prefix("class=\"group\"><th scope=\"colgroup\" colspan=\"6\">")
        {
            out.push(format!("# {}", rest.split('<').next().unwrap_or_default()));
        } else if let Some(at) = part.find("data-host=\"") {
            let name = part[at + 11..].split('"').next().unwrap_or_default();
            out.push(name.to_string());
        }
    }
    out
}

#[test]
fn grouped_fleet_pages_keep_group_and_name_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ctl = Controller::start(&dir.path().join("ctl"), Db::Sqlite);
    let rt = runtime();
    let c = client();
    let facts = serde_json::json!({"hostname": "h", "os": "linux", "kernel": "k", "arch": "x",
        "cpus": 1, "memory_bytes": 1, "addresses": [], "agent_version": "0"});
    // 130 hosts in three racks; even ones are web, and h-007 has no rack.
    rt.block_on(async {
        for i in 0..130 {
            let mut labels = serde_json::json!({"rack": format!("r{}", i % 3)});
            if i % 2 == 0 {
                labels["role"] = "web".into();
            }
            if i == 7 {
                labels = serde_json::json!({});
            }
            let resp = c
                .post(format!("{}/api/v1/agent/enroll", ctl.url))
                .bearer_auth(&ctl.join_token)
                .json(&serde_json::json!({"name": format!("h-{i:03}"), "labels": labels, "facts": facts}))
                .send()
                .await
                .expect("enroll");
            assert_eq!(resp.status().as_u16(), 201, "enroll h-{i:03}");
        }
    });
    let session = rt.block_on(sign_in_to(&c, &ctl.url, &ctl.admin_token, "/ui/fleet"));
    let get = |path: &str| rows(&rt.block_on(page(&c, &ctl.url, &session, path)));

    // The whole expected listing: groups by heading, hosts by name within each.
    let mut expected: Vec<(String, String)> = (0..130)
        .map(|i| {
            let g = if i == 7 {
                "rack: (none)".to_string()
            } else {
                format!("rack=r{}", i % 3)
            };
            (g, format!("h-{i:03}"))
        })
        .collect();
    expected.sort();
    let first = get("/ui/fleet/live?group=rack");
    let second = get("/ui/fleet/live?group=rack&page=2");
    let hosts = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| !r.starts_with('#'))
            .cloned()
            .collect()
    };
    assert_eq!(hosts(&first).len(), 100, "{first:?}");
    let mut both = hosts(&first);
    both.extend(hosts(&second));
    assert_eq!(
        both,
        expected.iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
        "every host once, by group then name"
    );
    assert_eq!(first[0], "# rack: (none)", "{first:?}");
    assert_eq!(first[1], "h-007");
    assert_eq!(first[2], "# rack=r0");
    assert_eq!(
        second[0], "# rack=r2",
        "a page that starts inside a group repeats its heading: {second:?}"
    );

    // A selector on labels only (names and labels read) and one that also tests a fact
    // (whole rows read) agree.
    let light = get("/ui/fleet/live?group=rack&selector=label.role%3Dweb");
    let full = get("/ui/fleet/live?group=rack&selector=label.role%3Dweb%2Cfact.os%3Dlinux");
    assert_eq!(hosts(&light).len(), 65, "{light:?}");
    assert_eq!(light, full);
    // Grouped by hostclass: from names and labels when no hostclass selector tests a
    // fact, from whole rows when one does; the same page either way.
    let by_class = |web_selector: &str| {
        let model = dir.path().join(format!("model-{}", web_selector.len()));
        std::fs::create_dir_all(&model).expect("mkdir");
        std::fs::write(
            model.join("hostclasses.yaml"),
            format!(
                "kind: hostclass\nname: web\nselector: \"{web_selector}\"\n---\n\
                 kind: hostclass\nname: r1\nselector: label.rack=r1\n"
            ),
        )
        .expect("write");
        let out = ctl.cli(&[
            "apply",
            "--yes",
            "--allow-empty",
            model.to_str().expect("path"),
        ]);
        assert!(out.status.success(), "{:?}", common::text(&out));
        let mut all = get("/ui/fleet/live?group=hostclass");
        all.extend(get("/ui/fleet/live?group=hostclass&page=2"));
        all
    };
    let light = by_class("label.role=web");
    let full = by_class("label.role=web,fact.os=linux");
    assert_eq!(light, full);
    let headings: Vec<&String> = light.iter().filter(|r| r.starts_with('#')).collect();
    assert_eq!(
        headings,
        [
            "# hostclass: (none)",
            "# hostclass: r1",
            "# hostclass: r1, web",
            "# hostclass: web",
            "# hostclass: web",
        ],
        "{light:?}"
    );
    assert_eq!(hosts(&light).len(), 130);

    let plain_light = get("/ui/fleet/live?selector=h-1*");
    let plain_full = get("/ui/fleet/live?selector=h-1*%2Cfact.os%3Dlinux");
    assert_eq!(
        hosts(&plain_light).len(),
        30,
        "h-100..h-129: {plain_light:?}"
    );
    assert_eq!(plain_light, plain_full);
}
