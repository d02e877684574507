//! Tenants, users and their credentials, as rows: `tenants/<tenant>` names the tenant's admin,
//! `users/<tenant>/<user>` says whether the user is that admin, `credentials/<tenant>/<user>`
//! holds the password hash. A sign-up writes them in one transaction whose checks make it
//! atomic against a concurrent sign-up of the same name on another instance: the one creating a
//! tenant checks the tenant is absent (so exactly one user becomes its admin), a user joining an
//! existing tenant checks it is present, and both check the user is absent.

use serde::{Deserialize, Serialize};

use super::names::user_key;
use super::{store, AuthError};
use crate::postgres::client::PgClient;
use crate::postgres::data::{Check, Table, Txn, Write};

/// A `tenants` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRow {
    pub admin: String,
}

/// A `users` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub admin: bool,
}

/// The sign-up transaction of `user` in `tenant` with password hash `phc`: it creates the
/// tenant (with `user` as its admin) when `new_tenant`, else joins it.
pub fn signup_txn(id: String, tenant: &str, user: &str, phc: &str, new_tenant: bool) -> Txn {
    let key = user_key(tenant, user);
    let tenant_check = if new_tenant {
        Check::Absent { table: Table::Tenants, key: tenant.into() }
    } else {
        Check::Present { table: Table::Tenants, key: tenant.into() }
    };
    let mut writes = Vec::with_capacity(3);
    if new_tenant {
        let row = TenantRow { admin: user.into() };
        writes.push(Write::Put { table: Table::Tenants, key: tenant.into(), value: to_json(&row) });
    }
    let row = UserRow { admin: new_tenant };
    writes.push(Write::Put { table: Table::Users, key: key.clone(), value: to_json(&row) });
    writes.push(Write::Put { table: Table::Credentials, key: key.clone(), value: phc.into() });
    Txn { id, checks: vec![tenant_check, Check::Absent { table: Table::Users, key }], writes }
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("rows serialize")
}

/// The admin of `tenant`, None if the tenant does not exist.
pub async fn admin_of(pg: &mut PgClient, tenant: &str) -> Result<Option<String>, AuthError> {
    let Some(value) = store::get(pg, Table::Tenants, tenant).await? else { return Ok(None) };
    let row: TenantRow =
        serde_json::from_str(&value).map_err(|e| AuthError::Corrupt(format!("tenant {tenant}: {e}")))?;
    Ok(Some(row.admin))
}

/// A user's password hash and admin flag, None if no such user.
pub async fn credentials(pg: &mut PgClient, tenant: &str, user: &str) -> Result<Option<(String, bool)>, AuthError> {
    let key = user_key(tenant, user);
    let Some(phc) = store::get(pg, Table::Credentials, &key).await? else { return Ok(None) };
    let Some(value) = store::get(pg, Table::Users, &key).await? else { return Ok(None) };
    let row: UserRow = serde_json::from_str(&value).map_err(|e| AuthError::Corrupt(format!("user {key}: {e}")))?;
    Ok(Some((phc, row.admin)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::data::Tables;

    #[test]
    fn one_creator_per_tenant_and_one_sign_up_per_user() {
        let mut t = Tables::default();
        let ann = signup_txn("1".into(), "acme", "ann", "h1", true);
        let bob_creates = signup_txn("2".into(), "acme", "bob", "h2", true);
        let bob_joins = signup_txn("3".into(), "acme", "bob", "h2", false);
        assert!(t.check(&bob_joins.checks).is_err(), "no tenant to join yet");
        t.check(&ann.checks).unwrap();
        t.apply(1, 1, &ann.writes);
        assert!(t.check(&bob_creates.checks).is_err(), "the tenant has its admin");
        t.check(&bob_joins.checks).unwrap();
        t.apply(1, 2, &bob_joins.writes);
        assert!(t.check(&signup_txn("4".into(), "acme", "bob", "h3", false).checks).is_err(), "bob exists");
        assert_eq!(t.get(Table::Tenants, "acme").unwrap().value, r#"{"admin":"ann"}"#);
        assert_eq!(t.get(Table::Users, "acme/bob").unwrap().value, r#"{"admin":false}"#);
        assert_eq!(t.get(Table::Credentials, "acme/ann").unwrap().value, "h1");
    }
}
