//! Management API handlers: parse, call `service::management`, shape the reply.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::views::{
    AppView, FrontendSettingsView, LoginConfigView, PublicTokenView, RegionView, SecretView,
    SigningKeyView, SmsBudgetsResponse, SmsCountries, SmsCountriesResponse, TemplateView,
    TestIdentifierView, app_view, config_view, frontend_settings_view, public_token_view,
    region_view, secret_view, signing_key_view, template_view, test_identifier_view,
};
use super::{ApiRequest, Reply, RouteId, parse_json};
use crate::error::Error;
use crate::identifiers::Region;
use crate::ids::SecretId;
use crate::service::management::SmsCountriesInput;
use crate::service::{Deps, frontend, management, signing};

#[derive(Deserialize, ToSchema)]
#[schema(as = CreateAppRequest)]
pub(crate) struct CreateAppBody {
    name: String,
}

/// `regions` or, the older shape, `calling_codes`: one of the two must be there (`null` and
/// `[]` mean every region), so that a misspelt field is not taken for "every region".
#[derive(Deserialize, ToSchema)]
#[schema(as = SmsCountriesRequest)]
pub(crate) struct SmsCountriesBody {
    /// ISO 3166-1 alpha-2 codes such as `["US", "CA"]`; `null` or `[]`: every region.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    regions: Option<Option<Vec<String>>>,
    /// The older shape: calling codes such as `["1", "44"]`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
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
fn sms_countries_view(regions: Option<Vec<Region>>) -> SmsCountriesResponse {
    let calling_codes = regions.as_deref().map(Region::calling_codes);
    SmsCountriesResponse {
        sms_countries: SmsCountries {
            regions,
            calling_codes,
        },
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreateAppResponse {
    app: AppView,
    /// Shown once: only its hash is kept.
    secret: String,
    secret_id: SecretId,
    public_token: String,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct AppResponse {
    app: AppView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct CreateSecretResponse {
    /// Shown once: only its hash is kept.
    secret: String,
    secret_id: SecretId,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SecretsResponse {
    secrets: Vec<SecretView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LoginConfigResponse {
    login_config: LoginConfigView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct LoginConfigsResponse {
    login_configs: Vec<LoginConfigView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TemplateResponse {
    template: TemplateView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TemplatesResponse {
    templates: Vec<TemplateView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TestIdentifierResponse {
    test_identifier: TestIdentifierView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TestIdentifiersResponse {
    test_identifiers: Vec<TestIdentifierView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SmsRegionsResponse {
    sms_regions: Vec<RegionView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct SmsRegionResponse {
    sms_region: RegionView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct RotateKeysResponse {
    app_id: String,
    keys: Vec<SigningKeyView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PublicTokensResponse {
    public_tokens: Vec<PublicTokenView>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct PublicTokenResponse {
    public_token: PublicTokenView,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct FrontendSettingsResponse {
    frontend_settings: FrontendSettingsView,
}

fn ok<T: Serialize>(body: T) -> Result<Reply, Error> {
    Reply::typed(StatusCode::OK, &body)
}

fn created<T: Serialize>(body: T) -> Result<Reply, Error> {
    Reply::typed(StatusCode::CREATED, &body)
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
            created(CreateAppResponse {
                app: app_view(&made.app),
                secret: made.secret,
                secret_id: made.secret_id,
                public_token: made.public_token,
            })
        }
        RouteId::GetApp => ok(AppResponse {
            app: app_view(&management::get_app(deps, app_id).await?),
        }),
        RouteId::CreateSecret => {
            let (secret, secret_id) = management::add_secret(deps, app_id).await?;
            created(CreateSecretResponse { secret, secret_id })
        }
        RouteId::ListSecrets => {
            let secrets = management::list_secrets(deps, app_id).await?;
            ok(SecretsResponse {
                secrets: secrets.iter().map(secret_view).collect(),
            })
        }
        RouteId::DeleteSecret => {
            management::delete_secret(deps, app_id, request.path_param("secret_id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::CreateLoginConfig => {
            let input = parse_json(request)?;
            let config = management::create_config(deps, app_id, input).await?;
            created(LoginConfigResponse {
                login_config: config_view(&config),
            })
        }
        RouteId::ListLoginConfigs => {
            let configs = management::list_configs(deps, app_id).await?;
            ok(LoginConfigsResponse {
                login_configs: configs.iter().map(config_view).collect(),
            })
        }
        RouteId::ReplaceLoginConfig => {
            let input = parse_json(request)?;
            let config =
                management::replace_config(deps, app_id, request.path_param("config_id"), input)
                    .await?;
            ok(LoginConfigResponse {
                login_config: config_view(&config),
            })
        }
        RouteId::DeleteLoginConfig => {
            management::delete_config(deps, app_id, request.path_param("config_id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::CreateTemplate => {
            let input = parse_json(request)?;
            let template = management::create_template(deps, app_id, input).await?;
            created(TemplateResponse {
                template: template_view(&template),
            })
        }
        RouteId::ListTemplates => {
            let templates = management::list_templates(deps, app_id).await?;
            ok(TemplatesResponse {
                templates: templates.iter().map(template_view).collect(),
            })
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
            ok(TemplateResponse {
                template: template_view(&template),
            })
        }
        RouteId::DeleteTemplate => {
            management::delete_template(deps, app_id, request.path_param("template_id")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::CreateTestIdentifier => {
            let input = parse_json(request)?;
            let test = management::create_test_identifier(deps, app_id, input).await?;
            created(TestIdentifierResponse {
                test_identifier: test_identifier_view(&test),
            })
        }
        RouteId::ListTestIdentifiers => {
            let tests = management::list_test_identifiers(deps, app_id).await?;
            ok(TestIdentifiersResponse {
                test_identifiers: tests.iter().map(test_identifier_view).collect(),
            })
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
            ok(SmsBudgetsResponse {
                sms_budgets: budgets,
            })
        }
        RouteId::GetSmsBudgets => {
            let budgets = management::get_sms_budgets(deps, app_id).await?;
            ok(SmsBudgetsResponse {
                sms_budgets: budgets,
            })
        }
        RouteId::ListSmsRegions => {
            let regions = management::list_sms_regions(deps, app_id).await?;
            ok(SmsRegionsResponse {
                sms_regions: regions.iter().map(region_view).collect(),
            })
        }
        RouteId::ResetSmsRegion => {
            let region =
                management::reset_sms_region(deps, app_id, request.path_param("region")).await?;
            ok(SmsRegionResponse {
                sms_region: region_view(&region),
            })
        }
        RouteId::RotateKeys => {
            let keys = signing::rotate(deps, app_id).await?;
            ok(RotateKeysResponse {
                app_id: app_id.to_owned(),
                keys: keys.iter().map(|k| signing_key_view(deps, k)).collect(),
            })
        }
        RouteId::ListPublicTokens => {
            let tokens = frontend::list_public_tokens(deps, app_id).await?;
            ok(PublicTokensResponse {
                public_tokens: tokens.iter().map(public_token_view).collect(),
            })
        }
        RouteId::CreatePublicToken => {
            let token = frontend::create_public_token(deps, app_id).await?;
            created(PublicTokenResponse {
                public_token: public_token_view(&token),
            })
        }
        RouteId::DeletePublicToken => {
            frontend::delete_public_token(deps, app_id, request.path_param("public_token")).await?;
            Ok(Reply::NoContent)
        }
        RouteId::GetFrontendSettings => {
            let settings = frontend::get_settings(deps, app_id).await?;
            ok(FrontendSettingsResponse {
                frontend_settings: frontend_settings_view(&settings),
            })
        }
        RouteId::PutFrontendSettings => {
            let input = parse_json(request)?;
            let settings = frontend::put_settings(deps, app_id, input).await?;
            ok(FrontendSettingsResponse {
                frontend_settings: frontend_settings_view(&settings),
            })
        }
        other => Err(Error::Internal(format!(
            "{other:?} is not a management route"
        ))),
    }
}
