//! Per-document permissions: `read` or `write` for one user of the document's tenant, one row
//! per (document, user) in the `doc_permissions` table, granted and revoked by the tenant's admin
//! and committed with `synchronous_commit = on`.
//!
//! The tenant's admin (the user who created it, named in its `tenants` row) may read and write
//! every document of the tenant without a grant; nobody may touch another tenant's document.
//!
//! # The revocation bound
//! A revocation is acknowledged to the admin once committed on the primary and its synchronous
//! standby; from then on every read on the primary (before or after a failover) misses the row.
//! The collaboration service re-checks a connected editor's permission every
//! [`PERMISSION_RECHECK_MS`] and must accept an edit at time `t` only while its last successful
//! check *started* after `t - REVOCATION_BOUND_MS` and said `write` (a check that cannot reach
//! the store does not extend that window: the session fails closed). So no edit is accepted
//! later than [`REVOCATION_BOUND_MS`] after the revocation was acknowledged.

use serde::{Deserialize, Serialize};

use super::accounts;
use super::names::{user_key, valid_name};
use super::{store, AuthError};
use crate::doc_update::DocId;
use crate::postgres::client::PgClient;
use crate::postgres::data::{Check, Table, Txn, Write};

/// How often the collaboration service re-checks a connected editor's permission.
pub const PERMISSION_RECHECK_MS: u64 = 2_000;
/// The longest an edit may be accepted after its author's write permission was revoked (the
/// re-check interval plus a read's budget and a margin).
pub const REVOCATION_BOUND_MS: u64 = 6_000;

/// What a user may do with a document. `Write` includes reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Perm {
    Read,
    Write,
}

impl Perm {
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Read => "read",
            Perm::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<Perm> {
        match s {
            "read" => Some(Perm::Read),
            "write" => Some(Perm::Write),
            _ => None,
        }
    }

    pub fn can_write(self) -> bool {
        self == Perm::Write
    }
}

/// The `doc_permissions` key of `user` on `doc` (`tenant/name/user`).
pub fn row_key(doc: &DocId, user: &str) -> String {
    format!("{doc}/{user}")
}

/// Grants `perm` on `doc` to `user`, who must exist in the document's tenant.
pub fn grant_txn(id: String, doc: &DocId, user: &str, perm: Perm) -> Txn {
    Txn {
        id,
        checks: vec![Check::Present { table: Table::Users, key: user_key(doc.tenant(), user) }],
        writes: vec![Write::Put { table: Table::DocPermissions, key: row_key(doc, user), value: perm.as_str().into() }],
    }
}

/// Revokes whatever `user` had on `doc` (a no-op if nothing).
pub fn revoke_txn(id: String, doc: &DocId, user: &str) -> Txn {
    Txn { id, checks: vec![], writes: vec![Write::Delete { table: Table::DocPermissions, key: row_key(doc, user) }] }
}

/// What `user` of `tenant` may do with `doc`, read on the primary now: None when nothing (or
/// the document is another tenant's).
pub async fn check(pg: &mut PgClient, tenant: &str, user: &str, doc: &DocId) -> Result<Option<Perm>, AuthError> {
    if doc.tenant() != tenant || !valid_name(user) {
        return Ok(None);
    }
    if let Some(value) = store::get(pg, Table::DocPermissions, &row_key(doc, user)).await? {
        let perm = Perm::parse(&value).ok_or_else(|| AuthError::Corrupt(format!("permission {value:?}")))?;
        return Ok(Some(perm));
    }
    let admin = accounts::admin_of(pg, tenant).await?;
    Ok((admin.as_deref() == Some(user)).then_some(Perm::Write))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::data::Tables;

    fn doc(s: &str) -> DocId {
        DocId::parse(s).unwrap()
    }

    #[test]
    fn grants_need_the_user_and_revocations_delete_the_row() {
        let d = doc("acme/plan");
        assert_eq!(row_key(&d, "ann"), "acme/plan/ann");
        let mut t = Tables::default();
        let g = grant_txn("g".into(), &d, "ann", Perm::Write);
        assert!(t.check(&g.checks).is_err(), "no such user yet");
        t.apply(1, 1, &[Write::Put { table: Table::Users, key: "acme/ann".into(), value: "{}".into() }]);
        assert!(t.check(&g.checks).is_ok());
        t.apply(1, 2, &g.writes);
        assert_eq!(t.get(Table::DocPermissions, "acme/plan/ann").unwrap().value, "write");
        t.apply(1, 3, &revoke_txn("r".into(), &d, "ann").writes);
        assert!(t.get(Table::DocPermissions, "acme/plan/ann").is_none());
        assert!(Perm::Read < Perm::Write && !Perm::Read.can_write());
        assert_eq!(Perm::parse("write"), Some(Perm::Write));
        assert_eq!(Perm::parse("admin"), None);
    }
}
