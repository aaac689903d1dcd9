//! Management API handlers: parse, call `service::management`, shape the reply.

use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::{
    app_view, config_view, frontend_settings_view, public_token_view, region_view, secret_view,
    signing_key_view, template_view, test_identifier_view,
};
use super::{ApiRequest, Reply, RouteId, parse_json};
use crate::error::Error;
use crate::identifiers::Region;
use crate::service::management::SmsCountriesInput;
use crate::service::{Deps, frontend, management, signing};

#[derive(Deserialize)]
struct CreateAppBody {
    name: String,
}

/// `regions` or, the older shape, `calling_codes`: one of the two must be there (`null` and
/// `[]` mean every region), so that a misspelt field is not taken for "every region".
#[derive(Deserialize)]
struct SmsCountriesBody {
    #[serde(default, deserialize_with = "present")]
    regions: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    calling_codes: Option<Option<Vec<String>>>,
}

/// A field that is there, even as `null`, is `Some`; an absent one is `None` (`default`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

impl SmsCountriesBody {
    fn input(self) -> Result<SmsCountriesInput, Error> {
        match (self.regions, self.calling_codes) {
            (Some(regions), None) => Ok(SmsCountriesInput::Regions(regions)),
            (None, Some(codes)) => Ok(SmsCountriesInput::CallingCodes(codes)),
            (Some(_), Some(_)) => Err(Error::BadRequest(
                "give regions or calling_codes, not both".into(),
            )),
            (None, None) => Err(Error::BadRequest(
                "the body must have regions (ISO 3166-1 alpha-2 codes such as [\"US\", \"CA\"]) \
                 or calling_codes; null or [] for every region"
                    .into(),
            )),
        }
    }
}

/// The regions, and their calling codes for readers of the older shape (`null` for both: every
/// region).
fn sms_countries_view(regions: Option<Vec<Region>>) -> Value {
    let calling_codes = regions.as_deref().map(Region::calling_codes);
    json!({"sms_countries": {"regions": regions, "calling_codes": calling_codes}})
}

fn ok(body: Value) -> Result<Reply, Error> {
    Ok(Reply::Json(StatusCode::OK, body))
}

fn created(body: Value) -> Result<Reply, Error> {
    Ok(Reply::Json(StatusCode::CREATED, body))
}

