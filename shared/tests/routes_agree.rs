//! The route table (`shared::api::ROUTES`) is the one list of endpoints. This test checks that
//! everything else that names endpoints agrees with it:
//! - `template.yaml`: one `AWS::Serverless::Function` per route, built by cargo-lambda from the
//!   workspace root, with the route's binary and its HttpApi method and path, and nothing else;
//! - `functions/<package>/src/bin/<function>.rs`: one binary per route, serving that route;
//! - `events/<function>.json`: an API Gateway HTTP API (v2) event of the route;
//! - `local-api`: dispatches through the same table.
//!
//! Each check collects every disagreement and fails once, listing them by route.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use shared::api::{ROUTES, Route, RouteMatch, find_route};
use shared::secrets::Secret;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn fail_if_any(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  - {}",
        problems.len(),
        problems.join("\n  - ")
    );
}

/// `create-app` -> `CreateAppFunction`.
fn logical_id(function: &str) -> String {
    let mut id: String = function
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    id.push_str("Function");
    id
}

fn route_key(route: &Route) -> String {
    format!("{} {}", route.method, route.path)
}

// ---------------------------------------------------------------------------------------------
// template.yaml

/// The template, parsed. CloudFormation short-form tags (`!Ref X`, `!Sub "..."`, `!GetAtt X.Y`)
/// are dropped by the loader, leaving their operand: `!Ref HttpApi` reads as `"HttpApi"`.
fn template() -> Yaml {
    let path = root().join("template.yaml");
    let text = read(&path);
    let mut docs = YamlLoader::load_from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    assert_eq!(
        docs.len(),
        1,
        "template.yaml must hold exactly one document"
    );
    docs.remove(0)
}

fn str_of(yaml: &Yaml) -> Option<&str> {
    yaml.as_str()
}

struct HttpEvent {
    name: String,
    method: Option<String>,
    path: Option<String>,
    api_id: Option<String>,
}

struct TemplateFunction {
    logical_id: String,
    binary: Option<String>,
    build_method: Option<String>,
    code_uri: Option<String>,
    http_events: Vec<HttpEvent>,
    /// Events of any other type, by name and type.
    other_events: Vec<(String, String)>,
}

fn resources(doc: &Yaml) -> Vec<(String, &Yaml)> {
    let resources = doc["Resources"]
        .as_hash()
        .expect("template.yaml has no Resources mapping");
    resources
        .iter()
        .map(|(k, v)| {
            (
                k.as_str()
                    .expect("resource logical IDs are strings")
                    .to_owned(),
                v,
            )
        })
        .collect()
}

fn template_functions(doc: &Yaml) -> Vec<TemplateFunction> {
    let global_code_uri = str_of(&doc["Globals"]["Function"]["CodeUri"]).map(str::to_owned);
    resources(doc)
        .into_iter()
        .filter(|(_, r)| str_of(&r["Type"]) == Some("AWS::Serverless::Function"))
        .map(|(logical_id, r)| {
            let props = &r["Properties"];
            let mut http_events = Vec::new();
            let mut other_events = Vec::new();
            if let Some(events) = props["Events"].as_hash() {
                for (name, event) in events {
                    let name = name.as_str().unwrap_or("?").to_owned();
                    let kind = str_of(&event["Type"]).unwrap_or("?");
                    if kind == "HttpApi" {
                        let p = &event["Properties"];
                        http_events.push(HttpEvent {
                            name,
                            method: str_of(&p["Method"]).map(str::to_owned),
                            path: str_of(&p["Path"]).map(str::to_owned),
                            api_id: str_of(&p["ApiId"]).map(str::to_owned),
                        });
                    } else {
                        other_events.push((name, kind.to_owned()));
                    }
                }
            }
            TemplateFunction {
                logical_id,
                binary: str_of(&r["Metadata"]["BuildProperties"]["Binary"]).map(str::to_owned),
                build_method: str_of(&r["Metadata"]["BuildMethod"]).map(str::to_owned),
                code_uri: str_of(&props["CodeUri"])
                    .map(str::to_owned)
                    .or_else(|| global_code_uri.clone()),
                http_events,
                other_events,
            }
        })
        .collect()
}

