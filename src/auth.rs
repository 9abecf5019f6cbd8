//! Credentials: argon2id password hashes, random session tokens, the rules for nicknames
//! and passwords, and [`TokenCache`], the memory of recently checked tokens. Nothing here
//! touches the network or the database.

use std::{
    collections::HashMap,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

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
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| format!("hashing failed: {e}"))
}

/// Checks a password against a stored PHC string; a malformed hash never matches.
pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
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
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 16];
        OsRng.fill_bytes(&mut secret);
        hash_password(&URL_SAFE_NO_PAD.encode(secret)).unwrap_or_default()
    })
}

/// A fresh session token: what the client holds, never stored.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token's SHA-256: what [`TokenCache`] is keyed by.
pub(crate) type TokenDigest = [u8; 32];

/// A token's SHA-256 (the database stores it hex-encoded: [`token_hash`]).
pub(crate) fn token_digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// Hex-encodes a token digest as the database stores it.
pub(crate) fn digest_hex(digest: &TokenDigest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * digest.len());
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

/// What the database stores for a token: its SHA-256, hex.
pub fn token_hash(token: &str) -> String {
    digest_hex(&token_digest(token))
}

/// Recently checked tokens and what they resolved to, so that opening many connections does
/// not look each token up in the database again.
///
/// Exactness is the rule, not an afterthought: an entry is used only while its session has
/// not expired (`expires_at` is checked on every hit) and for at most the cache's `ttl`;
/// and whatever revokes a session or changes a user (logout, password change, ban, kick,
/// delete, profile or theme changes: the hooks on `AppState`) calls [`TokenCache::forget_user`]
/// *after* its database change, which drops the user's entries at once. A lookup that read
/// the database before such a change cannot put its stale answer back afterwards: every
/// `forget_user` bumps a generation, and [`TokenCache::insert`] refuses an answer read under
/// an older one.
pub struct TokenCache<T> {
    inner: Mutex<CacheInner<T>>,
    /// How long an entry is trusted: also bounds how late a change made outside this process
    /// (the `create-admin` command on the database) is seen.
    ttl: Duration,
    /// Most entries kept; a full cache drops what is stale, or everything.
    capacity: usize,
}

/// The entries and the generation, behind the cache's lock.
struct CacheInner<T> {
    entries: HashMap<TokenDigest, CacheEntry<T>>,
    generation: u64,
}

/// One checked token.
struct CacheEntry<T> {
    user_id: i64,
    /// The session's `expires_at` (ms since the epoch).
    expires_at_ms: i64,
    /// When it was checked against the database.
    checked: Instant,
    value: T,
}

impl<T: Clone> TokenCache<T> {
    /// An empty cache trusting entries for `ttl`, holding at most `capacity`.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        TokenCache {
            inner: Mutex::new(CacheInner {
                entries: HashMap::new(),
                generation: 0,
            }),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheInner<T>> {
        // Plain data: a panic while holding the lock leaves it consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What `token` resolved to, if it was checked less than `ttl` ago, nothing about its
    /// user changed since, and its session is live at `now_ms`.
    pub fn get(&self, token: &TokenDigest, now_ms: i64) -> Option<T> {
        let mut inner = self.lock();
        let entry = inner.entries.get(token)?;
        if entry.expires_at_ms > now_ms && entry.checked.elapsed() < self.ttl {
            return Some(entry.value.clone());
        }
        inner.entries.remove(token);
        None
    }

    /// The generation to pass to [`TokenCache::insert`]: read it *before* the database.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Remembers what `token` resolved to, unless a user changed since `generation` was read.
    pub fn insert(
        &self,
        token: TokenDigest,
        user_id: i64,
        expires_at_ms: i64,
        value: T,
        generation: u64,
    ) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= self.capacity {
            let ttl = self.ttl;
            inner.entries.retain(|_, e| e.checked.elapsed() < ttl);
            if inner.entries.len() >= self.capacity {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            token,
            CacheEntry {
                user_id,
                expires_at_ms,
                checked: Instant::now(),
                value,
            },
        );
    }

    /// Drops every entry of `user_id` and refuses answers read before now.
    pub fn forget_user(&self, user_id: i64) {
        let mut inner = self.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.entries.retain(|_, e| e.user_id != user_id);
    }
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
    fn the_hex_token_hash_is_sha256_in_lower_case() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_cached_token_is_forgotten_with_its_user_and_when_its_session_expires() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let (ana, bia) = (token_digest("ana"), token_digest("bia"));
        let g = cache.generation();
        cache.insert(ana, 1, 1_000, "ana", g);
        cache.insert(bia, 2, 1_000, "bia", g);
        assert_eq!(cache.get(&ana, 999), Some("ana"));
        // Expired sessions are never answered from the cache.
        assert_eq!(cache.get(&ana, 1_000), None);
        cache.insert(ana, 1, 1_000, "ana", cache.generation());
        cache.forget_user(1);
        assert_eq!(cache.get(&ana, 0), None);
        assert_eq!(cache.get(&bia, 0), Some("bia"));
    }

    #[test]
    fn an_answer_read_before_a_revocation_is_not_cached_after_it() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let ana = token_digest("ana");
        let before = cache.generation();
        // The session is revoked while the lookup is in the database.
        cache.forget_user(1);
        cache.insert(ana, 1, i64::MAX, "ana", before);
        assert_eq!(cache.get(&ana, 0), None);
    }

    #[test]
    fn a_full_cache_stays_within_its_capacity() {
        let cache = TokenCache::new(Duration::from_secs(60), 2);
        for (i, t) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(token_digest(t), i as i64, i64::MAX, i, cache.generation());
        }
        assert!(cache.lock().entries.len() <= 2);
        assert_eq!(cache.get(&token_digest("c"), 0), Some(2));
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
