//! No plaintext secret at rest in DynamoDB, ported from the store half of
//! `shared/tests/adversarial_secrets.rs`. A full flow through `shared::api::handle` on
//! `DynamoStore` (app creation, secret rotation, a test identifier, sms and email
//! login_or_create, authenticate with a session, sessions.authenticate by token and JWT, session
//! extension with a second code, the test identifier's fixed code, wrong codes up to a lock, a
//! request with a deleted secret, revocation) collects every secret the callers saw; then a
//! `Scan` of the whole table (every page, strongly consistent) and of its index `gsi1` must hold
//! none of them in any attribute value, nested lists, maps and sets included.
//!
//! How each kind is searched, item by item and value by value:
//!
//! - app secrets, session tokens, JWTs (and their signatures), the management key: long and
//!   random, so no string value may *contain* them; their raw bytes (the base64url decoded) and
//!   the management key's SHA-256 may not be (in) a binary value, nor its hex in a string.
//! - codes (every code delivered, the test identifier's fixed code): 6 digits, and the table is
//!   full of digits (timestamps, ids, counters). A string value is cut into maximal runs of
//!   ASCII digits and no run may *equal* a code (a code stored in a string is always its own
//!   run, `"123456"`, `x#123456`). A number value may not equal a code as a number (DynamoDB
//!   drops leading zeros: `012345` is stored as `12345`), except for codes below 1000, which a
//!   counter (`attempts`, `code_length`, `rev`, ...) could equal by chance: those are matched
//!   in their exact spelling only. Binary values are checked like strings (digit runs of their
//!   bytes), and may not be a code's ASCII bytes.
//! - the code-hashing key: no binary value may contain 8 of its bytes in a row, no string its hex.
//!
//! The stored code records are then checked field by field: the hash is not an unkeyed SHA-256
//! of the code and does not verify without the deployment's code key. (The log half of the
//! in-memory test is not store-specific and is not ported.)

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use serde_json::json;
use shared::api::RouteId;
use shared::clock::Timestamp;
use shared::crypto::{CodeHasher, sha256, to_hex};
use shared::ids::MethodId;
use shared::ports::{ChallengeStore, ConfigStore};
use support::*;

const TEST_PHONE: &str = "+12025550177";
const TEST_CODE: &str = "864209";

/// Everything secret that the flow saw.
#[derive(Default, Debug)]
struct Secrets {
    app_secrets: Vec<String>,
    codes: Vec<String>,
    tokens: Vec<String>,
    jwts: Vec<String>,
    /// (method_id, code): the codes that are stored for a method at the end.
    stored_codes: Vec<(String, String)>,
}