fn http_api_ids(doc: &Yaml) -> BTreeSet<String> {
    resources(doc)
        .into_iter()
        .filter(|(_, r)| str_of(&r["Type"]) == Some("AWS::Serverless::HttpApi"))
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn template_has_one_function_per_route_with_its_method_and_path() {
    let doc = template();
    let functions = template_functions(&doc);
    let apis = http_api_ids(&doc);
    let mut problems = Vec::new();

    for route in ROUTES {
        let key = route_key(route);
        let matching: Vec<&TemplateFunction> = functions
            .iter()
            .filter(|f| f.binary.as_deref() == Some(route.function))
            .collect();
        let f = match matching.as_slice() {
            [f] => *f,
            [] => {
                problems.push(format!(
                    "route `{key}` ({}): no AWS::Serverless::Function with \
                     Metadata.BuildProperties.Binary: {}",
                    route.function, route.function
                ));
                continue;
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|f| f.logical_id.as_str()).collect();
                problems.push(format!(
                    "route `{key}` ({}): {} functions build that binary: {ids:?}",
                    route.function,
                    many.len()
                ));
                continue;
            }
        };
        let who = format!(
            "route `{key}` ({}, resource {})",
            route.function, f.logical_id
        );

        let expected_id = logical_id(route.function);
        if f.logical_id != expected_id {
            problems.push(format!("{who}: logical ID should be {expected_id}"));
        }
        if f.build_method.as_deref() != Some("rust-cargolambda") {
            problems.push(format!(
                "{who}: Metadata.BuildMethod is {:?}, expected rust-cargolambda",
                f.build_method
            ));
        }
        if f.code_uri.as_deref() != Some(".") {
            problems.push(format!(
                "{who}: CodeUri is {:?}, expected \".\" (the workspace root, one shared target dir)",
                f.code_uri
            ));
        }
        if !f.other_events.is_empty() {
            problems.push(format!(
                "{who}: has non-HttpApi events {:?}; each function serves exactly its route",
                f.other_events
            ));
        }
        match f.http_events.as_slice() {
            [event] => {
                if event.method.as_deref() != Some(route.method) {
                    problems.push(format!(
                        "{who}: HttpApi event `{}` has Method {:?}, expected {}",
                        event.name, event.method, route.method
                    ));
                }
                if event.path.as_deref() != Some(route.path) {
                    problems.push(format!(
                        "{who}: HttpApi event `{}` has Path {:?}, expected {}",
                        event.name, event.path, route.path
                    ));
                }
                match &event.api_id {
                    Some(id) if apis.contains(id) => {}
                    other => problems.push(format!(
                        "{who}: HttpApi event `{}` has ApiId {other:?}, expected !Ref to one of \
                         the template's AWS::Serverless::HttpApi resources {apis:?}",
                        event.name
                    )),
                }
            }
            events => problems.push(format!(
                "{who}: has {} HttpApi events, expected exactly one ({key})",
                events.len()
            )),
        }
    }
    fail_if_any("template.yaml disagrees with ROUTES", problems);
}

