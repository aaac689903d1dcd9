//! Account safety, driven as an attacker would through the Login API: identifiers attached to a
//! user and never verified route nobody else's login there (no pre-hijacked accounts), and a
//! method's first verification on a user who already had another one revokes the user's other
//! sessions (`reset_sessions`).

use http::StatusCode;
use serde_json::json;

use super::Target;
use super::support::*;
use crate::api::RouteId;

const ATTACKER_PHONE: &str = "+12025550160";
const VICTIM_PHONE: &str = "+12025550161";

/// The attacker, signed in, attaches the victim's number to their own user (`send` with their
/// session) and never enters the code. The victim's `login_or_create` then makes the victim's
/// own user, the victim's code signs into it, and the attacker's user no longer holds the number.
pub async fn an_attached_unverified_number_does_not_route_the_victims_login(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (attacker_id, _, signed_in) = w.session_for(ATTACKER_PHONE).await;
    let attacker_token = s(&signed_in["session_token"]);
    let attached = w
        .login(
            RouteId::SmsSend,
            json!({"phone_number": VICTIM_PHONE, "session_token": attacker_token}),
        )
        .await;
    assert_eq!(attached.status, StatusCode::OK, "{}", attached.body);
    assert_eq!(s(&attached.body["user_id"]), attacker_id);
    let user = w.get_user(&attacker_id).await;
    let numbers = user.body["phone_numbers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        numbers
            .iter()
            .any(|p| p["phone_number"] == VICTIM_PHONE && p["verified"] == false),
        "attached, unverified: {}",
        user.body
    );

    // Nobody else's plain send reaches the attacker's user through the number.
    let r = w
        .login(RouteId::SmsSend, json!({"phone_number": VICTIM_PHONE}))
        .await;
    assert_login_error(&r, 404, "phone_number_not_found");

    // The victim logs in: a user of their own.
    let (victim_id, victim_phone_id, code) = w.sms_code(VICTIM_PHONE).await;
    assert_ne!(
        victim_id, attacker_id,
        "the victim's login went to the attacker's user"
    );
    let r = w.authenticate(&victim_phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(s(&r.body["user_id"]), victim_id);
    assert_eq!(r.body["reset_sessions"], json!(false));

    // The number left the attacker's user; the attacker's session is theirs alone.
    let user = w.get_user(&attacker_id).await;
    assert!(
        !user.body["phone_numbers"]
            .to_string()
            .contains(VICTIM_PHONE),
        "the attacker's user still holds the victim's number: {}",
        user.body
    );
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": attacker_token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(s(&r.body["user"]["user_id"]), attacker_id);
    let r = w.get_user(&victim_id).await;
    assert_eq!(r.body["phone_numbers"][0]["verified"], json!(true));
    assert_eq!(
        w.holder(VICTIM_PHONE).await.map(|(user, _)| user),
        Some(victim_id)
    );
}

/// The attacker's own code for the attached number (had they received it) stops working once
/// the number was taken by the victim's login.
pub async fn a_taken_attachment_cannot_be_verified_by_its_former_user(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (attacker_id, _, _) = w.session_for(ATTACKER_PHONE).await;
    let (attached_method, attached_code) = w.add_identifier(&attacker_id, VICTIM_PHONE).await;
    let (victim_id, _, _) = w.sms_code(VICTIM_PHONE).await;
    assert_ne!(victim_id, attacker_id);
    let r = w.authenticate(&attached_method, &attached_code).await;
    assert_login_error(&r, 404, "otp_code_not_found");
    assert_eq!(
        w.holder(VICTIM_PHONE).await.map(|(user, _)| user),
        Some(victim_id)
    );
}

/// A user verifies an attached number: it is theirs (logins route to them); their other
/// sessions are revoked and `reset_sessions` says so; the session of this authenticate works.
pub async fn a_first_verification_on_an_existing_user_resets_its_other_sessions(target: Target) {
    let Some(w) = World::new(&target, relaxed()).await else {
        return;
    };
    let (user_id, _, first) = w.session_for(ATTACKER_PHONE).await;
    let old_token = s(&first["session_token"]);
    let (attached_method, code) = w.add_identifier(&user_id, VICTIM_PHONE).await;
    let r = w.authenticate(&attached_method, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["reset_sessions"], json!(true), "{}", r.body);
    let new_token = s(&r.body["session_token"]);
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": old_token}),
        )
        .await;
    assert_login_error(&r, 404, "session_not_found");
    let r = w
        .login(
            RouteId::SessionsAuthenticate,
            json!({"session_token": new_token}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(w.session_count(&user_id).await, 1);

    // Verified: a login with the number now goes to this user.
    let (again, _, _) = w.sms_code(VICTIM_PHONE).await;
    assert_eq!(again, user_id);
    // A later verification of an already verified method resets nothing.
    let (_, phone_id, code) = w.sms_code(ATTACKER_PHONE).await;
    let r = w.authenticate(&phone_id, &code).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["reset_sessions"], json!(false));
    assert_eq!(w.session_count(&user_id).await, 2);
}
