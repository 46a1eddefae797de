//! The OpenAPI 3.1 document of `/api/v1`, served at `GET /api/v1/openapi.json`.
//!
//! It is generated from the code: the paths, parameters and bodies come from the
//! `#[utoipa::path]` annotations of the handlers registered in [`super::routes`] (the
//! same list builds the router), the schemas from the body types' `ToSchema` derives.
//! [`finish`] adds what every endpoint shares: the security schemes and the error
//! responses, all with the `{error, detail}` body.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use drover_proto::error::ApiError as ErrorBody;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr, Response, ResponseBuilder, Tag,
};
use utoipa::{PartialSchema, ToSchema};

/// Security scheme of API tokens (people and scripts). An operation's scopes name the
/// least role it needs: `viewer`, `operator` or `admin`.
pub(crate) const API_TOKEN: &str = "api_token";
/// Security scheme of agent credentials.
pub(crate) const AGENT_CREDENTIAL: &str = "agent_credential";
/// Security scheme of join tokens (enrollment only).
pub(crate) const JOIN_TOKEN: &str = "join_token";

const DESCRIPTION: &str = "\
The public API of the drover controller. The CLI uses nothing else.

**Authentication.** Every endpoint but `/health` and `/openapi.json` needs \
`Authorization: Bearer <token>`. A missing, unknown or revoked token, or one of the wrong \
kind, gets 401 (and an `auth.failed` event). API tokens have a role: `viewer` reads, \
`operator` also changes the fleet, `admin` also manages tokens. An operation's \
`api_token` scopes name the least role it needs; a token below it gets 403. The \
`/agent/*` endpoints are the agents' channel: they take an agent credential \
(`agent_credential`) or, for enrollment, a join token (`join_token`), never an API token.

**Paging.** List endpoints that can grow without bound (`/hosts`, `/executions`, \
`/executions/{id}/output`, `/events`) answer `{items, next}`: pass `next` back as \
`?after=` for the following page; `next` is null on the last page. `limit` is 1 to 1000 \
(default 100).

**Errors.** Every failure has a JSON body `{error, detail}`: `error` is a stable code \
(`bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`, \
`payload_too_large`, `unprocessable`, `internal`), `detail` says what was wrong, naming \
the field or parameter. Unknown query parameters and body fields are refused with 400.";

/// The document as served, built once.
pub(crate) fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        serde_json::to_string(&document()).expect("the OpenAPI document serializes")
    });
    JSON.as_str()
}

/// The document: the routes' operations with [`finish`] applied.
pub(crate) fn document() -> OpenApi {
    let mut doc = super::routes().into_openapi();
    finish(&mut doc);
    doc
}

/// A shared error response: `{error, detail}` with a description.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
}

/// The error responses every operation may give, by status code, with the name under
/// `components/responses`.
const SHARED: [(&str, &str, &str); 6] = [
    (
        "400",
        "BadRequest",
        "A parameter or the body is malformed; `detail` names it",
    ),
    (
        "401",
        "Unauthorized",
        "Missing, unknown or revoked token, or a token of the wrong kind",
    ),
    (
        "403",
        "Forbidden",
        "The token's role is below what the operation needs",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The request body is over the controller's limit",
    ),
    (
        "422",
        "Unprocessable",
        "Well-formed, but it cannot be done; `detail` says why",
    ),
    (
        "500",
        "Internal",
        "The controller failed; the cause is in its log",
    ),
];

/// Adds what the annotations leave out: title, version, description, security schemes,
/// tags, and the shared error responses of each operation.
pub(crate) fn finish(doc: &mut OpenApi) {
    doc.info = InfoBuilder::new()
        .title("drover")
        .version(drover_proto::VERSION)
        .description(Some(DESCRIPTION))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    // Schemas only parameters refer to are not collected from the annotations.
    let mut schemas = Vec::new();
    <ErrorBody as ToSchema>::schemas(&mut schemas);
    schemas.push((ErrorBody::name().into_owned(), ErrorBody::schema()));
    for (name, schema) in [
        (
            super::events::EventOrderParam::name(),
            super::events::EventOrderParam::schema(),
        ),
        (
            super::inventory::HostAction::name(),
            super::inventory::HostAction::schema(),
        ),
        (
            super::deploy::RolloutAction::name(),
            super::deploy::RolloutAction::schema(),
        ),
    ] {
        schemas.push((name.into_owned(), schema));
    }
    components.schemas.extend(schemas);
    for (name, description) in [
        (
            API_TOKEN,
            "An API token (`drover_api_…`); the scopes of an operation name the least role",
        ),
        (
            AGENT_CREDENTIAL,
            "An agent's own credential (`drover_agent_…`), issued at enrollment",
        ),
        (
            JOIN_TOKEN,
            "A join token (`drover_join_…`), traded once for an agent credential",
        ),
    ] {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(description.to_string());
        components
            .security_schemes
            .insert(name.to_string(), SecurityScheme::Http(http));
    }
    let hook = utoipa::openapi::security::ApiKeyValue::with_description(
        "X-Drover-Webhook-Token",
        "A registered webhook's own secret (or, for HMAC webhooks, \
         `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`)",
    );
    components.security_schemes.insert(
        "webhook_secret".to_string(),
        SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Header(hook)),
    );
    for (_, name, description) in SHARED {
        components
            .responses
            .insert(name.to_string(), RefOr::T(error_response(description)));
    }
    let mut tags: BTreeSet<String> = BTreeSet::new();
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            add_shared_errors(op);
            // Handlers are named per module (`list`, `get`): qualify by the tag.
            if let (Some(tag), Some(id)) =
                (op.tags.as_ref().and_then(|t| t.first()), &op.operation_id)
                && !id.starts_with(tag.as_str())
            {
                op.operation_id = Some(format!("{tag}_{id}"));
            }
            for t in op.tags.iter().flatten() {
                tags.insert(t.clone());
            }
        }
    }
    doc.tags = Some(tags.into_iter().map(Tag::new).collect());
}

