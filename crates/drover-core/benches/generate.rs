//! Generator render at scale: the HAProxy template of `examples/haproxy/` over 1,000
//! backends (1,000 instances on 1,000 hosts, 5% drained, 2% unhealthy), and over
//! 10,000. This is the pure part of a generator pass: what the controller does per
//! target host on every inventory change.
//!
//! `cargo bench -p drover-core --bench generate`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_core::generate::{HostEntry, InstanceEntry, Inventory, ServiceEntry, render};

const TEMPLATE: &str = "global
    stats socket /run/haproxy/admin.sock mode 600 level admin expose-fd listeners
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend web
    bind *:80
    default_backend web
backend web
    balance roundrobin
    option httpchk GET /health
{% for i in services.web.instances %}    server {{ i.id }} {{ i.address }}:{{ i.ports.http }} check{% if not i.up %} disabled{% endif %}
{% endfor %}";

fn inventory(n: usize) -> Inventory {
    let instances = (0..n)
        .map(|i| InstanceEntry {
            service: "web".into(),
            host: format!("web-{i:05}"),
            index: 0,
            address: format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256),
            ports: [("http".to_string(), 8080)].into(),
            version: "2.0.1".into(),
            state: "running".into(),
            health: if i % 50 == 7 { "unhealthy" } else { "healthy" }.into(),
            drain: i % 20 == 3,
        })
        .collect();
    let hosts = (0..n)
        .map(|i| HostEntry {
            name: format!("web-{i:05}"),
            address: format!("10.{}.{}.{}", i / 65_536, (i / 256) % 256, i % 256),
            status: "up".into(),
            labels: [("role".to_string(), "web".to_string())].into(),
            region: Some("dc1".into()),
            provider: None,
            drained: false,
        })
        .collect();
    Inventory {
        instances,
        hosts,
        services: [(
            "web".to_string(),
            ServiceEntry {
                version: "2.0.1".into(),
                ports: [("http".to_string(), 8080)].into(),
            },
        )]
        .into(),
        kv: BTreeMap::new(),
    }
}

fn bench(c: &mut Criterion) {
    let lb = HostEntry {
        name: "lb-1".into(),
        ..Default::default()
    };
    for n in [1_000, 10_000] {
        let inv = inventory(n);
        let out = render("haproxy", TEMPLATE, &inv, &lb).expect("renders");
        assert_eq!(out.content.matches("    server ").count(), n);
        let mut group = c.benchmark_group("generate");
        group.measurement_time(Duration::from_secs(5));
        group.sample_size(20);
        group.bench_function(format!("haproxy_{n}_backends"), |b| {
            b.iter(|| render("haproxy", TEMPLATE, black_box(&inv), &lb))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
