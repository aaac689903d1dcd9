//! The management use cases as the login flow sees them: default login configs, choosing a
//! config, app secret rotation, templates and test identifiers.

#[path = "domain_harness.rs"]
mod harness;

use harness::{EMAIL, Harness, PHONE, config_input, login_or_create, wrong};
use shared::Error;
use shared::model::{Channel, PASSWORD_WRITE_SCOPE};
use shared::service::management::{self, TemplateInput, TestIdentifierInput};

fn is_default(configs: &[shared::model::LoginConfig], id: &shared::ids::ConfigId) -> bool {
    configs
        .iter()
        .find(|c| &c.id == id)
        .expect("config listed")
        .is_default
}

#[tokio::test]
async fn a_second_default_config_takes_over_the_channel() {
    let h = Harness::new(100).await;
    let app_id = h.app.id.as_str();
    let mut input = config_input(Channel::Sms, true);
    input.code_length = Some(8);
    let second = management::create_config(h.deps(), app_id, input)
        .await
        .expect("create_config");
    assert!(second.is_default);

    let configs = management::list_configs(h.deps(), app_id)
        .await
        .expect("list");
    assert_eq!(configs.len(), 3);
    assert!(
        !is_default(&configs, &h.sms_config.id),
        "the first sms default is no longer default"
    );
    assert!(is_default(&configs, &second.id));
    assert!(
        is_default(&configs, &h.email_config.id),
        "the email default is untouched"
    );

    let (sent, code) = h.send_code(PHONE).await;
    assert_eq!(
        code.len(),
        8,
        "the new default's code_length is used: {code}"
    );
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    h.auth(&sent.method_id, &code).await.expect("8-digit code");
    let (_, email_code) = h.send_code(EMAIL).await;
    assert_eq!(email_code.len(), 6, "email keeps its own default");

    // Replacing the first config as default switches back.
    management::replace_config(
        h.deps(),
        app_id,
        h.sms_config.id.as_str(),
        config_input(Channel::Sms, true),
    )
    .await
    .expect("replace_config");
    let configs = management::list_configs(h.deps(), app_id)
        .await
        .expect("list");
    assert!(is_default(&configs, &h.sms_config.id));
    assert!(!is_default(&configs, &second.id));
    h.cooldown();
    assert_eq!(h.send_code(PHONE).await.1.len(), 6);
}

#[tokio::test]
async fn without_a_default_config_send_answers_no_login_config() {
    let h = Harness::new(101).await;
    let app_id = h.app.id.as_str();
    management::delete_config(h.deps(), app_id, h.sms_config.id.as_str())
        .await
        .expect("delete_config");
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::NoLoginConfig(Channel::Sms))),
        "{result:?}"
    );
    assert_eq!(h.outbox_len(), 0);
    h.send_code(EMAIL).await;

    // A channel with configs but none default is the same.
    let plain = management::create_config(h.deps(), app_id, config_input(Channel::Sms, false))
        .await
        .expect("create_config");
    assert!(!plain.is_default);
    let result = h.send(login_or_create(PHONE)).await;
    assert!(
        matches!(result, Err(Error::NoLoginConfig(Channel::Sms))),
        "{result:?}"
    );
}

#[tokio::test]
async fn login_config_id_selects_a_non_default_config() {
    let h = Harness::new(102).await;
    let app_id = h.app.id.as_str();
    let mut input = config_input(Channel::Sms, false);
    input.code_length = Some(7);
    input.expiration_minutes = Some(10);
    let chosen = management::create_config(h.deps(), app_id, input)
        .await
        .expect("create_config");

    let mut request = login_or_create(PHONE);
    request.login_config_id = Some(chosen.id.as_str().to_owned());
    let sent = h.send(request).await.expect("send");
    let code = h.last_code(PHONE);
    assert_eq!(code.len(), 7, "the chosen config's code_length: {code}");
    h.clock.advance_seconds(9 * 60);
    h.auth(&sent.method_id, &code)
        .await
        .expect("the chosen config's lifetime (10 minutes) applies");
    assert_eq!(
        h.send_code(PHONE).await.1.len(),
        6,
        "without login_config_id the default is used"
    );

    for bad in [
        h.email_config.id.as_str().to_owned(),
        "lcfg_nope".to_owned(),
        shared::ids::ConfigId::generate(&shared::random::OsRandom, h.clock_now())
            .as_str()
            .to_owned(),
    ] {
        let mut request = login_or_create(PHONE);
        request.login_config_id = Some(bad.clone());
        let result = h.send(request).await;
        assert!(
            matches!(result, Err(Error::LoginConfigNotFound(_))),
            "{bad}: {result:?}"
        );
    }
}

