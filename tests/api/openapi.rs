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
