//! What the auth service tells the checkers: keys it created, tokens it issued, sign-ups and
//! permission changes it acknowledged (the moment a revocation was acknowledged starts the
//! revocation bound a checker holds the collaboration service to). Claims, not evidence: what
//! survived is in the PostgreSQL members' WAL.

use serde::{Deserialize, Serialize};
use sim::Observation;

use super::permissions::Perm;

/// This instance created the signing key `kid` of `generation` (it won that generation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCreated {
    pub kid: String,
    pub generation: u64,
    pub created_ms: u64,
}

impl Observation for KeyCreated {
    const KIND: &'static str = "auth.key_created";
}

/// This instance deleted the rows of these generations (every token they signed has expired).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysRetired {
    pub generations: Vec<u64>,
}

impl Observation for KeysRetired {
    const KIND: &'static str = "auth.keys_retired";
}

/// A sign-up committed and acknowledged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUp {
    pub tenant: String,
    pub user: String,
    pub admin: bool,
}

impl Observation for SignedUp {
    const KIND: &'static str = "auth.signed_up";
}

/// A token issued at a login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenIssued {
    pub tenant: String,
    pub user: String,
    pub kid: String,
    pub exp_ms: u64,
}

impl Observation for TokenIssued {
    const KIND: &'static str = "auth.token_issued";
}

/// A grant (`perm` Some) or revocation (None) committed and acknowledged to the admin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionChanged {
    pub doc: String,
    pub user: String,
    pub perm: Option<Perm>,
}

impl Observation for PermissionChanged {
    const KIND: &'static str = "auth.permission_changed";
}
