//! The content-addressed artifact store: `drover artifacts push FILE` uploads a
//! `.tar.gz`; a model refers to it as `store:<sha256>`; agents download it with their
//! credential.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use drover_proto::page::Page;
use drover_store::ArtifactInfo;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use utoipa::{IntoParams, ToSchema};

use super::paging::{self, PageParams};
use crate::auth::{ApiCaller, Operator, ReaderCaller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Params, Path};
use crate::state::AppState;

/// Largest artifact accepted (2 GiB).
pub(crate) const MAX_ARTIFACT_BYTES: u64 = 2 * 1024 * 1024 * 1024;

/// Answer to an upload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct Pushed {
    /// The stored artifact.
    artifact: ArtifactInfo,
    /// What to write in a model's `artifact.url`.
    url: String,
    /// False when the same bytes were already stored.
    created: bool,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PushParams {
    /// File name, for people (default `artifact.tar.gz`).
    #[serde(default)]
    #[param(min_length = 1, max_length = 255, pattern = "^[^/]+$")]
    name: Option<String>,
}

fn dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("artifacts")
}

/// Checks a digest given in a path: 64 lower-case hex digits.
fn check_sha(sha: &str) -> Result<(), ApiError> {
    if sha.len() == 64
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "`{sha}` is not a SHA-256 digest (64 lower-case hex digits)"
        )))
    }
}

/// Uploads a `.tar.gz` (up to 2 GiB) into the content-addressed store.
#[utoipa::path(post, path = "/artifacts", tag = "artifacts",
    security(("api_token" = ["operator"])),
    params(PushParams),
    request_body(content = String, content_type = "application/octet-stream",
        description = "The `.tar.gz` bytes (any content type is accepted)"),
    responses(
        (status = 201, description = "Stored", body = Pushed),
        (status = 200, description = "The same bytes were already stored", body = Pushed),
    ))]
pub(crate) async fn push(
    State(state): State<Arc<AppState>>,
    Operator(caller): Operator,
    Params(p): Params<PushParams>,
    body: Body,
) -> ApiResult<(StatusCode, Json<Pushed>)> {
    let name = p.name.unwrap_or_else(|| "artifact.tar.gz".to_string());
    if name.is_empty() || name.chars().count() > 255 || name.contains('/') {
        return Err(ApiError::bad_request(
            "query parameter `name`: 1 to 255 characters, no `/`",
        ));
    }
    let dir = dir(&state);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(ApiError::internal)?;
    let tmp = dir.join(format!(".incoming-{}", uuid::Uuid::now_v7()));
    let result = receive(body, &tmp).await;
    let (sha, size) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
    };
    let dest = dir.join(format!("{sha}.tar.gz"));
    if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        let _ = tokio::fs::remove_file(&tmp).await;
    } else {
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(ApiError::internal)?;
    }
    let (artifact, created) = state
        .store
        .record_artifact(&sha, size, &name, &caller.name)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Pushed {
            url: format!("store:{sha}"),
            artifact,
            created,
        }),
    ))
}

/// Streams the body to `tmp` while hashing it; refuses what is not gzip or too large.
async fn receive(body: Body, tmp: &std::path::Path) -> Result<(String, u64), ApiError> {
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(ApiError::internal)?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut head: Vec<u8> = Vec::with_capacity(2);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("upload broke off: {e}")))?;
        size += chunk.len() as u64;
        if size > MAX_ARTIFACT_BYTES {
            return Err(ApiError::too_large(format!(
                "artifacts are limited to {MAX_ARTIFACT_BYTES} bytes"
            )));
        }
        if head.len() < 2 {
            head.extend(chunk.iter().take(2 - head.len()));
            if head.len() == 2 && head != [0x1f, 0x8b] {
                return Err(ApiError::bad_request(
                    "an artifact must be a .tar.gz (gzip magic 1f 8b missing)",
                ));
            }
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(ApiError::internal)?;
    }
    if size < 2 {
        return Err(ApiError::bad_request(
            "empty upload: send the .tar.gz as the body",
        ));
    }
    file.sync_all().await.map_err(ApiError::internal)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Stored artifacts, newest first.
#[utoipa::path(get, path = "/artifacts", tag = "artifacts",
    security(("api_token" = ["viewer"])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of artifacts, newest first", body = Page<ArtifactInfo>),
        (status = 400, description = "Bad limit or cursor", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn list(
    State(state): State<Arc<AppState>>,
    _caller: ApiCaller,
    Params(q): Params<PageParams>,
) -> ApiResult<Json<Page<ArtifactInfo>>> {
    let limit = paging::limit(q.limit)?;
    // The cursor is `<created_at ms>.<sha256>` of the previous page's last artifact.
    let after = match q.after.as_deref() {
        None => None,
        Some(a) => {
            let parsed = a
                .split_once('.')
                .and_then(|(ms, sha)| Some((ms.parse::<i64>().ok()?, sha)))
                .filter(|(_, sha)| check_sha(sha).is_ok());
            Some(parsed.ok_or_else(|| {
                ApiError::bad_request(format!(
                    "query parameter `after`: `{a}` is not an artifact cursor"
                ))
            })?)
        }
    };
    let items = state.store.artifacts_page(after, limit + 1).await?;
    Ok(Json(paging::page_of(items, limit, |a| {
        format!("{}.{}", a.created_at.timestamp_millis(), a.sha256)
    })))
}

/// Downloads an artifact's bytes (also with an agent credential).
#[utoipa::path(get, path = "/artifacts/{sha}", tag = "artifacts",
    security(("api_token" = ["viewer"]), ("agent_credential" = [])),
    params(("sha" = String, Path, pattern = "^[0-9a-f]{64}$",
        description = "SHA-256 of the bytes (64 lower-case hex digits)")),
    responses(
        (status = 200, content_type = "application/gzip", body = String, description = "The `.tar.gz`"),
        (status = 404, description = "No such artifact", body = drover_proto::error::ApiError),
    ))]
pub(crate) async fn download(
    State(state): State<Arc<AppState>>,
    caller: ReaderCaller,
    Path(sha): Path<String>,
) -> ApiResult<Response> {
    check_sha(&sha)?;
    tracing::debug!(reader = %caller.name, %sha, "artifact download");
    let info = state
        .store
        .get_artifact(&sha)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no artifact {sha}")))?;
    let path = dir(&state).join(format!("{sha}.tar.gz"));
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        ApiError::internal(format!(
            "artifact {sha} is recorded but its file is unreadable: {e}"
        ))
    })?;
    let stream = tokio_util::io::ReaderStream::new(file);
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_string()),
            (header::CONTENT_LENGTH, info.size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
