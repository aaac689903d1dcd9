//! Reading and deleting users.

use crate::error::Error;
use crate::ids::{AppId, UserId};
use crate::model::User;
use crate::service::Deps;

pub async fn get(deps: &Deps, app_id: &AppId, user_id: &str) -> Result<User, Error> {
    let user_id = UserId::parse(user_id).ok_or(Error::UserNotFound)?;
    deps.users
        .get_user(app_id, &user_id)
        .await?
        .ok_or(Error::UserNotFound)
}

/// Deletes sessions and codes first, so that nothing of the user stays usable if a later
/// step fails; the user record goes last.
pub async fn delete(deps: &Deps, app_id: &AppId, user_id: &str) -> Result<UserId, Error> {
    let user = get(deps, app_id, user_id).await?;
    deps.sessions.delete_user_sessions(app_id, &user.id).await?;
    deps.challenges
        .delete_challenges(app_id, &user.method_ids())
        .await?;
    if !deps.users.delete_user(app_id, &user.id).await? {
        return Err(Error::UserNotFound);
    }
    tracing::info!(app_id = %app_id, user_id = %user.id, "user deleted");
    Ok(user.id)
}
