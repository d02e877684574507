//! Fuzz targets for what reaches the HTTP services and the auth API from the network: request
//! bytes parsed by `http::parse_request` (the sans-IO core of `http::read_request`), routed and
//! checked by `auth::route` (sign-up, login, grant, revoke bodies), the collaboration endpoint's
//! `collab::session::parse_target`, and JWTs verified by `auth::tokens::verify` (the core of
//! every service's `Verifier`).
//!
//! Inputs are raw bytes and, structure-aware, requests with mutated methods, paths, headers,
//! `Content-Length`s and JSON bodies, and tokens with swapped or forged headers (`alg`, `kid`),
//! claims (names, times, types), signatures and segments. The properties:
//! - nothing panics, and the heap one request costs is bounded by its size (a `Content-Length`
//!   claiming the largest body does not get it before the bytes arrive);
//! - the sans-IO parse and the stream reader agree on every input;
//! - a request the API routes is well-formed (valid names and password, a bearer token for a
//!   grant or revocation), and every refusal is a 4xx;
//! - a token is accepted only if a known key signed exactly its header and claims, and its
//!   claims are well-formed and current; a correctly signed, current token is accepted.
//!
//! Under `cargo test` each target runs a fixed number of random inputs (a failure prints the
//! `BOLERO_RANDOM_SEED` that replays it); `cargo bolero test` runs them under libFuzzer for as
//! long as asked (see the README's "Fuzzing").
#![cfg(not(madsim))]

mod alloc_meter;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bolero::{check, TypeGenerator};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use futures_util::FutureExt;
use rand::SeedableRng;
use system::auth::keys::{KeySet, StoredKey};
use system::auth::names::{valid_name, valid_password};
use system::auth::route::{change_target, route, Call};
use system::auth::tokens::{self, Claims, MAX_TOKEN_LEN};
use system::auth::AuthError;
use system::http::{self, HttpError, Request, MAX_BODY_BYTES};

#[global_allocator]
static METER: alloc_meter::Meter = alloc_meter::Meter;

/// Inputs per target under `cargo test` (a second or two each in a debug build);
/// `BOLERO_RANDOM_ITERATIONS` overrides them.
const RAW_ITERATIONS: usize = 20_000;
const REQUEST_ITERATIONS: usize = 6_000;
const TOKEN_ITERATIONS: usize = 3_000;

/// The heap one request may cost: a fixed allowance plus a multiple of its size.
fn heap_bound(input_len: usize) -> usize {
    (64 << 10) + 16 * input_len
}

// ---------------------------------------------------------------------------------------------
// Requests.

/// Parses `bytes` both ways and checks what the API and the collaboration endpoint make of it.
fn check_request_bytes(bytes: &[u8]) {
    let (parsed, usage) = alloc_meter::measure(|| http::parse_request(bytes));
    let bound = heap_bound(bytes.len());
    assert!(usage.largest_bytes.max(usage.peak_bytes) <= bound, "parsing {} bytes took {usage:?}", bytes.len());
    let (streamed, usage) = alloc_meter::measure(|| {
        let mut stream = bytes;
        http::read_request(&mut stream).now_or_never().expect("a byte slice never waits")
    });
    assert!(usage.largest_bytes <= heap_bound(bytes.len()), "reading {} bytes took {usage:?}", bytes.len());
    match (&parsed, &streamed) {
        (Ok(a), Ok(b)) => assert!(a == b, "the parser and the stream reader disagree"),
        (Err(a), Err(b)) => assert_eq!(kind(a), kind(b), "{a} vs {b}"),
        // The reader stops at the declared body, so it sees bytes past it only when they came
        // with the head; the parser sees them all.
        (Err(HttpError::Malformed(m)), Ok(b)) if m == "bytes past the body" => {
            assert!(b.head_bytes().len() + b.body.len() < bytes.len());
        }
        (a, b) => panic!("the parser said {:?}, the stream reader {:?}", a.as_ref().err(), b.as_ref().err()),
    }
    let _ = http::parse_response(bytes);
    let Ok(req) = parsed else { return };
    assert!(bytes.starts_with(req.head_bytes()));
    assert_eq!(req.head_bytes().len() + req.body.len(), bytes.len(), "a request is its head and its body");
    check_route(&req);
    let _ = system::collab::session::parse_target(&req);
}

