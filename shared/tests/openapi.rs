//! `openapi.json` at the repository root is the generated document, and the document describes
//! exactly the routes of `ROUTES`.
//!
//! Regenerate it with `UPDATE_OPENAPI=1 cargo nextest run -p otp-shared --test openapi`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use shared::api::ROUTES;
use shared::api::openapi::{document, document_text, openapi_path};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi.json")
}

#[test]
fn committed_document_is_the_generated_one() {
    let generated = document_text().unwrap_or_else(|conflicts| {
        panic!(
            "two structs claim the schema names {conflicts:?}: rename one with #[schema(as = ...)]"
        )
    });
    let path = committed_path();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).expect("openapi.json is writable");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json differs from the generated document; regenerate it with \
         `UPDATE_OPENAPI=1 cargo nextest run -p otp-shared --test openapi` and commit it"
    );
}

#[test]
fn document_has_every_route_and_nothing_else() {
    let document = document().expect("no schema name conflicts");
    let mut described = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            described.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), openapi_path(r.path)))
        .collect();
    assert_eq!(described, routed);
    assert_eq!(routed.len(), ROUTES.len(), "two routes render as one path");
}

#[test]
fn every_reference_resolves() {
    let document = document().expect("no schema name conflicts");
    let text = document.to_string();
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "unresolved $ref {name}");
    }
}

#[test]
fn greedy_path_parameter_is_one_openapi_parameter() {
    assert_eq!(openapi_path("/sdk/v1/{proxy+}"), "/sdk/v1/{proxy}");
    assert_eq!(openapi_path("/v1/users/{user_id}"), "/v1/users/{user_id}");
}
