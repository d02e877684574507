//! What a tenant name, a user name and a password may be. Names go into PostgreSQL keys, token
//! claims and document ids, so they share the document id's charset (`[a-z0-9-]{1,64}`, see
//! `system::doc_update::DocId`): nothing in them needs escaping, and `/` can separate them.

/// Longest tenant or user name (a document id's part).
pub const MAX_NAME_LEN: usize = crate::doc_update::MAX_NAME_LEN;
/// Shortest password accepted at sign-up (NIST SP 800-63B's minimum for a chosen secret).
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: argon2 takes any length, so this bounds the work one request costs.
pub const MAX_PASSWORD_LEN: usize = 256;

/// A tenant or user name: 1 to 64 of `a-z`, `0-9` and `-`.
pub fn valid_name(name: &str) -> bool {
    crate::doc_update::valid_part(name)
}

/// A password as sign-up accepts it (login accepts any length up to the maximum, and fails).
pub fn valid_password(password: &str) -> bool {
    (MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len())
}

/// The key of a user in the `users` and `credentials` tables.
pub fn user_key(tenant: &str, user: &str) -> String {
    format!("{tenant}/{user}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passwords() {
        for ok in ["a", "acme-1", &"x".repeat(64)] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "Acme", "a/b", "a b", "é", "a_b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(!valid_password("short"));
        assert!(valid_password("long enough"));
        assert!(!valid_password(&"p".repeat(257)));
        assert_eq!(user_key("acme", "ann"), "acme/ann");
    }
}
