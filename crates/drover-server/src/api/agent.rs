//! Endpoints agents call: enroll, heartbeat, long-poll, output, status.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use drover_proto::agent::{
    CommandUpdate, EnrollRequest, EnrollResponse, Heartbeat, HeartbeatAck, OutputBatch,
    PollRequest, PollResponse,
};
use drover_proto::auth::TokenKind;
use drover_store::{NewToken, Notice};
use tokio::sync::broadcast::error::RecvError;

use crate::auth::{AgentCaller, JoinCaller, hash_secret, new_secret, new_token_id};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Body, BodyWithNul, Path};
use crate::monitor;
use crate::state::AppState;
use drover_core::names::{check_host_name, check_label_key};

/// A delivered command without a `started` after this long is delivered again.
const REDELIVER_AFTER_MS: i64 = 10_000;

/// An agent trades a join token for its own credential (once per host name; enrolling
/// again with the same name re-binds the host).
#[utoipa::path(post, path = "/agent/enroll", tag = "agent",
    security(("join_token" = [])),
    request_body = EnrollRequest,
    responses((status = 201, description = "The agent's credential", body = EnrollResponse)))]
pub(crate) async fn enroll(
    State(state): State<Arc<AppState>>,
    join: JoinCaller,
    Body(req): Body<EnrollRequest>,
) -> ApiResult<(StatusCode, Json<EnrollResponse>)> {
    check_host_name(&req.name).map_err(|(column, reason)| {
        ApiError::bad_request(format!("field `name`: {reason} (column {column})"))
    })?;
    for (k, v) in &req.labels {
        check_label_key(k).map_err(|e| ApiError::bad_request(format!("field `labels`: {e}")))?;
        if v.contains(',') || v.len() > 256 {
            return Err(ApiError::bad_request(format!(
                "field `labels.{k}`: values are at most 256 characters and contain no comma"
            )));
        }
    }
    let credential = new_secret(TokenKind::Agent);
    let enrolled = state
        .store
        .enroll_host(
            &uuid::Uuid::now_v7().to_string(),
            &req.name,
            &req.labels,
            &req.facts,
            NewToken {
                id: new_token_id(),
                name: format!("agent:{}", req.name),
                kind: TokenKind::Agent,
                role: None,
                host_id: None,
                secret_hash: hash_secret(&credential),
                created_by: join.name,
            },
        )
        .await?;
    tracing::info!(host = %enrolled.host.name, created = enrolled.created, "agent enrolled");
    Ok((
        StatusCode::CREATED,
        Json(EnrollResponse {
            host_id: enrolled.host.id,
            name: enrolled.host.name,
            credential,
        }),
    ))
}

/// Facts, labels, running commands and instances; marks the host up.
#[utoipa::path(post, path = "/agent/heartbeat", tag = "agent",
    security(("agent_credential" = [])),
    request_body = Heartbeat,
    responses((status = 200, description = "Acknowledged", body = HeartbeatAck)))]
pub(crate) async fn heartbeat(
    State(state): State<Arc<AppState>>,
    agent: AgentCaller,
    Body(hb): Body<Heartbeat>,
) -> ApiResult<Json<HeartbeatAck>> {
    if let Some(labels) = &hb.labels {
        for k in labels.keys() {
            check_label_key(k)
                .map_err(|e| ApiError::bad_request(format!("field `labels`: {e}")))?;
        }
    }
    let outcome = state
        .store
        .heartbeat(&agent.host_id, hb.facts.as_ref(), hb.labels.as_ref())
        .await?
        .ok_or_else(|| ApiError::unauthorized("the host of this credential no longer exists"))?;
    if hb.facts.is_some() {
        // A (re)connect: have the agent answer for commands it was running.
        state.store.requeue_started(&agent.host_id).await?;
    }
    if let Some(instances) = &hb.instances
        && state
            .store
            .replace_instances(&agent.host_id, &outcome.host.name, instances)
            .await?
            > 0
    {
        // Health gates may pass or fail now.
        let state = state.clone();
        tokio::spawn(async move { crate::rollout::tick_all(&state).await });
    }
    if outcome.came_up {
        tracing::info!(host = %outcome.host.name, "host is up again");
    }
    Ok(Json(HeartbeatAck {
        host_id: agent.host_id,
        interval_ms: u64::try_from(state.config.heartbeat_interval.as_millis()).unwrap_or(5000),
    }))
}

/// Long-poll for commands to run and to cancel.
#[utoipa::path(post, path = "/agent/poll", tag = "agent",
    security(("agent_credential" = [])),
    request_body = PollRequest,
    responses((status = 200, description = "Work, or empty lists when the wait ran out", body = PollResponse)))]
