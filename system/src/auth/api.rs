//! The JSON bodies of the HTTP API, as clients (editors, admins, the stack's tests) send and
//! read them. Unknown fields are refused, so a misspelt field is a 400, not a silent default.

use serde::{Deserialize, Serialize};

use super::keys::PublicKey;

/// The largest request body the API reads (every body here is a few names and a password).
pub const MAX_BODY_LEN: usize = 4096;

/// `POST /auth/signup` and `POST /auth/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub tenant: String,
    pub user: String,
    pub password: String,
}

/// `201` to a sign-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUp {
    pub tenant: String,
    pub user: String,
    /// Whether this sign-up created the tenant (its creator is its admin).
    pub admin: bool,
}

/// `200` to a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedIn {
    pub token: String,
    pub expires_at_ms: u64,
}

/// `POST /auth/grant`. `doc` is `tenant/name`, or a bare `name` in the admin's tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub user: String,
    pub doc: String,
    pub perm: String,
}

/// `POST /auth/revoke`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    pub user: String,
    pub doc: String,
}

/// `200` to a grant or revocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changed {
    pub doc: String,
    pub user: String,
    pub perm: Option<String>,
}

/// `GET /auth/keys`: the public keys tokens may be signed with now (JWK's `kid` and `x`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    pub keys: Vec<PublicKey>,
}
