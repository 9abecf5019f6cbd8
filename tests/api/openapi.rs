//! `GET /api/openapi.json`: generated from the handlers, and complete.

use std::{collections::BTreeSet, path::Path};

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::spawn_app;

/// Route macros whose paths are deliberately not part of the JSON API document.
const NOT_API: &[&str] = &["/ws"];

/// The HTTP methods of actix-web's route macros.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// One route macro found in the source, and the `#[utoipa::path]` annotation above it.
#[derive(Debug)]
struct Route {
    file: String,
    method: String,
    /// The path in the route macro (relative to its scope).
    local: String,
    /// (method, full path) from the annotation, if there is one.
    documented: Option<(String, String)>,
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of the first string literal after `key` in `text`.
fn literal_after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let rest = &text[start..];
    let open = rest.find('"')? + 1;
    let close = rest[open..].find('"')? + open;
    Some(&rest[open..close])
}

/// Every route macro (`#[get("...")]`, ...) under `src/`, with its annotation.
fn source_routes() -> Vec<Route> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for method in METHODS {
            let needle = format!("#[{method}(\"");
            let mut from = 0;
            while let Some(found) = text[from..].find(&needle) {
                let at = from + found;
                from = at + needle.len();
                let local = literal_after(&text[at..], "(")
                    .expect("route path")
                    .to_owned();
                // The attributes of this item: everything since the previous item ended.
                let item_start = text[..at].rfind("\n}").map_or(0, |i| i + 2);
                let attrs = &text[item_start..at];
                let documented = attrs.find("#[utoipa::path(").map(|i| {
                    let block = &attrs[i + "#[utoipa::path(".len()..];
                    let doc_method = block
                        .trim_start()
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let doc_path = literal_after(block, "path =")
                        .unwrap_or_default()
                        .to_owned();
                    (doc_method, doc_path)
                });
                routes.push(Route {
                    file: file.display().to_string(),
                    method: (*method).to_owned(),
                    local,
                    documented,
                });
            }
        }
    }
    routes
}

/// (method, path) of every operation in the served document.
fn document_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if METHODS.contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

#[actix_web::test]
async fn every_mounted_api_route_is_in_the_openapi_document() {
    let app = spawn_app().await;
    let res = app.get("/api/openapi.json", None).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body["openapi"].as_str().unwrap().starts_with("3."));
    let documented = document_operations(&res.body);

    let routes = source_routes();
    assert!(routes.len() >= 20, "the scan found the routes: {routes:?}");
    for route in &routes {
        if NOT_API.contains(&route.local.as_str()) {
            continue;
        }
        let Some((method, path)) = &route.documented else {
            panic!(
                "#[{}(\"{}\")] in {} has no #[utoipa::path(..)]: add one and list the handler \
                 in ApiDoc (src/http/openapi.rs), or add its path to NOT_API if it is not JSON API",
                route.method, route.local, route.file
            );
        };
        assert_eq!(
            method, &route.method,
            "{route:?}: annotation and route disagree"
        );
        assert!(
            path.ends_with(&route.local),
            "{route:?}: annotated path does not end with the route's path"
        );
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "{method} {path} ({}) is mounted but not in /api/openapi.json: list it in ApiDoc",
            route.file
        );
    }
    for must in [
        ("post", "/api/login"),
        ("get", "/api/users"),
        ("get", "/api/themes"),
        ("delete", "/api/admin/themes/{id}"),
        ("get", "/api/admin/stats"),
    ] {
        assert!(
            documented.contains(&(must.0.to_owned(), must.1.to_owned())),
            "{must:?}"
        );
    }
}

#[actix_web::test]
async fn every_documented_operation_is_actually_mounted() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;
    for (method, path) in document_operations(&doc) {
        // Every path parameter becomes "1".
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
        let res = app
            .request(&method.to_uppercase(), &concrete, None, body)
            .await;
        let message = res.body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.starts_with("no route for"),
            "{method} {path} is documented but not mounted"
        );
    }
}

#[actix_web::test]
async fn the_document_describes_schemas_and_both_ways_to_authenticate() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;
    let schemas = &doc["components"]["schemas"];
    for name in [
        "UserView",
        "UserPage",
        "ThemeView",
        "ErrorBody",
        "Stats",
        "LoginResponse",
    ] {
        assert!(schemas[name].is_object(), "schema {name} missing");
    }
    let user = schemas["UserView"].to_string();
    assert!(
        !user.contains("password"),
        "a user never carries a password: {user}"
    );
    let security = &doc["components"]["securitySchemes"];
    assert_eq!(security["bearer"]["scheme"], "bearer");
    assert_eq!(security["session_cookie"]["in"], "cookie");
    let params = doc["paths"]["/api/users"]["get"]["parameters"].to_string();
    for name in ["theme", "capability", "page", "per_page"] {
        assert!(
            params.contains(&format!("\"{name}\"")),
            "{name} in {params}"
        );
    }
}

/// The value a local `$ref` (`#/a/b`) points at, if any.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` under `value`, with where it was found.
fn refs(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    out.push((at.clone(), child.as_str().unwrap_or_default().to_owned()));
                } else {
                    refs(child, format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[actix_web::test]
async fn every_reference_in_the_document_resolves() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;
    let mut found = Vec::new();
    refs(&doc, String::new(), &mut found);
    assert!(found.len() > 20, "the walk found the references: {found:?}");
    let unresolved: Vec<_> = found
        .iter()
        .filter(|(_, reference)| resolve(&doc, reference).is_none())
        .collect();
    assert!(
        unresolved.is_empty(),
        "references to nothing (register the schema in ApiDoc's components): {unresolved:?}"
    );
}

/// (method, path, operation) for every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                ops.push((method.clone(), path.clone(), op));
            }
        }
    }
    ops
}