/// Each function's environment names exactly the secrets its route needs
/// (`RouteId::secrets`), by ARN (`<NAME>_SECRET_ARN`), and no secret's value; the Globals
/// name none. (scripts/check_template.py checks the expanded template: that these ARNs are
/// secrets, that each role may read exactly those, and that no NoEcho parameter reaches an
/// environment.)
#[test]
fn each_function_is_given_the_secrets_of_its_route_and_no_other() {
    let doc = template();
    let mut problems = Vec::new();
    let names = |env: &Yaml| -> BTreeSet<String> {
        env["Variables"]
            .as_hash()
            .map(|vars| {
                vars.keys()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let value_names: BTreeSet<&str> = Secret::ALL.iter().map(|s| s.value_env()).collect();
    let global = names(&doc["Globals"]["Function"]["Environment"]);
    for name in &global {
        if name.ends_with("_SECRET_ARN") || value_names.contains(name.as_str()) {
            problems.push(format!(
                "Globals.Function: {name} gives a secret to every function"
            ));
        }
    }
    for route in ROUTES {
        let id = logical_id(route.function);
        let env = names(&doc["Resources"][id.as_str()]["Properties"]["Environment"]);
        let given: BTreeSet<String> = env
            .iter()
            .filter(|n| n.ends_with("_SECRET_ARN"))
            .cloned()
            .collect();
        let wanted: BTreeSet<String> = route
            .id
            .secrets()
            .iter()
            .map(|s| s.arn_env().to_owned())
            .collect();
        if given != wanted {
            problems.push(format!(
                "{id}: its environment names the secrets {given:?}, its route needs {wanted:?}"
            ));
        }
        for name in env.iter().filter(|n| value_names.contains(n.as_str())) {
            problems.push(format!("{id}: {name} would hold a secret's value"));
        }
    }
    fail_if_any("template.yaml secrets", problems);
}

#[test]
fn template_has_no_function_outside_the_route_table() {
    let doc = template();
    let known: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
    let mut problems = Vec::new();
    for f in template_functions(&doc) {
        match f.binary.as_deref() {
            Some(binary) if known.contains(binary) => {}
            Some(binary) => problems.push(format!(
                "function {} builds binary `{binary}`, which no entry of ROUTES names",
                f.logical_id
            )),
            None => problems.push(format!(
                "function {} has no Metadata.BuildProperties.Binary",
                f.logical_id
            )),
        }
    }
    fail_if_any("template.yaml has functions that are not routes", problems);
}

#[test]
fn template_serves_routes_at_the_root_without_a_circular_dependency() {
    let doc = template();
    let apis = http_api_ids(&doc);
    assert_eq!(
        apis.len(),
        1,
        "template.yaml should have exactly one AWS::Serverless::HttpApi, has {apis:?}"
    );
    let api = apis.iter().next().unwrap();
    let mut problems = Vec::new();
    for (id, r) in resources(&doc) {
        if &id == api && str_of(&r["Properties"]["StageName"]) != Some("$default") {
            problems.push(format!(
                "{id}: StageName must be $default (the SDKs join /v1/... to the base URL; a stage \
                 name would prefix every path)"
            ));
        }
    }
    // SAM writes each function's ARN into the HttpApi's OpenAPI body, so a function whose
    // environment refers to the API is a cycle that CloudFormation refuses at deploy time
    // (neither `sam validate --lint` nor `cfn-lint template.yaml` reports it).
    let mut envs = vec![(
        "Globals.Function".to_owned(),
        &doc["Globals"]["Function"]["Environment"],
    )];
    for (id, r) in resources(&doc) {
        if str_of(&r["Type"]) == Some("AWS::Serverless::Function") {
            envs.push((id, &r["Properties"]["Environment"]));
        }
    }
    for (owner, env) in envs {
        let mut strings = Vec::new();
        collect_strings(env, &mut strings);
        for s in strings.into_iter().filter(|s| mentions_resource(s, api)) {
            problems.push(format!(
                "{owner}: Environment refers to {api} ({s:?}): circular dependency \
                 (the API's body references every function)"
            ));
        }
    }
    fail_if_any("template.yaml API settings", problems);
}

fn collect_strings<'a>(yaml: &'a Yaml, out: &mut Vec<&'a str>) {
    match yaml {
        Yaml::String(s) => out.push(s),
        Yaml::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Yaml::Hash(map) => map.iter().for_each(|(k, v)| {
            collect_strings(k, out);
            collect_strings(v, out);
        }),
        _ => {}
    }
}

/// `HttpApi`, `HttpApi.ApiEndpoint`, or `...${HttpApi}...`/`${HttpApi.X}` inside a `!Sub`.
fn mentions_resource(s: &str, id: &str) -> bool {
    s == id
        || s.strip_prefix(id).is_some_and(|rest| rest.starts_with('.'))
        || s.contains(&format!("${{{id}}}"))
        || s.contains(&format!("${{{id}."))
}

// ---------------------------------------------------------------------------------------------
// functions/*/src/bin

/// Binaries under `functions/*/src/bin`: `name.rs` or `name/main.rs`, by name, with their file.
fn function_binaries() -> BTreeMap<String, Vec<PathBuf>> {
    let mut bins: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let Ok(packages) = fs::read_dir(root().join("functions")) else {
        return bins;
    };
    for package in packages.flatten() {
        let Ok(entries) = fs::read_dir(package.path().join("src/bin")) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.join("main.rs").is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                bins.entry(name).or_default().push(path.join("main.rs"));
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                bins.entry(name).or_default().push(path);
            }
        }
    }
    bins
}

