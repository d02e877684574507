//! The data model: typed tables and multi-key transactions instead of SQL.
//!
//! Five tables hold what the auth service keeps in PostgreSQL: tenants, users, credentials
//! (password hashes), document permissions and the token signing keys. A transaction is a list of checks
//! (the `WHERE`/`SELECT ... FOR UPDATE` part) and a list of writes, applied atomically on the
//! primary in WAL order, so transactions are serializable there. Every row remembers the WAL
//! position that wrote it, which is how readers and checkers tell versions apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest key and value accepted from a client: a bigger one is a broken or hostile client.
pub const MAX_KEY_LEN: usize = 256;
pub const MAX_VALUE_LEN: usize = 4096;
/// Most checks plus writes in one transaction.
pub const MAX_TXN_OPS: usize = 64;
/// Most rows a scan returns.
pub const MAX_SCAN_ROWS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Tenants,
    Users,
    Credentials,
    DocPermissions,
    /// The auth service's token signing keys, one row per key generation (`system::auth::keys`).
    SigningKeys,
}

impl Table {
    pub const ALL: [Table; 5] =
        [Table::Tenants, Table::Users, Table::Credentials, Table::DocPermissions, Table::SigningKeys];

    pub fn name(self) -> &'static str {
        match self {
            Table::Tenants => "tenants",
            Table::Users => "users",
            Table::Credentials => "credentials",
            Table::DocPermissions => "doc_permissions",
            Table::SigningKeys => "signing_keys",
        }
    }
}

/// PostgreSQL's `synchronous_commit` levels that this model distinguishes. `off` is left out:
/// every commit here is fsynced locally before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncCommit {
    /// `synchronous_commit = local`: acknowledged once flushed on the primary.
    Local,
    /// `synchronous_commit = on`: acknowledged once the synchronous standby has flushed it too.
    On,
}

/// The durability level of each table class. PostgreSQL sets `synchronous_commit` per
/// transaction (`SET LOCAL`); the application here derives it from the tables a transaction
/// writes, taking the strongest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Durability {
    pub per_table: BTreeMap<Table, SyncCommit>,
}

impl Durability {
    /// Credentials, permissions and signing keys on synchronous commit, the rest on local commit
    /// (a signing key lost in a failover would void every token it signed).
    pub fn standard() -> Self {
        let per_table = BTreeMap::from([
            (Table::Tenants, SyncCommit::Local),
            (Table::Users, SyncCommit::Local),
            (Table::Credentials, SyncCommit::On),
            (Table::DocPermissions, SyncCommit::On),
            (Table::SigningKeys, SyncCommit::On),
        ]);
        Durability { per_table }
    }

    /// The unsafe variant: credentials on asynchronous (local) commit.
    pub fn async_credentials() -> Self {
        let mut d = Self::standard();
        d.per_table.insert(Table::Credentials, SyncCommit::Local);
        d
    }

    pub fn level(&self, writes: &[Write]) -> SyncCommit {
        writes
            .iter()
            .map(|w| self.per_table.get(&w.table()).copied().unwrap_or(SyncCommit::On))
            .max()
            .unwrap_or(SyncCommit::Local)
    }
}

/// One row and the WAL position of the transaction that wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub value: String,
    pub epoch: u64,
    pub index: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Write {
    Put { table: Table, key: String, value: String },
    Delete { table: Table, key: String },
}

impl Write {
    pub fn table(&self) -> Table {
        match self {
            Write::Put { table, .. } | Write::Delete { table, .. } => *table,
        }
    }
    pub fn key(&self) -> &str {
        match self {
            Write::Put { key, .. } | Write::Delete { key, .. } => key,
        }
    }
}

/// A precondition checked atomically with the writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Absent { table: Table, key: String },
    Present { table: Table, key: String },
}

/// A multi-key transaction. `id` is unique per attempt (the client's), so checkers can find it
/// in the WAL.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn {
    pub id: String,
    #[serde(default)]
    pub checks: Vec<Check>,
    pub writes: Vec<Write>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TxnError {
    #[error("transaction has no writes")]
    Empty,
    #[error("transaction has {0} operations, over {MAX_TXN_OPS}")]
    TooLarge(usize),
    #[error("key or value over the size limit")]
    Oversized,
    #[error("check failed: {table}/{key} is {what}")]
    CheckFailed { table: &'static str, key: String, what: &'static str },
}