/// The least API role an operation needs, from its `api_token` scopes.
pub(crate) fn api_role(op: &Operation) -> Option<String> {
    op.security.iter().flatten().find_map(|req| {
        let value = serde_json::to_value(req).ok()?;
        let scopes = value.get(API_TOKEN)?.as_array()?;
        Some(
            scopes
                .first()
                .and_then(|s| s.as_str())
                .unwrap_or("viewer")
                .to_string(),
        )
    })
}

fn add_shared_errors(op: &mut Operation) {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let role = api_role(op);
    let wants = |code: &str| match code {
        "400" => op.parameters.as_ref().is_some_and(|p| !p.is_empty()) || op.request_body.is_some(),
        "401" => secured,
        "403" => role.as_deref().is_some_and(|r| r != "viewer"),
        "413" => op.request_body.is_some(),
        "422" => false,
        _ => true,
    };
    let add: Vec<(&str, &str)> = SHARED
        .iter()
        .filter(|(code, _, _)| wants(code))
        .map(|(code, name, _)| (*code, *name))
        .collect();
    for (code, name) in add {
        op.responses
            .responses
            .entry(code.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (method, path) of every operation of the document.
    fn operations(doc: &OpenApi) -> Vec<(String, String)> {
        let value = serde_json::to_value(doc).unwrap();
        let mut ops = Vec::new();
        for (path, item) in value["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.push((method.clone(), path.clone()));
            }
        }
        ops.sort();
        ops
    }

    /// Handler names registered in `routes()`, from the source of `api/mod.rs`.
    fn registered_handlers() -> Vec<String> {
        let source = include_str!("mod.rs");
        let start = source.find("pub(crate) fn routes()").unwrap();
        let body = &source[start..start + source[start..].find("\n}\n").unwrap()];
        let mut names = Vec::new();
        for piece in body.split("routes!(").skip(1) {
            let inner = &piece[..piece.find(')').unwrap()];
            names.extend(inner.split(',').map(|n| n.trim().to_string()));
        }
        names
    }

    #[test]
    fn the_router_registers_routes_only_with_their_operations() {
        let source = include_str!("mod.rs");
        let body = &source[source.find("pub(crate) fn routes()").unwrap()..];
        let body = &body[..body.find("\n}\n").unwrap()];
        for forbidden in [".route(", ".route_service(", ".nest_service(", ".merge("] {
            assert!(
                !body.contains(forbidden),
                "routes() uses `{forbidden}`: such a route would be missing from the \
                 OpenAPI document; register it with `.routes(routes!(handler))`"
            );
        }
        assert!(
            !source.contains("axum::routing::"),
            "api/mod.rs routes with axum directly"
        );
    }

    #[test]
    fn every_registered_handler_is_one_operation_of_the_document() {
        let handlers = registered_handlers();
        let ops = operations(&document());
        assert_eq!(
            handlers.len(),
            ops.len(),
            "handlers {handlers:?} vs operations {ops:?}"
        );
        for (method, path) in &ops {
            assert!(
                path.starts_with(drover_proto::API_PREFIX),
                "{method} {path} is outside the API prefix"
            );
        }
        // A few we know, to see that the prefix and path parameters come out right.
        for (method, path) in [
            ("get", "/api/v1/health"),
            ("get", "/api/v1/openapi.json"),
            ("delete", "/api/v1/tokens/{id}"),
            ("post", "/api/v1/hosts/{host}/{action}"),
            ("post", "/api/v1/agent/commands/{id}/status"),
        ] {
            assert!(
                ops.contains(&(method.to_string(), path.to_string())),
                "{method} {path} missing from {ops:?}"
            );
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = json();
        let value: serde_json::Value = serde_json::from_str(doc).unwrap();
        for piece in doc.split("\"$ref\":\"#/components/").skip(1) {
            let target = &piece[..piece.find('"').unwrap()];
            let (kind, name) = target.split_once('/').unwrap();
            assert!(
                value["components"][kind].get(name).is_some(),
                "dangling reference to {target}"
            );
        }
    }

    #[test]
    fn every_operation_is_secured_documented_and_shares_the_error_shape() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        for s in [API_TOKEN, AGENT_CREDENTIAL, JOIN_TOKEN] {
            assert_eq!(schemes[s]["scheme"], "bearer", "{s}");
        }
        let public = ["/api/v1/health", "/api/v1/openapi.json"];
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let what = format!("{method} {path}");
                assert!(
                    ids.insert(op["operationId"].as_str().unwrap().to_string()),
                    "{what}: duplicate operationId"
                );
                assert!(
                    op["summary"].is_string() || op["description"].is_string(),
                    "{what}"
                );
                let security = op["security"].as_array();
                if public.contains(&path.as_str()) {
                    assert!(
                        security.is_none_or(|s| s.is_empty()),
                        "{what} needs no token"
                    );
                    continue;
                }
                let security = security.unwrap_or_else(|| panic!("{what} has no security"));
                assert!(!security.is_empty(), "{what}");
                let responses = op["responses"].as_object().unwrap();
                assert_eq!(
                    responses["401"]["$ref"], "#/components/responses/Unauthorized",
                    "{what}"
                );
                assert!(responses.contains_key("500"), "{what}");
                if method != "get" && !path.starts_with("/api/v1/agent/") {
                    let role = security[0][API_TOKEN][0].as_str();
                    assert!(role.is_some(), "{what} names no role");
                }
            }
        }
    }
}
