//! `drover demo-service` (hidden): the tiny HTTP service `drover demo` deploys, so that
//! the demo needs nothing but the drover binary.

use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use clap::Args;

/// Serve `GET /` (a greeting with the version and this release's `message.txt`) and
/// `GET /health` (`ok`) on 127.0.0.1. `POST /break` makes `/health` answer 503
/// `broken` until the process restarts (the demo's auto-remediation shows a rule
/// restarting it).
#[derive(Args, Debug)]
pub struct DemoServiceArgs {
    /// Port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    /// Release version to report (`--version` is clap's own flag).
    #[arg(long = "release")]
    release: String,
}

pub async fn run(args: DemoServiceArgs) -> anyhow::Result<ExitCode> {
    let message = std::fs::read_to_string("message.txt").unwrap_or_default();
    let greeting = format!("hello from drover {} {}\n", args.release, message.trim());
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b = broken.clone();
    let app = Router::new()
        .route("/", get(move || std::future::ready(greeting.clone())))
        .route(
            "/health",
            get(move || {
                let down = b.load(std::sync::atomic::Ordering::Relaxed);
                std::future::ready(if down {
                    (axum::http::StatusCode::SERVICE_UNAVAILABLE, "broken\n")
                } else {
                    (axum::http::StatusCode::OK, "ok\n")
                })
            }),
        )
        .route(
            "/break",
            axum::routing::post(move || {
                broken.store(true, std::sync::atomic::Ordering::Relaxed);
                std::future::ready("health now fails until this process restarts\n")
            }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!(
        "demo service {} listening on 127.0.0.1:{}",
        args.release, args.port
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(super::terminate_signal())
        .await?;
    Ok(ExitCode::SUCCESS)
}