#[tokio::test]
async fn a_grant_change_password_config_grants_the_scope() {
    let h = Harness::new(103).await;
    let mut input = config_input(Channel::Sms, true);
    input.grant_change_password = Some(true);
    let config = management::create_config(h.deps(), h.app.id.as_str(), input)
        .await
        .expect("create_config");
    assert_eq!(
        config.granted_scopes(),
        vec![PASSWORD_WRITE_SCOPE.to_owned()]
    );
    let (sent, code) = h.send_code(PHONE).await;
    let outcome = h
        .auth_with(&sent.method_id, &code, Some(30))
        .await
        .expect("authenticate");
    let session = outcome.session.expect("session").session;
    assert_eq!(
        session.granted_scopes,
        vec![PASSWORD_WRITE_SCOPE.to_owned()]
    );

    let (sent, code) = h.send_code(EMAIL).await;
    let outcome = h
        .auth_with(&sent.method_id, &code, Some(30))
        .await
        .expect("authenticate");
    assert!(
        outcome
            .session
            .expect("session")
            .session
            .granted_scopes
            .is_empty()
    );
}

#[tokio::test]
async fn config_inputs_are_validated() {
    let h = Harness::new(104).await;
    let app_id = h.app.id.as_str();
    let mut inputs = Vec::new();
    for length in [5, 9] {
        let mut input = config_input(Channel::Sms, false);
        input.code_length = Some(length);
        inputs.push(input);
    }
    for minutes in [0, 11] {
        let mut input = config_input(Channel::Sms, false);
        input.expiration_minutes = Some(minutes);
        inputs.push(input);
    }
    let mut input = config_input(Channel::Sms, false);
    input.config_type = "magic_link".to_owned();
    inputs.push(input);
    for sender in ["", "123", "TooLongSender1", "has space"] {
        let mut input = config_input(Channel::Sms, false);
        input.sender_id = Some(sender.to_owned());
        inputs.push(input);
    }
    let mut input = config_input(Channel::Email, false);
    input.sender_id = Some("not an email".to_owned());
    inputs.push(input);
    let mut input = config_input(Channel::Sms, false);
    input.template_id = Some("tpl_nope".to_owned());
    inputs.push(input);
    for input in inputs {
        let shown = format!("{input:?}");
        let result = management::create_config(h.deps(), app_id, input).await;
        assert!(
            matches!(result, Err(Error::BadRequest(_))),
            "{shown}: {result:?}"
        );
    }
    assert_eq!(
        management::list_configs(h.deps(), app_id)
            .await
            .expect("list")
            .len(),
        2,
        "nothing invalid was stored"
    );
}

