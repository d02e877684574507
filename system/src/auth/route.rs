//! The API's routing and every check that needs no store, sans-IO: a request becomes the
//! [`Call`] a handler carries out, or the [`ApiError`] it is answered with. Nothing here reads a
//! store or a clock, so every malformed request is refused (and fuzzed) without a runtime; the
//! handlers in [`super::service`] do the reads and commits.
//!
//! ```
//! use system::auth::route::{route, Call};
//! use system::http::Request;
//!
//! let req = Request::post_json("/auth/login", &serde_json::json!({"tenant": "acme", "user": "ann", "password": "pw"}));
//! assert!(matches!(route(&req), Ok(Call::Login(_))));
//! let junk = Request::post_json("/auth/grant", &serde_json::json!({})).header("authorization", "Bearer t");
//! assert_eq!(route(&junk).unwrap_err().status(), 400);
//! ```

use super::api;
use super::names::{valid_name, valid_password, MAX_PASSWORD_LEN};
use super::permissions::Perm;
use super::service::ApiError;
use super::tokens::Claims;
use crate::doc_update::DocId;
use crate::http::Request;

/// What a well-formed request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// A sign-up with names and a password of the right shape.
    Signup(api::Credentials),
    /// A login with names of the right shape and a password not over the limit.
    Login(api::Credentials),
    /// A grant (`perm` Some) or a revocation, by the bearer of `token` (verified by the
    /// handler, before `doc` and `user` are looked at: see [`change_target`]).
    Change { token: String, user: String, doc: String, perm: Option<Perm> },
    /// The public keys.
    Keys,
}

/// Routes a request, checking everything about it that needs no store. The order of the checks
/// is the answer's: a bad body is 400 before anything else, except that an admin path without a
/// bearer token is 401 before its body is looked at.
pub fn route(req: &Request) -> Result<Call, ApiError> {
    if req.body.len() > api::MAX_BODY_LEN {
        return Err(ApiError::TooLarge);
    }
    let post = req.method == "POST";
    let admin_path = matches!(req.path.as_str(), "/auth/grant" | "/auth/revoke");
    let bearer = || req.bearer().ok_or_else(|| ApiError::Unauthorized("no bearer token".into()));
    if post && admin_path {
        // Authentication before anything about the body is looked at.
        bearer()?;
    }
    match req.path.as_str() {
        "/auth/signup" if post => signup(parse(req)?),
        "/auth/login" if post => login(parse(req)?),
        "/auth/grant" if post => {
            let body: api::Grant = parse(req)?;
            let perm = Perm::parse(&body.perm).ok_or_else(|| bad("perm must be \"read\" or \"write\""))?;
            Ok(Call::Change { token: bearer()?.into(), user: body.user, doc: body.doc, perm: Some(perm) })
        }
        "/auth/revoke" if post => {
            let body: api::Revoke = parse(req)?;
            Ok(Call::Change { token: bearer()?.into(), user: body.user, doc: body.doc, perm: None })
        }
        "/auth/keys" if req.method == "GET" => Ok(Call::Keys),
        "/auth/signup" | "/auth/login" | "/auth/grant" | "/auth/revoke" | "/auth/keys" => {
            Err(ApiError::MethodNotAllowed)
        }
        _ => Err(ApiError::NotFound("no such path".into())),
    }
}

fn signup(body: api::Credentials) -> Result<Call, ApiError> {
    if !valid_name(&body.tenant) || !valid_name(&body.user) {
        return Err(bad("tenant and user must be 1 to 64 of a-z, 0-9 and -"));
    }
    if !valid_password(&body.password) {
        return Err(bad("password must be 8 to 256 bytes"));
    }
    Ok(Call::Signup(body))
}

fn login(body: api::Credentials) -> Result<Call, ApiError> {
    // The same answer as a wrong password: a malformed name is an unknown user.
    if !valid_name(&body.tenant) || !valid_name(&body.user) || body.password.len() > MAX_PASSWORD_LEN {
        return Err(denied());
    }
    Ok(Call::Login(body))
}

/// Login's one refusal, whatever the reason.
pub fn denied() -> ApiError {
    ApiError::Unauthorized("unknown user or wrong password".into())
}

/// The document a grant or revocation by the bearer of `claims` changes, once its token
/// verified: `doc` is `tenant/name` or a bare name in the admin's tenant; only the tenant's
/// admin may change its documents.
pub fn change_target(claims: &Claims, user: &str, doc: &str) -> Result<DocId, ApiError> {
    let doc = match doc.contains('/') {
        true => DocId::parse(doc),
        false => DocId::new(&claims.tenant, doc),
    }
    .map_err(|e| bad(&e.to_string()))?;
    if !valid_name(user) {
        return Err(bad("user must be 1 to 64 of a-z, 0-9 and -"));
    }
    if !claims.admin || doc.tenant() != claims.tenant {
        return Err(ApiError::Forbidden(format!(
            "{}/{} is not the admin of {}",
            claims.tenant,
            claims.user,
            doc.tenant()
        )));
    }
    Ok(doc)
}

fn bad(message: &str) -> ApiError {
    ApiError::BadRequest(message.into())
}

fn parse<T: serde::de::DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    req.json().map_err(|e| bad(&e.to_string()))
}