async fn full_flow(w: &mut World) -> Secrets {
    let mut out = Secrets {
        app_secrets: vec![w.secret.clone()],
        ..Secrets::default()
    };
    let m = Auth::Management;
    let app_id = w.app_id.clone();
    let app = [("app_id", app_id.as_str())];

    // Rotation: a second secret, the first deleted; the rest of the flow uses the second.
    let r = call(&w.deps, RouteId::ListSecrets, &app, &m, None).await;
    let first_id = s(&r.body["secrets"][0]["secret_id"]);
    let r = call(&w.deps, RouteId::CreateSecret, &app, &m, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let second = s(&r.body["secret"]);
    out.app_secrets.push(second.clone());
    // A third, kept: a live secret of its own in the table.
    let r = call(&w.deps, RouteId::CreateSecret, &app, &m, None).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    out.app_secrets.push(s(&r.body["secret"]));
    let r = call(
        &w.deps,
        RouteId::DeleteSecret,
        &[("app_id", app_id.as_str()), ("secret_id", &first_id)],
        &m,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    w.secret = second;

    // Test identifier with a fixed code.
    let valid_until = Timestamp(w.start.0 + 86_400).to_rfc3339();
    let r = call(
        &w.deps,
        RouteId::CreateTestIdentifier,
        &app,
        &m,
        Some(json!({"identifier": TEST_PHONE, "code": TEST_CODE, "valid_until": valid_until})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(
        !r.body.to_string().contains(TEST_CODE),
        "the code is never echoed"
    );
    out.codes.push(TEST_CODE.to_owned());

    // SMS and email login_or_create, authenticate with a session.
    let (_, phone_id, sms_code) = w.sms_code(PHONE).await;
    out.codes.push(sms_code.clone());
    let r = w
        .login(
            RouteId::EmailLoginOrCreate,
            json!({"email": EMAIL.to_uppercase()}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_id = s(&r.body["email_id"]);
    let email_code = w.outbox.last_to(EMAIL).unwrap();
    out.codes.push(email_code.clone());

    let r = w.authenticate(&phone_id, &sms_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let token = s(&r.body["session_token"]);
    out.tokens.push(token.clone());
    out.jwts.push(s(&r.body["session_jwt"]));

    // sessions.authenticate by token and by JWT.
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": token, "session_duration_minutes": 120, "session_custom_claims": {"plan": "pro"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let jwt = s(&r.body["session_jwt"]);
    out.jwts.push(jwt.clone());
    let r = w
        .login(RouteId::SessionsAuthenticate, json!({"session_jwt": jwt}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.jwts.push(s(&r.body["session_jwt"]));

    // The email's user (another user than the phone's) gets a session, then extends it with a
    // second code; a third code is left live in the table.
    let r = w.authenticate(&email_id, &email_code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let email_token = s(&r.body["session_token"]);
    out.tokens.push(email_token.clone());
    out.jwts.push(s(&r.body["session_jwt"]));
    let (_, _, second_email_code) = w.email_code(EMAIL).await;
    out.codes.push(second_email_code.clone());
    let r = w
        .login(
            RouteId::OtpAuthenticate,
            json!({"method_id": email_id, "code": second_email_code, "session_token": email_token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.jwts.push(s(&r.body["session_jwt"]));
    let (_, _, live_email_code) = w.email_code(EMAIL).await;
    out.codes.push(live_email_code.clone());
    out.stored_codes.push((email_id.clone(), live_email_code));

    // The test identifier: nothing delivered, and the fixed code authenticates.
    let r = w
        .login(
            RouteId::SmsLoginOrCreate,
            json!({"phone_number": TEST_PHONE}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(w.outbox.codes_to(TEST_PHONE).is_empty());
    let test_phone_id = s(&r.body["phone_id"]);
    out.stored_codes
        .push((test_phone_id.clone(), TEST_CODE.to_owned()));
    let r = w.authenticate(&test_phone_id, TEST_CODE).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    out.tokens.push(s(&r.body["session_token"]));
    out.jwts.push(s(&r.body["session_jwt"]));

    // Wrong codes up to a lock, a live code left in the table.
    let (other_user, other_phone_id, first) = w.sms_code(OTHER_PHONE).await;
    out.codes.push(first.clone());
    for _ in 0..5 {
        let r = w.authenticate(&other_phone_id, &wrong(&first)).await;
        assert_login_error(&r, 404, "otp_code_not_found");
    }
    let (_, _, second) = w.sms_code(OTHER_PHONE).await;
    out.codes.push(second.clone());
    out.stored_codes
        .push((other_phone_id.clone(), second.clone()));
    for _ in 0..5 {
        let r = w.authenticate(&other_phone_id, &wrong(&second)).await;
        assert_login_error(&r, 404, "otp_code_not_found");
    }
    let r = w.get_user(&other_user).await;
    assert_eq!(r.body["is_locked"], json!(true), "{}", r.body);
    let r = w.authenticate(&other_phone_id, &second).await;
    assert_login_error(&r, 429, "user_lock_limit_reached");

    // A live, unused sms code of the first user.
    let (_, _, live_sms_code) = w.sms_code(PHONE).await;
    out.codes.push(live_sms_code.clone());
    out.stored_codes.push((phone_id, live_sms_code));

    // A failed request with a deleted secret in it, and a revocation.
    let r = call(
        &w.deps,
        RouteId::SmsSend,
        &[],
        &Auth::Basic(w.app_id.clone(), out.app_secrets[0].clone()),
        Some(json!({"phone_number": PHONE})),
    )
    .await;
    assert_login_error(&r, 401, "unauthorized_credentials");
    let r = w
        .login(RouteId::SessionsRevoke, json!({"session_token": token}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Every code the sender was handed is a code too.
    for message in w.outbox.messages() {
        assert!(message.code.bytes().all(|b| b.is_ascii_digit()));
        if !out.codes.contains(&message.code) {
            out.codes.push(message.code);
        }
    }
    out
}

/// Maximal runs of ASCII digits.
fn digit_runs(text: &str) -> Vec<&str> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| !run.is_empty())
        .collect()
}

/// (label, needle): what no string value may contain.
fn secret_strings(secrets: &Secrets) -> Vec<(String, String)> {
    let mut needles = Vec::new();
    for secret in &secrets.app_secrets {
        needles.push(("app secret".to_owned(), secret.clone()));
        let random = secret.trim_start_matches("secret-");
        needles.push(("app secret's random part".to_owned(), random.to_owned()));
    }
    for token in &secrets.tokens {
        needles.push(("session token".to_owned(), token.clone()));
    }
    for jwt in &secrets.jwts {
        needles.push(("session JWT".to_owned(), jwt.clone()));
        let signature = jwt.rsplit('.').next().unwrap();
        needles.push(("session JWT's signature".to_owned(), signature.to_owned()));
    }
    needles.push(("management key".to_owned(), MANAGEMENT_KEY.to_owned()));
    needles.push((
        "management key's SHA-256".to_owned(),
        to_hex(&sha256(MANAGEMENT_KEY.as_bytes())),
    ));
    needles.push(("code key (hex)".to_owned(), "a5a5a5a5a5a5a5a5".to_owned()));
    needles.push(("JWT signing key".to_owned(), "PRIVATE KEY".to_owned()));
    needles
}

/// (label, bytes): what no binary value may contain.
fn secret_bytes(secrets: &Secrets) -> Vec<(String, Vec<u8>)> {
    let mut needles = Vec::new();
    for secret in &secrets.app_secrets {
        needles.push(("app secret".to_owned(), secret.as_bytes().to_vec()));
        let random = secret.trim_start_matches("secret-");
        let raw = URL_SAFE_NO_PAD.decode(random).unwrap();
        needles.push(("app secret's raw bytes".to_owned(), raw));
    }
    for token in &secrets.tokens {
        needles.push(("session token".to_owned(), token.as_bytes().to_vec()));
        let raw = URL_SAFE_NO_PAD.decode(token).unwrap();
        needles.push(("session token's raw bytes".to_owned(), raw));
    }
    for jwt in &secrets.jwts {
        let signature = jwt.rsplit('.').next().unwrap();
        let raw = URL_SAFE_NO_PAD.decode(signature).unwrap();
        needles.push(("session JWT's raw signature".to_owned(), raw));
    }
    needles.push((
        "management key".to_owned(),
        MANAGEMENT_KEY.as_bytes().to_vec(),
    ));
    needles.push((
        "management key's SHA-256".to_owned(),
        sha256(MANAGEMENT_KEY.as_bytes()).to_vec(),
    ));
    needles.push(("code key".to_owned(), CODE_KEY[..8].to_vec()));
    needles
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Whether a number value is one of the codes (see the module's doc).
fn number_is_code(number: &str, code: &str) -> bool {
    if number == code {
        return true;
    }
    match (number.parse::<u64>(), code.parse::<u64>()) {
        (Ok(n), Ok(c)) => c >= 1000 && n == c,
        _ => false,
    }
}

/// Every violation in one item: (attribute, what was found).
fn violations(item: &Item, secrets: &Secrets) -> Vec<String> {
    let strings = secret_strings(secrets);
    let bytes = secret_bytes(secrets);
    let mut found = Vec::new();
    for (name, value) in item {
        for_each_scalar(value, &mut |v| match v {
            AttributeValue::S(text) => {
                for (label, needle) in &strings {
                    if text.contains(needle.as_str()) {
                        found.push(format!("{name}: a {label}"));
                    }
                }
                let runs = digit_runs(text);
                for code in &secrets.codes {
                    if runs.contains(&code.as_str()) {
                        found.push(format!("{name}: the code {code} in {text:?}"));
                    }
                }
            }
            AttributeValue::N(number) => {
                for code in &secrets.codes {
                    if number_is_code(number, code) {
                        found.push(format!("{name}: the code {code} as the number {number}"));
                    }
                }
            }
            AttributeValue::B(blob) => {
                let blob = blob.as_ref();
                for (label, needle) in &bytes {
                    if contains_bytes(blob, needle) {
                        found.push(format!("{name}: a {label} in a binary value"));
                    }
                }
                let text = String::from_utf8_lossy(blob);
                let runs = digit_runs(&text);
                for code in &secrets.codes {
                    if blob == code.as_bytes() || runs.contains(&code.as_str()) {
                        found.push(format!("{name}: the code {code} in a binary value"));
                    }
                }
            }
            _ => {}
        });
    }
    found
}

#[tokio::test]
async fn the_table_holds_no_secret_code_token_or_key() {
    let Some(mut w) = World::new(relaxed()).await else {
        return;
    };
    let secrets = full_flow(&mut w).await;
    assert!(secrets.codes.len() >= 8, "{secrets:?}");
    assert!(secrets.tokens.len() >= 3 && secrets.jwts.len() >= 6);

    let items = scan(&w.client, w.table()).await;
    let mut index_items = Vec::new();
    let mut start = None;
    loop {
        let page = w
            .client
            .scan()
            .table_name(w.table())
            .index_name("gsi1")
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("Scan gsi1");
        index_items.extend(page.items.unwrap_or_default());
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => break,
        }
    }

    // Positive control: the scan sees the records the flow made, and the checks would catch a
    // plaintext secret (the needles do appear in a value made of them).
    let sort_keys: Vec<String> = items
        .iter()
        .filter_map(|i| match i.get("sk") {
            Some(AttributeValue::S(sk)) => Some(sk.clone()),
            _ => None,
        })
        .collect();
    for kind in [
        "APP",
        "APP#SECRET#",
        "CONFIG#",
        "TESTID#IDENT#",
        "USER",
        "IDENT",
        "METHOD",
        "CHALLENGE",
        "SESSION",
        "TOKEN",
        "RATE",
    ] {
        assert!(
            sort_keys.iter().any(|sk| sk.starts_with(kind)),
            "no {kind} item in {sort_keys:?}"
        );
    }
    let challenges = sort_keys.iter().filter(|sk| *sk == "CHALLENGE").count();
    assert!(challenges >= 4, "{challenges} code items");
    assert!(!index_items.is_empty(), "the sessions are in gsi1");
    let mut planted = Item::new();
    planted.insert(
        "s".to_owned(),
        AttributeValue::S(format!("x#{}", secrets.codes[1])),
    );
    planted.insert(
        "n".to_owned(),
        AttributeValue::N(secrets.codes[2].parse::<u64>().unwrap().to_string()),
    );
    planted.insert(
        "l".to_owned(),
        AttributeValue::L(vec![AttributeValue::S(secrets.tokens[0].clone())]),
    );
    planted.insert(
        "b".to_owned(),
        AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(
            URL_SAFE_NO_PAD.decode(&secrets.tokens[1]).unwrap(),
        )),
    );
    assert!(
        violations(&planted, &secrets).len() >= 3,
        "{:?}",
        violations(&planted, &secrets)
    );

    let mut found = Vec::new();
    for (where_, items) in [("table", &items), ("gsi1", &index_items)] {
        for item in items {
            for v in violations(item, &secrets) {
                let key = match (item.get("pk"), item.get("sk")) {
                    (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) => {
                        format!("{pk} / {sk}")
                    }
                    _ => "?".to_owned(),
                };
                found.push(format!("{where_} {key}: {v}"));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");

    // The stored codes, field by field.
    let unkeyed = CodeHasher::new(&[0u8; 32]).unwrap();
    for (method_id, code) in &secrets.stored_codes {
        let c = w
            .store
            .get_challenge(&w.app(), &MethodId::parse(method_id).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no stored code for {method_id}"));
        assert!(
            w.deps
                .keys
                .code_hasher
                .matches(&c.hash_context, code, &c.code_hash),
            "the record is the code's: {c:?}"
        );
        assert!(!c.hash_context.contains(code.as_str()), "{c:?}");
        assert_ne!(c.code_hash, sha256(code.as_bytes()), "an unkeyed hash");
        assert_ne!(
            c.code_hash,
            sha256(format!("{}{code}", c.hash_context).as_bytes()),
            "an unkeyed hash"
        );
        assert!(
            !unkeyed.matches(&c.hash_context, code, &c.code_hash),
            "the hash verifies without the code key"
        );
    }
    // The test identifier's fixed code likewise.
    let tests = w.store.list_test_identifiers(&w.app()).await.unwrap();
    assert_eq!(tests.len(), 1);
    assert_ne!(tests[0].code_hash, sha256(TEST_CODE.as_bytes()));
    assert!(!unkeyed.matches(tests[0].id.as_str(), TEST_CODE, &tests[0].code_hash));
    assert!(
        w.deps
            .keys
            .code_hasher
            .matches(tests[0].id.as_str(), TEST_CODE, &tests[0].code_hash)
    );
}