#[actix_web::test]
async fn every_operation_documents_the_errors_its_inputs_and_guards_can_cause() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;
    let global_security = doc["security"].as_array().is_some_and(|s| !s.is_empty());
    for (method, path, op) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        let responses = op["responses"].as_object().expect("responses");
        let documents = |status: &str| responses.contains_key(status);
        // A JSON body: the extractor refuses bad JSON (400), a big body (413) and another
        // Content-Type (415) before the handler runs.
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(
                    documents(status),
                    "{name} takes a JSON body: document {status}"
                );
            }
        }
        // Path and query parameters can be malformed.
        if op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
            assert!(documents("400"), "{name} has parameters: document 400");
        }
        // An operation that needs a session refuses a request without one.
        let needs_session = match op.get("security") {
            Some(security) => security.as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
            }),
            None => global_security,
        };
        if needs_session {
            assert!(documents("401"), "{name} needs a session: document 401");
        }
        if path.starts_with("/api/admin/") {
            assert!(documents("403"), "{name} is admin only: document 403");
        }
        // Every error is the one JSON error body.
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{name} {status}"
                );
            }
        }
    }
}

/// The schema of `property` in the component schema `component`.
fn property<'a>(doc: &'a Value, component: &str, property: &str) -> &'a Value {
    &doc["components"]["schemas"][component]["properties"][property]
}

/// The schema of the query parameter `name` of `GET path`.
fn query_param<'a>(doc: &'a Value, path: &str, name: &str) -> &'a Value {
    let params = doc["paths"][path]["get"]["parameters"]
        .as_array()
        .expect("parameters");
    let param = params
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{name} in {path}"));
    assert_eq!(param["in"], "query", "{name} in {path}");
    assert_eq!(param["required"], false, "{name} in {path}");
    &param["schema"]
}

#[actix_web::test]
async fn the_schemas_carry_the_rules_the_server_enforces() {
    use tertulia::{auth, http};
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;

    let nickname = property(&doc, "RegisterRequest", "nickname");
    assert_eq!(nickname["minLength"], auth::NICKNAME_MIN);
    assert_eq!(nickname["maxLength"], auth::NICKNAME_MAX);
    assert!(nickname["pattern"].is_string(), "{nickname}");
    for (component, field) in [
        ("RegisterRequest", "password"),
        ("UpdateMeRequest", "new_password"),
    ] {
        let password = property(&doc, component, field);
        assert_eq!(
            password["minLength"],
            auth::PASSWORD_MIN,
            "{component}.{field}"
        );
        assert_eq!(
            password["maxLength"],
            auth::PASSWORD_MAX,
            "{component}.{field}"
        );
    }
    for component in ["CreateThemeRequest", "UpdateThemeRequest"] {
        let name = property(&doc, component, "name");
        assert_eq!(name["minLength"], 1, "{component}");
        assert_eq!(
            name["maxLength"],
            http::admin::THEME_NAME_MAX,
            "{component}"
        );
        assert!(name["pattern"].is_string(), "{component}: {name}");
        let description = property(&doc, component, "description");
        assert_eq!(
            description["maxLength"],
            http::admin::THEME_DESCRIPTION_MAX,
            "{component}"
        );
    }
    // Bodies refuse fields they do not know (`deny_unknown_fields`).
    assert_eq!(
        doc["components"]["schemas"]["RegisterRequest"]["additionalProperties"],
        false
    );

    let limit = query_param(&doc, "/api/rooms/{room}/messages", "limit");
    assert_eq!(limit["minimum"], 1);
    assert_eq!(limit["maximum"], tertulia::db::messages::MAX_PAGE);
    let limit = query_param(&doc, "/api/calls", "limit");
    assert_eq!(limit["maximum"], http::calls::MAX_LIMIT);
    for path in ["/api/users", "/api/admin/users"] {
        let per_page = query_param(&doc, path, "per_page");
        assert_eq!(per_page["minimum"], 1, "{path}");
        assert_eq!(per_page["maximum"], http::users::MAX_PER_PAGE, "{path}");
        assert_eq!(query_param(&doc, path, "page")["minimum"], 1, "{path}");
    }
}

#[actix_web::test]
async fn the_document_says_which_operations_need_a_session_and_the_server_agrees() {
    let app = spawn_app().await;
    let doc = app.get("/api/openapi.json", None).await.body;
    let mut public = Vec::new();
    for (method, path, op) in operations(&doc) {
        let needs_session = match op.get("security") {
            Some(security) => security.as_array().is_some_and(|s| {
                s.iter()
                    .any(|r| r.as_object().is_some_and(|r| !r.is_empty()))
            }),
            None => true,
        };
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "1" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        let body = matches!(method.as_str(), "post" | "put" | "patch").then(|| json!({}));
        let res = app
            .request(&method.to_uppercase(), &concrete, None, body)
            .await;
        if needs_session {
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} declares a session but answers without one: {}",
                res.body
            );
        } else {
            assert_ne!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} declares no session but refuses a request without one"
            );
            public.push(format!("{method} {path}"));
        }
    }
    for must in ["post /api/register", "post /api/login", "get /api/themes"] {
        assert!(public.contains(&must.to_owned()), "{must} in {public:?}");
    }
}
