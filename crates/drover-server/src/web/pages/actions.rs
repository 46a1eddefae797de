//! The action page: what an action does and takes, and (for operators) a form built
//! from its parameter schema that runs it. Values go in as text and are cast by the
//! parameter's type exactly as the API and StackStorm cast them; a bad value comes back
//! on the form with the reason, and nothing runs.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawForm, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use drover_core::automation::action::Action;
use drover_core::automation::params::ParamSpec;
use drover_proto::auth::Role;
use serde_json::{Map, Value};

use super::{Chrome, render, urlencode};
use crate::web::session::{self, Session};
use crate::web::{PageError, Web, csrf};

/// Prefix of a parameter's form field (`p.cmd`), so no parameter name can collide
/// with the form's own fields.
const FIELD: &str = "p.";

/// How a parameter is entered.
#[derive(Debug, PartialEq)]
enum Input {
    /// One line of text (`number` true: a numeric keyboard on phones).
    Text { number: bool },
    /// Hidden characters.
    Password,
    /// Several lines (JSON for arrays and objects).
    Area,
    /// One of the listed values, or the default.
    Choice(Vec<String>),
}

/// One field of the form.
struct Field {
    name: String,
    id: String,
    kind: Input,
    type_: String,
    description: String,
    required: bool,
    immutable: bool,
    /// The default as text (`—` when none).
    default: String,
    /// What the user typed last time (never for a secret).
    value: String,
}

#[derive(Template)]
#[template(path = "action.html")]
struct ActionPage {
    chrome: Chrome,
    csrf: String,
    operator: bool,
    reference: String,
    runner: String,
    description: String,
    enabled: bool,
    fields: Vec<Field>,
    error: Option<String>,
}

impl Field {
    /// The control the template draws: `text`, `number`, `password`, `area`, `choice`.
    fn control(&self) -> &'static str {
        match &self.kind {
            Input::Text { number: false } => "text",
            Input::Text { number: true } => "number",
            Input::Password => "password",
            Input::Area => "area",
            Input::Choice(_) => "choice",
        }
    }

    /// The values of a choice (empty otherwise).
    fn choices(&self) -> &[String] {
        match &self.kind {
            Input::Choice(values) => values,
            _ => &[],
        }
    }
}

/// A JSON value as a person types it: strings bare, the rest as JSON.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn field_of(p: &ParamSpec, typed: &HashMap<String, String>) -> Field {
    let type_ = p.type_.clone().unwrap_or_default();
    let kind = if let Some(values) = &p.enum_ {
        Input::Choice(values.iter().map(text_of).collect())
    } else if type_ == "boolean" {
        Input::Choice(vec!["true".into(), "false".into()])
    } else if p.secret {
        Input::Password
    } else if matches!(type_.as_str(), "array" | "object") {
        Input::Area
    } else {
        Input::Text {
            number: matches!(type_.as_str(), "integer" | "number"),
        }
    };
    Field {
        id: format!("param-{}", p.name),
        value: if p.secret {
            String::new()
        } else {
            typed.get(&p.name).cloned().unwrap_or_default()
        },
        name: p.name.clone(),
        kind,
        type_,
        description: p.description.clone().unwrap_or_default(),
        required: p.required,
        immutable: p.immutable,
        default: p
            .default
            .as_ref()
            .map(text_of)
            .unwrap_or_else(|| "—".into()),
    }
}

/// The form's fields: required ones first, then by name; runner parameters included.
fn fields_of(a: &Action, typed: &HashMap<String, String>) -> Vec<Field> {
    let schema = a.effective_parameters();
    let mut fields: Vec<Field> = schema.params.values().map(|p| field_of(p, typed)).collect();
    fields.sort_by(|x, y| (!x.required, &x.name).cmp(&(!y.required, &y.name)));
    fields
}

async fn action(web: &Web, reference: &str) -> Result<Action, PageError> {
    web.catalog()
        .await?
        .actions
        .get(reference)
        .cloned()
        .ok_or_else(|| PageError::not_found(format!("no action `{reference}`")))
}

fn page_of(
    s: &Session,
    a: &Action,
    typed: &HashMap<String, String>,
    error: Option<String>,
) -> ActionPage {
    ActionPage {
        chrome: Chrome::of("automation", s),
        csrf: s.csrf.clone(),
        operator: s.role >= Role::Operator,
        reference: a.reference(),
        runner: a.runner.as_str().to_string(),
        description: a.description.clone().unwrap_or_default(),
        enabled: a.enabled,
        fields: fields_of(a, typed),
        error,
    }
}

/// `GET /ui/actions/{ref}`.
pub(crate) async fn page(
    State(web): State<Arc<Web>>,
    s: Session,
    Path(reference): Path<String>,
) -> Result<Response, PageError> {
    let a = action(&web, &reference).await?;
    render(&page_of(&s, &a, &HashMap::new(), None))
}