fn kind(e: &HttpError) -> &'static str {
    match e {
        HttpError::Io(_) => "io",
        HttpError::Closed => "closed",
        HttpError::Malformed(_) => "malformed",
        HttpError::TooLarge(_) => "too large",
        HttpError::Timeout => "timeout",
    }
}

/// What the API routes is well-formed; what it refuses is a 4xx.
fn check_route(req: &Request) {
    let post = req.method == "POST";
    match route(req) {
        Ok(Call::Signup(c)) => {
            assert!(post && req.path == "/auth/signup");
            assert!(valid_name(&c.tenant) && valid_name(&c.user) && valid_password(&c.password), "{c:?}");
        }
        Ok(Call::Login(c)) => {
            assert!(post && req.path == "/auth/login");
            assert!(valid_name(&c.tenant) && valid_name(&c.user), "{c:?}");
        }
        Ok(Call::Change { token, perm, .. }) => {
            assert!(post && matches!(req.path.as_str(), "/auth/grant" | "/auth/revoke"));
            assert_eq!(req.bearer(), Some(token.as_str()));
            assert_eq!(perm.is_some(), req.path == "/auth/grant");
        }
        Ok(Call::Keys) => assert!(req.method == "GET" && req.path == "/auth/keys"),
        Err(e) => {
            assert!([400, 401, 404, 405, 413].contains(&e.status()), "{e:?}");
            let admin_path = matches!(req.path.as_str(), "/auth/grant" | "/auth/revoke");
            if post && admin_path && req.bearer().is_none() && e.status() != 413 {
                // Only an oversized body (not read at all) is refused before the missing token.
                assert_eq!(e.status(), 401, "an admin call without a token is refused before its body is read");
            }
        }
    }
}

