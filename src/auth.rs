//! Credentials: argon2id password hashes, random session tokens, and the rules for nicknames
//! and passwords. Nothing here touches the network or the database.

use argon2::{
    password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine as _};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// argon2id memory cost in KiB (OWASP's minimum for argon2id: 19 MiB).
const ARGON2_M_COST_KIB: u32 = 19_456;
/// argon2id passes.
const ARGON2_T_COST: u32 = 2;
/// argon2id lanes.
const ARGON2_P_COST: u32 = 1;
/// Random bytes in a session token: 256 bits, well past the 128 a guess would need.
const TOKEN_BYTES: usize = 32;

/// Nickname length bounds, in characters.
pub const NICKNAME_MIN: usize = 3;
/// See [`NICKNAME_MIN`].
pub const NICKNAME_MAX: usize = 32;
/// Password length bounds, in characters.
pub const PASSWORD_MIN: usize = 8;
/// See [`PASSWORD_MIN`]; argon2 accepts more, but nobody needs a longer one.
pub const PASSWORD_MAX: usize = 256;

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's documented ranges, so this cannot fail.
    let params = Params::new(ARGON2_M_COST_KIB, ARGON2_T_COST, ARGON2_P_COST, None)
        .expect("argon2 parameters are valid constants");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a random password, verified against when a nickname is unknown so that an
/// unknown nickname costs the same time as a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 16];
        OsRng.fill_bytes(&mut secret);
        hash_password(&URL_SAFE_NO_PAD.encode(secret)).unwrap_or_default()
    })
}

/// A fresh session token: what the client holds, never stored.
pub fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the database stores for a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks a nickname against the rules; the error says which rule it breaks.
pub fn validate_nickname(nickname: &str) -> Result<(), String> {
    let len = nickname.chars().count();
    if !(NICKNAME_MIN..=NICKNAME_MAX).contains(&len) {
        return Err(format!(
            "nickname must be {NICKNAME_MIN} to {NICKNAME_MAX} characters long"
        ));
    }
    if !nickname.chars().next().is_some_and(char::is_alphanumeric) {
        return Err("nickname must start with a letter or a digit".to_owned());
    }
    if let Some(bad) = nickname
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "nickname may contain only letters, digits, '_', '-' and '.' (found {bad:?})"
        ));
    }
    Ok(())
}

/// Checks a password against the rules; the error says which rule it breaks.
pub fn validate_password(password: &str, nickname: &str) -> Result<(), String> {
    let len = password.chars().count();
    if len < PASSWORD_MIN {
        return Err(format!(
            "password must be at least {PASSWORD_MIN} characters long"
        ));
    }
    if len > PASSWORD_MAX {
        return Err(format!(
            "password must be at most {PASSWORD_MAX} characters long"
        ));
    }
    if password.to_lowercase() == nickname.to_lowercase() {
        return Err("password must not be the same as the nickname".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_phc_and_verifies_only_the_right_password() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hashed_to_hex() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn nickname_rules_each_have_their_own_message() {
        assert!(validate_nickname("ana_maria-1.x").is_ok());
        assert!(validate_nickname("João").is_ok());
        assert!(validate_nickname("ab").unwrap_err().contains("3 to 32"));
        assert!(validate_nickname("_ana")
            .unwrap_err()
            .contains("start with"));
        assert!(validate_nickname("ana maria")
            .unwrap_err()
            .contains("only letters"));
        assert!(validate_nickname("<script>").is_err());
    }

    #[test]
    fn password_rules_each_have_their_own_message() {
        assert!(validate_password("long enough", "ana").is_ok());
        assert!(validate_password("short", "ana")
            .unwrap_err()
            .contains("at least"));
        assert!(validate_password("AnaMaria1", "anamaria1")
            .unwrap_err()
            .contains("nickname"));
    }
}
