//! OpenAPI schemas of the domain's scalar newtypes: each serializes as one string, so its
//! schema is a string with a name (a component), not the Rust structure around it.

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};

use crate::clock::Timestamp;
use crate::identifiers::{EmailAddress, PhoneNumber, Region};
use crate::ids::{
    AppId, ConfigId, EmailId, PhoneId, RequestId, SecretId, SessionId, TemplateId,
    TestIdentifierId, UserId,
};

fn string_schema(description: &str, format: Option<KnownFormat>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
        .format(format.map(SchemaFormat::KnownFormat))
        .into()
}

macro_rules! string_schema {
    ($($ty:ty => $name:literal, $description:literal $(, $format:ident)?;)*) => {$(
        impl utoipa::PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                string_schema($description, None$(.or(Some(KnownFormat::$format)))?)
            }
        }
        impl utoipa::ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    )*};
}

string_schema! {
    Timestamp => "Timestamp", "RFC 3339, UTC", DateTime;
    AppId => "AppId", "`app-` and a UUID";
    UserId => "UserId", "`user-` and a UUID";
    PhoneId => "PhoneId", "`phone-number-` and a UUID";
    EmailId => "EmailId", "`email-` and a UUID";
    SessionId => "SessionId", "`session-` and a UUID";
    RequestId => "RequestId", "`request-id-` and a UUID";
    SecretId => "SecretId", "`sec_` and a ULID";
    ConfigId => "ConfigId", "`lcfg_` and a ULID";
    TemplateId => "TemplateId", "`tpl_` and a ULID";
    TestIdentifierId => "TestIdentifierId", "`tid_` and a ULID";
    PhoneNumber => "PhoneNumber", "E.164, such as `+12025550100`";
    EmailAddress => "EmailAddress", "an email address", Email;
    Region => "Region", "ISO 3166-1 alpha-2 region code, upper-case, such as `US`";
}