/// A short string.
#[derive(Clone, Debug, TypeGenerator)]
struct Small(#[generator(bolero::produce::<Vec<char>>().with().len(0usize..12))] Vec<char>);

impl Small {
    fn text(&self) -> String {
        self.0.iter().collect()
    }
}

#[derive(Clone, Debug, TypeGenerator)]
enum Method {
    Get,
    Post,
    Put,
    Other(Small),
}

#[derive(Clone, Debug, TypeGenerator)]
enum Path {
    Signup,
    Login,
    Grant,
    Revoke,
    Keys,
    Collab { tenant: Name, doc: Name, token: Option<Small>, ack: bool },
    Other(Small),
}

/// A name that is valid, or anything.
#[derive(Clone, Debug, TypeGenerator)]
enum Name {
    Good(u8),
    Long,
    Other(Small),
}

impl Name {
    fn text(&self) -> String {
        match self {
            Name::Good(n) => format!("name-{n}"),
            Name::Long => "x".repeat(65),
            Name::Other(s) => s.text(),
        }
    }
}

#[derive(Clone, Debug, TypeGenerator)]
enum Header {
    Bearer(Small),
    BearerToken,
    Upgrade,
    TransferEncoding,
    Raw(Small, Small),
    /// Many header lines (over the limit of 64 when large).
    Many(u8),
}

#[derive(Clone, Debug, TypeGenerator)]
enum ContentLength {
    Exact,
    Missing,
    Off(i16),
    Value(u64),
    Largest,
    Text(Small),
    Twice(i16),
}

#[derive(Clone, Debug, TypeGenerator)]
enum Body {
    Credentials {
        tenant: Name,
        user: Name,
        password: Password,
    },
    Grant {
        user: Name,
        doc: Name,
        perm: Small,
    },
    Revoke {
        user: Name,
        doc: Name,
    },
    /// A valid shape with one field more.
    Extra,
    /// Arrays nested this deep.
    Nested(u16),
    /// Fields of the wrong type.
    WrongTypes,
    Raw(Vec<u8>),
    Empty,
    /// Over the API's 4 KiB.
    Big(u16),
}

#[derive(Clone, Debug, TypeGenerator)]
enum Password {
    Good,
    Short,
    Long,
    Other(Small),
}

#[derive(Clone, Debug, TypeGenerator)]
struct RequestSpec {
    method: Method,
    path: Path,
    headers: Vec<Header>,
    content_length: ContentLength,
    body: Body,
    /// Bare `\n` line ends instead of `\r\n`.
    bare_newlines: bool,
    /// Bytes past the body (a pipelined request).
    trailing: Vec<u8>,
}

impl RequestSpec {
    fn bytes(&self) -> Vec<u8> {
        let method = match &self.method {
            Method::Get => "GET".into(),
            Method::Post => "POST".into(),
            Method::Put => "PUT".into(),
            Method::Other(s) => s.text(),
        };
        let target = match &self.path {
            Path::Signup => "/auth/signup".into(),
            Path::Login => "/auth/login".into(),
            Path::Grant => "/auth/grant".into(),
            Path::Revoke => "/auth/revoke".into(),
            Path::Keys => "/auth/keys".into(),
            Path::Collab { tenant, doc, token, ack } => {
                let mut t = format!("/collab/{}/{}?", tenant.text(), doc.text());
                if let Some(token) = token {
                    t.push_str(&format!("token={}&", token.text()));
                }
                if *ack {
                    t.push_str("ack=1");
                }
                t
            }
            Path::Other(s) => s.text(),
        };
        let body = self.body_bytes();
        let nl = if self.bare_newlines { "\n" } else { "\r\n" };
        let mut head = format!("{method} {target} HTTP/1.1{nl}host: auth{nl}");
        for h in &self.headers {
            match h {
                Header::Bearer(s) => head.push_str(&format!("authorization: Bearer {}{nl}", s.text())),
                Header::BearerToken => head.push_str(&format!("authorization: Bearer {}{nl}", good_token())),
                Header::Upgrade => head.push_str(&format!("upgrade: websocket{nl}connection: upgrade{nl}")),
                Header::TransferEncoding => head.push_str(&format!("transfer-encoding: chunked{nl}")),
                Header::Raw(k, v) => head.push_str(&format!("{}: {}{nl}", k.text(), v.text())),
                Header::Many(n) => {
                    for i in 0..*n {
                        head.push_str(&format!("x-{i}: {i}{nl}"));
                    }
                }
            }
        }
        let exact = body.len() as i64;
        match &self.content_length {
            ContentLength::Exact => head.push_str(&format!("content-length: {exact}{nl}")),
            ContentLength::Missing => {}
            ContentLength::Off(d) => head.push_str(&format!("content-length: {}{nl}", exact + *d as i64)),
            ContentLength::Value(v) => head.push_str(&format!("content-length: {v}{nl}")),
            ContentLength::Largest => head.push_str(&format!("content-length: {MAX_BODY_BYTES}{nl}")),
            ContentLength::Text(s) => head.push_str(&format!("content-length: {}{nl}", s.text())),
            ContentLength::Twice(d) => {
                head.push_str(&format!("content-length: {exact}{nl}content-length: {}{nl}", exact + *d as i64))
            }
        }
        head.push_str(nl);
        let mut bytes = head.into_bytes();
        bytes.extend(body);
        bytes.extend(&self.trailing);
        bytes
    }

    fn body_bytes(&self) -> Vec<u8> {
        let json = match &self.body {
            Body::Credentials { tenant, user, password } => {
                let password = match password {
                    Password::Good => "correct horse".to_string(),
                    Password::Short => "short".into(),
                    Password::Long => "p".repeat(300),
                    Password::Other(s) => s.text(),
                };
                serde_json::json!({ "tenant": tenant.text(), "user": user.text(), "password": password })
            }
            Body::Grant { user, doc, perm } => {
                serde_json::json!({ "user": user.text(), "doc": doc.text(), "perm": perm.text() })
            }
            Body::Revoke { user, doc } => serde_json::json!({ "user": user.text(), "doc": doc.text() }),
            Body::Extra => serde_json::json!({ "tenant": "acme", "user": "ann", "password": "long enough", "x": 1 }),
            Body::Nested(depth) => {
                let d = *depth as usize % 4000;
                return format!("{}{}", "[".repeat(d), "]".repeat(d)).into_bytes();
            }
            Body::WrongTypes => serde_json::json!({ "tenant": 1, "user": ["ann"], "password": null }),
            Body::Raw(b) => return b.clone(),
            Body::Empty => return Vec::new(),
            Body::Big(n) => return vec![b' '; 4097 + *n as usize % 8192],
        };
        json.to_string().into_bytes()
    }
}

#[test]
fn raw_bytes_as_a_request() {
    check!().with_iterations(RAW_ITERATIONS).for_each(check_request_bytes);
}

#[test]
fn mutated_requests() {
    check!().with_type::<RequestSpec>().with_iterations(REQUEST_ITERATIONS).for_each(|spec| {
        check_request_bytes(&spec.bytes());
    });
}

#[test]
fn grant_targets_are_the_admins_own_documents() {
    check!().with_type::<(Name, Name, bool, Name, Name)>().with_iterations(REQUEST_ITERATIONS).for_each(
        |(tenant, user, admin, target_user, doc)| {
            let claims = Claims::new(&tenant.text(), &user.text(), *admin, NOW, LIFETIME);
            let doc_text = doc.text();
            let target = match doc_text.len() % 2 {
                0 => doc_text,
                _ => format!("{}/{doc_text}", tenant.text()),
            };
            if let Ok(doc) = change_target(&claims, &target_user.text(), &target) {
                assert!(claims.admin && doc.tenant() == claims.tenant && valid_name(&target_user.text()));
            }
        },
    );
}

/// A claimed body larger than what arrives: the reader must not allocate the claim.
#[test]
fn a_claimed_body_costs_only_what_arrives() {
    let head = format!("POST /auth/login HTTP/1.1\r\ncontent-length: {MAX_BODY_BYTES}\r\n\r\n{{}}");
    let (read, usage) = alloc_meter::measure(|| {
        let mut stream = head.as_bytes();
        http::read_request(&mut stream).now_or_never().expect("a byte slice never waits")
    });
    assert!(matches!(read, Err(HttpError::Closed)));
    assert!(usage.largest_bytes < 64 << 10, "{usage:?}");
}

// ---------------------------------------------------------------------------------------------
// Tokens.

const NOW: u64 = 1_767_225_600_000;
const LIFETIME: u64 = 120_000;

struct Keys {
    known: StoredKey,
    other: StoredKey,
    set: KeySet,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let known = StoredKey::generate(1, NOW, &mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let other = StoredKey::generate(2, NOW, &mut rand_chacha::ChaCha8Rng::seed_from_u64(2));
        let set = KeySet::new(&[known.public()]);
        Keys { known, other, set }
    })
}