#[tokio::test]
async fn templates_are_used_and_protected_while_in_use() {
    let h = Harness::new(105).await;
    let app_id = h.app.id.as_str();
    let template = management::create_template(
        h.deps(),
        app_id,
        TemplateInput {
            channel_type: Channel::Sms,
            locale: None,
            subject: None,
            text: "{{app_name}} says: {{code}} ({{expiration_minutes}} min)".to_owned(),
            html: None,
        },
    )
    .await
    .expect("create_template");

    // A template of the other channel is refused.
    let mut input = config_input(Channel::Email, false);
    input.template_id = Some(template.id.as_str().to_owned());
    let result = management::create_config(h.deps(), app_id, input).await;
    assert!(matches!(result, Err(Error::BadRequest(_))), "{result:?}");

    let mut input = config_input(Channel::Sms, true);
    input.template_id = Some(template.id.as_str().to_owned());
    let config = management::create_config(h.deps(), app_id, input)
        .await
        .expect("create_config");
    let (_, code) = h.send_code(PHONE).await;
    let message = h.mem.outbox.last_to(PHONE).expect("sms");
    assert_eq!(message.text, format!("Test app says: {code} (2 min)"));

    let result = management::delete_template(h.deps(), app_id, template.id.as_str()).await;
    assert!(matches!(result, Err(Error::Conflict(_))), "{result:?}");
    management::delete_config(h.deps(), app_id, config.id.as_str())
        .await
        .expect("delete_config");
    management::delete_template(h.deps(), app_id, template.id.as_str())
        .await
        .expect("no config uses it any more");
    let result = management::delete_template(h.deps(), app_id, template.id.as_str()).await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

#[tokio::test]
async fn secrets_rotate_and_the_last_one_stays() {
    let h = Harness::new(106).await;
    let app_id = h.app.id.as_str();
    let old = h.secret.clone();
    let old_id = management::list_secrets(h.deps(), app_id)
        .await
        .expect("list")[0]
        .id
        .clone();
    assert!(old.starts_with("secret-") && old.len() == "secret-".len() + 43);

    let (new, new_id) = management::add_secret(h.deps(), app_id)
        .await
        .expect("add_secret");
    assert_ne!(new, old);
    for secret in [&old, &new] {
        let app = management::authenticate_app(h.deps(), app_id, secret)
            .await
            .expect("both secrets work");
        assert_eq!(app.data.app.id, h.app.id);
        // The API writes the last use beside the request (see `shared::api`).
        if let Some(secret_id) = &app.touch {
            management::touch_secret(h.deps(), &h.app.id, secret_id).await;
        }
    }
    for (id, secret) in [
        (app_id, "secret-wrong"),
        (app_id, ""),
        ("app-nope", new.as_str()),
    ] {
        let result = management::authenticate_app(h.deps(), id, secret).await;
        assert!(matches!(result, Err(Error::Unauthorized)), "{result:?}");
    }
    let listed = management::list_secrets(h.deps(), app_id)
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    assert!(
        listed.iter().all(|s| s.last_used_at == Some(h.clock_now())),
        "authenticating records last_used_at"
    );

    management::delete_secret(h.deps(), app_id, old_id.as_str())
        .await
        .expect("delete_secret");
    let result = management::authenticate_app(h.deps(), app_id, &old).await;
    assert!(
        matches!(result, Err(Error::Unauthorized)),
        "a deleted secret fails: {result:?}"
    );
    management::authenticate_app(h.deps(), app_id, &new)
        .await
        .expect("the new secret still works");

    let result = management::delete_secret(h.deps(), app_id, new_id.as_str()).await;
    assert!(
        matches!(result, Err(Error::Conflict(_))),
        "the last secret cannot be deleted: {result:?}"
    );
    management::authenticate_app(h.deps(), app_id, &new)
        .await
        .expect("the last secret is kept");
    let result = management::delete_secret(h.deps(), app_id, old_id.as_str()).await;
    assert!(matches!(result, Err(Error::NotFound(_))), "{result:?}");
}

#[tokio::test]
async fn a_test_identifier_gets_its_fixed_code_until_valid_until() {
    let h = Harness::new(107).await;
    let app_id = h.app.id.as_str();
    let valid_until = h.clock_now().plus_seconds(600);
    let test = management::create_test_identifier(
        h.deps(),
        app_id,
        TestIdentifierInput {
            identifier: PHONE.to_owned(),
            code: "424242".to_owned(),
            valid_until: valid_until.to_rfc3339(),
        },
    )
    .await
    .expect("create_test_identifier");
    let dump = h.mem.store.dump_for_inspection();
    assert!(dump.contains(test.id.as_str()));
    assert!(
        !dump.contains("424242"),
        "the fixed code is stored only as a hash"
    );

    let sent = h.send(login_or_create(PHONE)).await.expect("send");
    let message = h.mem.outbox.last_to(PHONE).expect("recorded");
    assert!(message.test, "a test identifier's message is marked test");
    assert!(!message.text.contains("424242"));
    h.auth(&sent.method_id, "424242")
        .await
        .expect("the fixed code works");

    // The fixed code stops working at valid_until: then it is a wrong code.
    h.clock.advance_seconds(560);
    h.send(login_or_create(PHONE)).await.expect("send");
    assert!(h.mem.outbox.last_to(PHONE).expect("recorded").test);
    h.clock.advance_seconds(40);
    let result = h.auth(&sent.method_id, "424242").await;
    assert!(
        matches!(
            result,
            Err(Error::OtpCodeNotFound {
                attempts_remaining: Some(4)
            })
        ),
        "{result:?}"
    );

    // Afterwards the identifier is an ordinary one: a random code, really delivered.
    h.send(login_or_create(PHONE)).await.expect("send");
    let message = h.mem.outbox.last_to(PHONE).expect("sent");
    assert!(!message.test);
    assert_ne!(message.code, "424242");
    assert_eq!(message.code.len(), 6);
    let result = h.auth(&sent.method_id, &wrong(&message.code)).await;
    assert!(matches!(result, Err(Error::OtpCodeNotFound { .. })));
    h.auth(&sent.method_id, &message.code)
        .await
        .expect("the delivered code works");
}

#[tokio::test]
async fn app_credentials_are_cached_per_instance_for_a_bounded_time() {
    // Two instances over one store: the management API's changes reach the other instance's
    // cache within its lifetime; the instance that made them sees them at once.
    let h = Harness::new(320).await;
    let app_id = h.app.id.as_str();
    let (second, second_id) = management::add_secret(h.deps(), app_id)
        .await
        .expect("add_secret");
    let mut other = h.deps().clone();
    other.app_cache = std::sync::Arc::new(shared::service::AppCache::new(30));
    management::authenticate_app(&other, app_id, &second)
        .await
        .expect("the other instance reads the app");

    management::delete_secret(h.deps(), app_id, second_id.as_str())
        .await
        .expect("delete_secret");
    let result = management::authenticate_app(h.deps(), app_id, &second).await;
    assert!(
        matches!(result, Err(Error::Unauthorized)),
        "the instance that deleted it refuses it at once: {result:?}"
    );
    h.clock.advance_seconds(29);
    management::authenticate_app(&other, app_id, &second)
        .await
        .expect("another warm instance may accept it until its cache expires");
    h.clock.advance_seconds(1);
    let result = management::authenticate_app(&other, app_id, &second).await;
    assert!(
        matches!(result, Err(Error::Unauthorized)),
        "refused once the cache lifetime is over: {result:?}"
    );

    // Never a negative answer: an app made after a miss is usable at once.
    let created = management::create_app(h.deps(), "Later")
        .await
        .expect("create_app");
    let (made, secret) = (created.app, created.secret);
    let _ =
        management::authenticate_app(&other, "app-00000000-0000-4000-8000-000000000000", "x").await;
    management::authenticate_app(&other, made.id.as_str(), &secret)
        .await
        .expect("a new app is usable at once");

    // 0 turns the cache off.
    let mut uncached = h.deps().clone();
    uncached.app_cache = std::sync::Arc::new(shared::service::AppCache::new(0));
    let (third, third_id) = management::add_secret(h.deps(), app_id)
        .await
        .expect("add_secret");
    management::authenticate_app(&uncached, app_id, &third)
        .await
        .expect("accepted");
    management::delete_secret(h.deps(), app_id, third_id.as_str())
        .await
        .expect("delete_secret");
    assert!(matches!(
        management::authenticate_app(&uncached, app_id, &third).await,
        Err(Error::Unauthorized)
    ));
}