impl Txn {
    /// Rejects what no honest client sends (the request came over the network).
    pub fn validate(&self) -> Result<(), TxnError> {
        if self.writes.is_empty() {
            return Err(TxnError::Empty);
        }
        let ops = self.checks.len() + self.writes.len();
        if ops > MAX_TXN_OPS {
            return Err(TxnError::TooLarge(ops));
        }
        let key_ok = |k: &str| !k.is_empty() && k.len() <= MAX_KEY_LEN;
        let writes_ok = self.writes.iter().all(|w| match w {
            Write::Put { key, value, .. } => key_ok(key) && value.len() <= MAX_VALUE_LEN,
            Write::Delete { key, .. } => key_ok(key),
        });
        let checks_ok = self.checks.iter().all(|c| match c {
            Check::Absent { key, .. } | Check::Present { key, .. } => key_ok(key),
        });
        if !(writes_ok && checks_ok && self.id.len() <= MAX_KEY_LEN) {
            return Err(TxnError::Oversized);
        }
        Ok(())
    }
}

/// Every table's rows, ordered by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tables {
    rows: BTreeMap<Table, BTreeMap<String, Row>>,
}

impl Tables {
    pub fn get(&self, table: Table, key: &str) -> Option<&Row> {
        self.rows.get(&table)?.get(key)
    }

    /// Rows whose key starts with `prefix`, in key order, at most `limit`.
    pub fn scan(&self, table: Table, prefix: &str, limit: usize) -> Vec<(String, Row)> {
        let Some(rows) = self.rows.get(&table) else { return Vec::new() };
        rows.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit.min(MAX_SCAN_ROWS))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }

    pub fn check(&self, checks: &[Check]) -> Result<(), TxnError> {
        for c in checks {
            let (table, key, want_present) = match c {
                Check::Absent { table, key } => (*table, key, false),
                Check::Present { table, key } => (*table, key, true),
            };
            let present = self.get(table, key).is_some();
            if present != want_present {
                let what = if present { "present" } else { "absent" };
                return Err(TxnError::CheckFailed { table: table.name(), key: key.clone(), what });
            }
        }
        Ok(())
    }

    /// Applies the writes of the transaction at WAL position (`epoch`, `index`).
    pub fn apply(&mut self, epoch: u64, index: u64, writes: &[Write]) {
        for w in writes {
            let rows = self.rows.entry(w.table()).or_default();
            match w {
                Write::Put { key, value, .. } => {
                    rows.insert(key.clone(), Row { value: value.clone(), epoch, index });
                }
                Write::Delete { key, .. } => {
                    rows.remove(key);
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.rows.values().map(BTreeMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every row of every table, for comparing two states.
    pub fn iter(&self) -> impl Iterator<Item = (Table, &str, &Row)> {
        self.rows.iter().flat_map(|(t, rows)| rows.iter().map(move |(k, r)| (*t, k.as_str(), r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(table: Table, key: &str, value: &str) -> Write {
        Write::Put { table, key: key.into(), value: value.into() }
    }

    #[test]
    fn checks_and_writes_apply_atomically_in_order() {
        let mut t = Tables::default();
        t.apply(1, 2, &[put(Table::Users, "u1", "alice"), put(Table::Credentials, "u1", "hash")]);
        assert_eq!(t.get(Table::Users, "u1").unwrap().index, 2);
        assert!(t.check(&[Check::Present { table: Table::Users, key: "u1".into() }]).is_ok());
        let err = t.check(&[Check::Absent { table: Table::Users, key: "u1".into() }]).unwrap_err();
        assert!(matches!(err, TxnError::CheckFailed { what: "present", .. }));
        t.apply(1, 3, &[Write::Delete { table: Table::Users, key: "u1".into() }]);
        assert!(t.get(Table::Users, "u1").is_none());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn scan_is_ordered_and_bounded_by_prefix() {
        let mut t = Tables::default();
        for k in ["d1:u2", "d1:u1", "d2:u1"] {
            t.apply(1, 1, &[put(Table::DocPermissions, k, "edit")]);
        }
        let keys: Vec<String> = t.scan(Table::DocPermissions, "d1:", 10).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["d1:u1", "d1:u2"]);
    }

    #[test]
    fn durability_takes_the_strongest_table_and_validation_rejects_junk() {
        let d = Durability::standard();
        assert_eq!(d.level(&[put(Table::Users, "u", "x")]), SyncCommit::Local);
        assert_eq!(d.level(&[put(Table::Users, "u", "x"), put(Table::Credentials, "u", "h")]), SyncCommit::On);
        assert_eq!(Durability::async_credentials().level(&[put(Table::Credentials, "u", "h")]), SyncCommit::Local);
        let empty = Txn { id: "t".into(), checks: vec![], writes: vec![] };
        assert_eq!(empty.validate(), Err(TxnError::Empty));
        let big = Txn { id: "t".into(), checks: vec![], writes: vec![put(Table::Users, &"k".repeat(300), "v")] };
        assert_eq!(big.validate(), Err(TxnError::Oversized));
    }
}