pub(super) async fn handle(
    deps: &Deps,
    route: RouteId,
    request: &ApiRequest,
) -> Result<Reply, Error> {
    let app_id = request.path_param("app_id");
    match route {
        RouteId::CreateApp => {
            let body: CreateAppBody = parse_json(request)?;
            let made = management::create_app(deps, &body.name).await?;
            created(json!({"app": app_view(&made.app), "secret": made.secret,
                "secret_id": made.secret_id, "public_token": made.public_token}))
        }
        RouteId::GetApp => ok(json!({"app": app_view(&management::get_app(deps, app_id).await?)})),
        RouteId::CreateSecret => {
            let (secret, secret_id) = management::add_secret(deps, app_id).await?;
            created(json!({"secret": secret, "secret_id": secret_id}))
        }
        RouteId::ListSecrets => {
            let secrets = management::list_secrets(deps, app_id).await?;
            ok(json!({"secrets": secrets.iter().map(secret_view).collect::<Vec<_>>()}))
        }
        RouteId::DeleteSecret => {
            management::delete_secret(deps, app_id, request.path_param("secret_id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::CreateLoginConfig => {
            let input = parse_json(request)?;
            let config = management::create_config(deps, app_id, input).await?;
            created(json!({"login_config": config_view(&config)}))
        }
        RouteId::ListLoginConfigs => {
            let configs = management::list_configs(deps, app_id).await?;
            ok(json!({"login_configs": configs.iter().map(config_view).collect::<Vec<_>>()}))
        }
        RouteId::ReplaceLoginConfig => {
            let input = parse_json(request)?;
            let config =
                management::replace_config(deps, app_id, request.path_param("config_id"), input)
                    .await?;
            ok(json!({"login_config": config_view(&config)}))
        }
        RouteId::DeleteLoginConfig => {
            management::delete_config(deps, app_id, request.path_param("config_id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::CreateTemplate => {
            let input = parse_json(request)?;
            let template = management::create_template(deps, app_id, input).await?;
            created(json!({"template": template_view(&template)}))
        }
        RouteId::ListTemplates => {
            let templates = management::list_templates(deps, app_id).await?;
            ok(json!({"templates": templates.iter().map(template_view).collect::<Vec<_>>()}))
        }
        RouteId::ReplaceTemplate => {
            let input = parse_json(request)?;
            let template = management::replace_template(
                deps,
                app_id,
                request.path_param("template_id"),
                input,
            )
            .await?;
            ok(json!({"template": template_view(&template)}))
        }
        RouteId::DeleteTemplate => {
            management::delete_template(deps, app_id, request.path_param("template_id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::CreateTestIdentifier => {
            let input = parse_json(request)?;
            let test = management::create_test_identifier(deps, app_id, input).await?;
            created(json!({"test_identifier": test_identifier_view(&test)}))
        }
        RouteId::ListTestIdentifiers => {
            let tests = management::list_test_identifiers(deps, app_id).await?;
            ok(
                json!({"test_identifiers": tests.iter().map(test_identifier_view).collect::<Vec<_>>()}),
            )
        }
        RouteId::DeleteTestIdentifier => {
            management::delete_test_identifier(deps, app_id, request.path_param("id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::PutSmsCountries => {
            let body: SmsCountriesBody = parse_json(request)?;
            let regions = management::put_sms_countries(deps, app_id, body.input()?).await?;
            ok(sms_countries_view(regions))
        }
        RouteId::GetSmsCountries => {
            let regions = management::get_sms_countries(deps, app_id).await?;
            ok(sms_countries_view(regions))
        }
        RouteId::PutSmsBudgets => {
            let budgets = parse_json(request)?;
            let budgets = management::put_sms_budgets(deps, app_id, budgets).await?;
            ok(json!({ "sms_budgets": budgets }))
        }
        RouteId::GetSmsBudgets => {
            let budgets = management::get_sms_budgets(deps, app_id).await?;
            ok(json!({ "sms_budgets": budgets }))
        }
        RouteId::ListSmsRegions => {
            let regions = management::list_sms_regions(deps, app_id).await?;
            ok(json!({"sms_regions": regions.iter().map(region_view).collect::<Vec<_>>()}))
        }
        RouteId::ResetSmsRegion => {
            let region =
                management::reset_sms_region(deps, app_id, request.path_param("region")).await?;
            ok(json!({ "sms_region": region_view(&region) }))
        }
        RouteId::RotateKeys => {
            let keys = signing::rotate(deps, app_id).await?;
            ok(json!({
                "app_id": app_id,
                "keys": keys.iter().map(|k| signing_key_view(deps, k)).collect::<Vec<_>>(),
            }))
        }
        RouteId::ListPublicTokens => {
            let tokens = frontend::list_public_tokens(deps, app_id).await?;
            ok(json!({"public_tokens": tokens.iter().map(public_token_view).collect::<Vec<_>>()}))
        }
        RouteId::CreatePublicToken => {
            let token = frontend::create_public_token(deps, app_id).await?;
            created(json!({ "public_token": public_token_view(&token) }))
        }
        RouteId::DeletePublicToken => {
            frontend::delete_public_token(deps, app_id, request.path_param("public_token")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::GetFrontendSettings => {
            let settings = frontend::get_settings(deps, app_id).await?;
            ok(json!({ "frontend_settings": frontend_settings_view(&settings) }))
        }
        RouteId::PutFrontendSettings => {
            let input = parse_json(request)?;
            let settings = frontend::put_settings(deps, app_id, input).await?;
            ok(json!({ "frontend_settings": frontend_settings_view(&settings) }))
        }
        other => Err(Error::Internal(format!(
            "{other:?} is not a management route"
        ))),
    }
}