/// A posted run form: its CSRF token, the fields as typed (to show them again), and
/// the parameters to run with, or why not.
struct Posted {
    token: Option<String>,
    typed: HashMap<String, String>,
    given: Result<Map<String, Value>, String>,
}

/// The posted form: the CSRF token and the non-empty parameter fields (an empty field
/// means "use the default"). A field that names no parameter is refused.
fn read_form(body: &[u8], a: &Action) -> Posted {
    let schema = a.effective_parameters();
    let mut token = None;
    let mut typed = HashMap::new();
    let mut unknown = Vec::new();
    for (k, v) in form_urlencoded::parse(body) {
        if k == "csrf" {
            token = Some(v.into_owned());
        } else if let Some(name) = k.strip_prefix(FIELD) {
            if schema.get(name).is_none() {
                unknown.push(name.to_string());
            } else if !v.trim().is_empty() {
                typed.insert(name.to_string(), v.into_owned());
            }
        }
    }
    let given = if let Some(name) = unknown.first() {
        Err(format!(
            "parameter `{name}`: not a parameter of this action"
        ))
    } else {
        Ok(typed
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect())
    };
    Posted {
        token,
        typed,
        given,
    }
}

/// `POST /ui/actions/{ref}/run`: runs the action with the form's values and goes to
/// its execution; a refused value comes back on the form (422) and nothing runs.
pub(crate) async fn run(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    s: Session,
    Path(reference): Path<String>,
    RawForm(body): RawForm,
) -> Result<Response, PageError> {
    session::refuse_cross_site(&headers)?;
    let a = action(&web, &reference).await?;
    let Posted {
        token,
        typed,
        given,
    } = read_form(&body, &a);
    csrf::check(&s.csrf, token.as_deref())?;
    s.require(Role::Operator)?;
    let outcome = match given {
        Ok(given) => crate::api::automation::run_action(&web.app, &s.name, &reference, given)
            .await
            .map_err(|e| e.detail().to_string()),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(exec) => {
            Ok(Redirect::to(&format!("/ui/executions/{}", urlencode(&exec.id))).into_response())
        }
        Err(reason) => {
            let html = page_of(&s, &a, &typed, Some(reason)).render()?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, Html(html)).into_response())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_core::automation::action::decode_action;

    fn sample() -> Action {
        decode_action(
            "actions/a.yaml",
            "name: a\nrunner_type: local-shell-cmd\nparameters:\n  \
             count: {type: integer, required: true, description: How many}\n  \
             mode: {type: string, enum: [fast, slow], default: fast}\n  \
             token: {type: string, secret: true}\n  \
             flags: {type: array}\n  \
             dry: {type: boolean}\n",
            "p",
        )
        .expect("decodes")
    }

    #[test]
    fn inputs_follow_the_schema() {
        let typed = HashMap::from([
            ("count".to_string(), "3".to_string()),
            ("token".to_string(), "hunter2".to_string()),
        ]);
        let fields = fields_of(&sample(), &typed);
        let get = |n: &str| fields.iter().find(|f| f.name == n).expect(n);
        assert!(fields[0].required, "required first: {}", fields[0].name);
        assert_eq!(get("count").kind, Input::Text { number: true });
        assert_eq!(get("count").value, "3");
        assert_eq!(
            get("mode").kind,
            Input::Choice(vec!["fast".into(), "slow".into()])
        );
        assert_eq!(get("mode").default, "fast");
        assert_eq!(get("token").kind, Input::Password);
        assert_eq!(get("token").value, "", "a secret is never sent back");
        assert_eq!(get("flags").kind, Input::Area);
        assert_eq!(
            get("dry").kind,
            Input::Choice(vec!["true".into(), "false".into()])
        );
        // The runner's own parameters are there too (`cmd`, `timeout`, …).
        assert!(fields.iter().any(|f| f.name == "cmd"));
    }

    #[test]
    fn the_form_keeps_typed_values_and_refuses_strangers() {
        let a = sample();
        let Posted {
            token,
            typed,
            given,
        } = read_form(b"csrf=t&p.count=+4+&p.mode=&p.cmd=echo+hi", &a);
        assert_eq!(token.as_deref(), Some("t"));
        let given = given.expect("known parameters");
        assert_eq!(given.get("count"), Some(&Value::String(" 4 ".into())));
        assert!(!given.contains_key("mode"), "empty means the default");
        assert_eq!(typed.len(), 2);
        assert_eq!(
            read_form(b"csrf=t&p.nope=1", &a)
                .given
                .expect_err("unknown"),
            "parameter `nope`: not a parameter of this action"
        );
    }
}