fn signing_key(k: &StoredKey) -> SigningKey {
    let seed: [u8; 32] = URL_SAFE_NO_PAD.decode(&k.d).expect("base64 seed").try_into().expect("32 bytes");
    SigningKey::from_bytes(&seed)
}

fn good_token() -> String {
    tokens::sign(&keys().known, &Claims::new("acme", "ann", true, NOW, LIFETIME)).expect("signs")
}

#[derive(Clone, Debug, TypeGenerator)]
struct TokenSpec {
    alg: Alg,
    kid: Kid,
    typ: bool,
    extra_header: Option<(Small, Small)>,
    tenant: Name,
    user: Name,
    admin: bool,
    nbf: Time,
    exp: Time,
    claims_shape: Shape,
    signer: Signer,
    mutations: Vec<Mutation>,
}

#[derive(Clone, Debug, TypeGenerator)]
enum Alg {
    EdDSA,
    None,
    Hs256,
    Es256,
    Lowercase,
    Other(Small),
}

#[derive(Clone, Debug, TypeGenerator)]
enum Kid {
    Known,
    Other,
    Missing,
    Long,
    NotAString(i64),
    Junk(Small),
}

#[derive(Clone, Copy, Debug, TypeGenerator)]
enum Time {
    Now,
    Ago(u32),
    Ahead(u32),
    Max,
    Negative,
    Float,
}

/// How the claims are laid out.
#[derive(Clone, Copy, Debug, TypeGenerator)]
enum Shape {
    Exact,
    ExtraField,
    Missing(u8),
    WrongType(u8),
    NotAnObject,
}

#[derive(Clone, Debug, TypeGenerator)]
enum Signer {
    Known,
    Other,
    Bytes(Vec<u8>),
    Empty,
    /// The signature of a genuine token over different claims.
    Borrowed,
}

#[derive(Clone, Debug, TypeGenerator)]
enum Mutation {
    Swap(u8, u8),
    Drop(u8),
    Duplicate(u8),
    SetByte { at: u16, byte: u8 },
    Truncate(u16),
    Padding,
    StandardAlphabet,
    Whitespace(u16),
}