pub(crate) async fn poll(
    State(state): State<Arc<AppState>>,
    agent: AgentCaller,
    Body(req): Body<PollRequest>,
) -> ApiResult<Json<PollResponse>> {
    let wait = Duration::from_millis(req.wait_ms).min(state.config.poll_max_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut notices = state.store.notifier().subscribe();
    loop {
        let (commands, cancel) = state
            .store
            .take_commands(&agent.host_id, REDELIVER_AFTER_MS)
            .await?;
        if !commands.is_empty() || !cancel.is_empty() {
            return Ok(Json(PollResponse { commands, cancel }));
        }
        // Wait for a notice for this host, re-checking the store at least every second
        // (a notice can be lost; the store cannot).
        let tick = tokio::time::sleep_until(
            deadline.min(tokio::time::Instant::now() + Duration::from_secs(1)),
        );
        tokio::pin!(tick);
        loop {
            tokio::select! {
                notice = notices.recv() => match notice {
                    Ok(Notice::Commands { host_id }) if host_id == agent.host_id => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return Ok(Json(PollResponse::default())),
                },
                _ = &mut tick => break,
                _ = state.shutdown.cancelled() => return Ok(Json(PollResponse::default())),
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(Json(PollResponse::default()));
        }
    }
}

/// A batch of a command's output.
#[utoipa::path(post, path = "/agent/commands/{id}/output", tag = "agent",
    security(("agent_credential" = [])),
    params(("id" = String, Path, description = "Command id")),
    request_body = OutputBatch,
    responses(
        (status = 204, description = "Stored"),
        (status = 404, description = "No such command for this host", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn output(
    State(state): State<Arc<AppState>>,
    agent: AgentCaller,
    Path(command_id): Path<String>,
    BodyWithNul(mut batch): BodyWithNul<OutputBatch>,
) -> ApiResult<StatusCode> {
    // Output is text for people: NUL becomes U+FFFD, like invalid UTF-8 on the agent
    // (PostgreSQL cannot store NUL in text).
    for chunk in &mut batch.chunks {
        if chunk.data.contains('\0') {
            chunk.data = chunk.data.replace('\0', "\u{FFFD}");
        }
    }
    let known = match state
        .store
        .append_output(&command_id, &agent.host_id, &batch.chunks)
        .await?
    {
        Some(_) => true,
        None => {
            state
                .store
                .append_step_output(&command_id, &agent.host_id, &batch.chunks)
                .await?
        }
    };
    match known {
        true => Ok(StatusCode::NO_CONTENT),
        false => {
            tracing::warn!(agent = %agent.name, command_id, "output for an unknown command");
            Err(ApiError::not_found(format!(
                "no command {command_id} for this host"
            )))
        }
    }
}

/// A command started, or finished with its result.
#[utoipa::path(post, path = "/agent/commands/{id}/status", tag = "agent",
    security(("agent_credential" = [])),
    params(("id" = String, Path, description = "Command id")),
    request_body = CommandUpdate,
    responses(
        (status = 204, description = "Recorded"),
        (status = 404, description = "No such command for this host", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn status(
    State(state): State<Arc<AppState>>,
    agent: AgentCaller,
    Path(command_id): Path<String>,
    Body(update): Body<CommandUpdate>,
) -> ApiResult<StatusCode> {
    let known = match update {
        CommandUpdate::Started { .. } => {
            // A rollout step, or else a run's command (both are in the command queue).
            state
                .store
                .step_started(&command_id, &agent.host_id)
                .await?
                .is_some()
                || state
                    .store
                    .command_started(&command_id, &agent.host_id)
                    .await?
        }
        CommandUpdate::Finished { result } => {
            match state
                .store
                .finish_command(&command_id, &agent.host_id, &result)
                .await?
            {
                Some(settled) => {
                    monitor::after_settle(&state, settled).await;
                    // A slot may be free now: dispatch the next targets of the execution.
                    if let Some(execution_id) =
                        state.store.execution_of_command(&command_id).await?
                    {
                        monitor::dispatch(&state, &execution_id).await;
                    }
                    true
                }
                None => match state
                    .store
                    .finish_step(&command_id, &agent.host_id, &result)
                    .await?
                {
                    Some(execution_id) => {
                        // The rollout can go on at once.
                        let state = state.clone();
                        tokio::spawn(
                            async move { crate::rollout::tick(&state, &execution_id).await },
                        );
                        true
                    }
                    None => false,
                },
            }
        }
    };
    if known {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no command {command_id} for this host"
        )))
    }
}
