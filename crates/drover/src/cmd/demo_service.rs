//! `drover demo-service` (hidden): the tiny HTTP service `drover demo` deploys, so that
//! the demo needs nothing but the drover binary.

use std::process::ExitCode;

use axum::Router;
use axum::routing::get;
use clap::Args;

/// Serve `GET /` (a greeting with the version and this release's `message.txt`) and
/// `GET /health` (`ok`) on 127.0.0.1.
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
    let app = Router::new()
        .route("/", get(move || std::future::ready(greeting.clone())))
        .route("/health", get(|| std::future::ready("ok\n")));
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