fn time(t: Time) -> serde_json::Value {
    match t {
        Time::Now => NOW.into(),
        Time::Ago(d) => (NOW - d as u64).into(),
        Time::Ahead(d) => (NOW + d as u64).into(),
        Time::Max => u64::MAX.into(),
        Time::Negative => (-1i64).into(),
        Time::Float => (NOW as f64 + 0.5).into(),
    }
}

impl TokenSpec {
    fn token(&self) -> String {
        let k = keys();
        let mut header = serde_json::Map::new();
        let alg: serde_json::Value = match &self.alg {
            Alg::EdDSA => "EdDSA".into(),
            Alg::None => "none".into(),
            Alg::Hs256 => "HS256".into(),
            Alg::Es256 => "ES256".into(),
            Alg::Lowercase => "eddsa".into(),
            Alg::Other(s) => s.text().into(),
        };
        header.insert("alg".into(), alg);
        let kid: Option<serde_json::Value> = match &self.kid {
            Kid::Known => Some(k.known.kid.clone().into()),
            Kid::Other => Some(k.other.kid.clone().into()),
            Kid::Missing => None,
            Kid::Long => Some("k".repeat(65).into()),
            Kid::NotAString(n) => Some((*n).into()),
            Kid::Junk(s) => Some(s.text().into()),
        };
        if let Some(kid) = kid {
            header.insert("kid".into(), kid);
        }
        if self.typ {
            header.insert("typ".into(), "JWT".into());
        }
        if let Some((key, value)) = &self.extra_header {
            header.insert(key.text(), value.text().into());
        }
        let mut claims = serde_json::Map::new();
        let fields: [(&str, serde_json::Value); 6] = [
            ("tenant", self.tenant.text().into()),
            ("user", self.user.text().into()),
            ("admin", self.admin.into()),
            ("iat_ms", time(self.nbf)),
            ("nbf_ms", time(self.nbf)),
            ("exp_ms", time(self.exp)),
        ];
        for (i, (name, value)) in fields.into_iter().enumerate() {
            match self.claims_shape {
                Shape::Missing(m) if m as usize % 6 == i => {}
                Shape::WrongType(m) if m as usize % 6 == i => {
                    claims.insert(name.into(), serde_json::json!([value]));
                }
                _ => {
                    claims.insert(name.into(), value);
                }
            }
        }
        if let Shape::ExtraField = self.claims_shape {
            claims.insert("role".into(), "root".into());
        }
        let claims = match self.claims_shape {
            Shape::NotAnObject => serde_json::json!([claims]),
            _ => serde_json::Value::Object(claims),
        };
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::Value::Object(header).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match &self.signer {
            Signer::Known => signing_key(&k.known).sign(message.as_bytes()).to_bytes().to_vec(),
            Signer::Other => signing_key(&k.other).sign(message.as_bytes()).to_bytes().to_vec(),
            Signer::Bytes(b) => b.clone(),
            Signer::Empty => Vec::new(),
            Signer::Borrowed => {
                let genuine = good_token();
                URL_SAFE_NO_PAD.decode(genuine.rsplit('.').next().expect("three segments")).expect("base64")
            }
        };
        let mut token = format!("{message}.{}", URL_SAFE_NO_PAD.encode(signature));
        for m in &self.mutations {
            mutate_token(&mut token, m);
        }
        token
    }

    /// Whether the token is what a correct verifier must accept: genuinely signed by the known
    /// key, named by its kid, with well-formed, current claims, and not damaged since.
    fn must_verify(&self) -> bool {
        let times_ok = matches!(self.nbf, Time::Now | Time::Ago(_)) && matches!(self.exp, Time::Ahead(d) if d > 0);
        matches!(self.alg, Alg::EdDSA)
            && matches!(self.kid, Kid::Known)
            && self.extra_header.is_none()
            && valid_name(&self.tenant.text())
            && valid_name(&self.user.text())
            && times_ok
            && matches!(self.claims_shape, Shape::Exact)
            && matches!(self.signer, Signer::Known)
            && self.mutations.is_empty()
    }
}