#[test]
fn every_route_has_its_function_binary() {
    let mut problems = Vec::new();
    for route in ROUTES {
        let path = root()
            .join("functions")
            .join(route.package)
            .join("src/bin")
            .join(format!("{}.rs", route.function));
        let who = format!("route `{}` ({})", route_key(route), route.function);
        match fs::read_to_string(&path) {
            Err(e) => problems.push(format!("{who}: cannot read {}: {e}", path.display())),
            Ok(text) => {
                let id = format!("RouteId::{:?}", route.id);
                if !text.contains(&id) {
                    problems.push(format!(
                        "{who}: {} does not mention `{id}`, so it does not serve this route",
                        path.display()
                    ));
                }
            }
        }
    }
    fail_if_any("functions/ disagrees with ROUTES", problems);
}

#[test]
fn no_function_binary_outside_the_route_table() {
    let known: BTreeSet<&str> = ROUTES.iter().map(|r| r.function).collect();
    let mut problems = Vec::new();
    for (name, paths) in function_binaries() {
        if !known.contains(name.as_str()) {
            problems.push(format!(
                "binary `{name}` ({}) is not the function of any entry of ROUTES",
                paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if paths.len() > 1 {
            problems.push(format!(
                "binary `{name}` is defined {} times ({:?}); bin names must be unique in the \
                 workspace",
                paths.len(),
                paths
            ));
        }
    }
    fail_if_any("functions/ has binaries that are not routes", problems);
}

// ---------------------------------------------------------------------------------------------
// events/*.json

#[test]
fn every_route_has_an_http_api_v2_event() {
    let mut problems = Vec::new();
    for route in ROUTES {
        let key = route_key(route);
        let who = format!("route `{key}` ({})", route.function);
        let path = root()
            .join("events")
            .join(format!("{}.json", route.function));
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) => {
                problems.push(format!("{who}: cannot read {}: {e}", path.display()));
                continue;
            }
        };
        let event: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!("{who}: {} is not JSON: {e}", path.display()));
                continue;
            }
        };
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut expect = |pointer: &str, expected: &str| {
            let actual = event.pointer(pointer);
            if actual.and_then(|v| v.as_str()) != Some(expected) {
                problems.push(format!(
                    "{who}: events/{file} {pointer} is {actual:?}, expected {expected:?}"
                ));
            }
        };
        expect("/version", "2.0");
        expect("/routeKey", &key);
        expect("/requestContext/routeKey", &key);
        expect("/requestContext/http/method", route.method);
        expect("/requestContext/stage", "$default");

        // The concrete path must be one that the route table sends to this route, with the
        // same parameters as the event's pathParameters.
        let raw_path = event.pointer("/rawPath").and_then(|v| v.as_str());
        match raw_path.map(|p| (p, find_route(route.method, p))) {
            None => problems.push(format!("{who}: events/{file} has no rawPath")),
            Some((p, RouteMatch::Found(found, params))) if found.id == route.id => {
                if event
                    .pointer("/requestContext/http/path")
                    .and_then(|v| v.as_str())
                    != Some(p)
                {
                    problems.push(format!(
                        "{who}: events/{file} requestContext.http.path differs from rawPath {p:?}"
                    ));
                }
                let expected: BTreeMap<String, String> = params.into_iter().collect();
                let actual: BTreeMap<String, String> = event
                    .pointer("/pathParameters")
                    .and_then(|v| v.as_object())
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default();
                if actual != expected {
                    problems.push(format!(
                        "{who}: events/{file} pathParameters {actual:?} disagree with rawPath \
                         {p:?}, which gives {expected:?}"
                    ));
                }
            }
            Some((p, other)) => problems.push(format!(
                "{who}: events/{file} rawPath {p:?} with method {} resolves to {other:?}, not to \
                 this route",
                route.method
            )),
        }
    }
    fail_if_any("events/ disagrees with ROUTES", problems);
}

// ---------------------------------------------------------------------------------------------
// local-api

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn local_api_dispatches_through_the_route_table() {
    let dir = root().join("local-api/src");
    let mut files = Vec::new();
    rust_files(&dir, &mut files);
    assert!(
        !files.is_empty(),
        "no Rust sources under {}: the local server is missing",
        dir.display()
    );
    let calls = files.iter().any(|f| read(f).contains("find_route("));
    assert!(
        calls,
        "no file under {} calls `find_route(`: the local server must dispatch through \
         shared::api::ROUTES, not a route list of its own",
        dir.display()
    );
}

#[test]
fn logical_ids_are_camel_case_of_the_function_name() {
    assert_eq!(logical_id("create-app"), "CreateAppFunction");
    assert_eq!(
        logical_id("otp-sms-login-or-create"),
        "OtpSmsLoginOrCreateFunction"
    );
}