fn mutate_token(token: &mut String, m: &Mutation) {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    let at = |i: u8, n: usize| i as usize % n.max(1);
    match m {
        Mutation::Swap(a, b) => {
            let (a, b) = (at(*a, parts.len()), at(*b, parts.len()));
            parts.swap(a, b);
        }
        Mutation::Drop(i) => {
            if !parts.is_empty() {
                parts.remove(at(*i, parts.len()));
            }
        }
        Mutation::Duplicate(i) => {
            let i = at(*i, parts.len());
            if let Some(p) = parts.get(i).cloned() {
                parts.insert(i, p);
            }
        }
        Mutation::SetByte { at: i, byte } => {
            let mut bytes = std::mem::take(token).into_bytes();
            if !bytes.is_empty() {
                let i = *i as usize % bytes.len();
                bytes[i] = *byte;
            }
            *token = String::from_utf8_lossy(&bytes).into_owned();
            return;
        }
        Mutation::Truncate(i) => {
            let mut bytes = std::mem::take(token).into_bytes();
            bytes.truncate(*i as usize % (bytes.len() + 1));
            *token = String::from_utf8_lossy(&bytes).into_owned();
            return;
        }
        Mutation::Padding => {
            for p in &mut parts {
                p.push_str("==");
            }
        }
        Mutation::StandardAlphabet => {
            for p in &mut parts {
                if let Ok(raw) = URL_SAFE_NO_PAD.decode(p.as_bytes()) {
                    *p = STANDARD.encode(raw);
                }
            }
        }
        Mutation::Whitespace(i) => {
            let i = *i as usize % (token.len() + 1);
            if token.is_char_boundary(i) {
                token.insert(i, ' ');
            }
            return;
        }
    }
    *token = parts.join(".");
}

/// Checks one token against the known key set.
fn check_token(token: &str, must_verify: bool) {
    let k = keys();
    let (verified, usage) = alloc_meter::measure(|| tokens::verify(&k.set, token, NOW, 0));
    assert!(usage.largest_bytes <= heap_bound(token.len().min(MAX_TOKEN_LEN + 1)), "{usage:?}");
    let _ = tokens::kid_of(token);
    match &verified {
        Ok(claims) => {
            // Independently: the known key signed exactly the bytes before the last dot.
            let (message, signature) = token.rsplit_once('.').expect("a verified token has segments");
            let signature = URL_SAFE_NO_PAD.decode(signature).expect("a verified signature is base64url");
            let signature = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
            let public: VerifyingKey = signing_key(&k.known).verifying_key();
            assert!(
                public.verify_strict(message.as_bytes(), &signature).is_ok(),
                "accepted a token the known key did not sign: {token}"
            );
            assert_eq!(tokens::kid_of(token).ok().as_deref(), Some(k.known.kid.as_str()));
            assert!(valid_name(&claims.tenant) && valid_name(&claims.user));
            assert!(claims.nbf_ms <= NOW && NOW < claims.exp_ms, "{claims:?}");
        }
        Err(e) => {
            assert!(!must_verify, "refused a genuine, current token: {e} ({token})");
            assert!(!matches!(e, AuthError::Unavailable(_) | AuthError::Corrupt(_)), "{e:?}");
        }
    }
}

#[test]
fn forged_and_garbled_tokens() {
    check!().with_type::<TokenSpec>().with_iterations(TOKEN_ITERATIONS).for_each(|spec| {
        check_token(&spec.token(), spec.must_verify());
    });
}

#[test]
fn raw_bytes_as_a_token() {
    check!().with_iterations(RAW_ITERATIONS).for_each(|bytes: &[u8]| {
        check_token(&String::from_utf8_lossy(bytes), false);
        // A genuine token's header and claims with these bytes as the signature.
        let genuine = good_token();
        let (message, _) = genuine.rsplit_once('.').expect("three segments");
        check_token(&format!("{message}.{}", URL_SAFE_NO_PAD.encode(bytes)), false);
    });
}

#[test]
fn a_genuine_token_verifies() {
    check_token(&good_token(), true);
}

#[test]
fn signing_key_rows_from_the_store() {
    check!().with_type::<(Small, Vec<u8>)>().with_iterations(RAW_ITERATIONS / 4).for_each(|(key, value)| {
        let _ = StoredKey::from_row(&key.text(), &String::from_utf8_lossy(value));
    });
}
