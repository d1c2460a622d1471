//! The auth operations of openapi/openapi.yaml against a real Postgres, through HTTP.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use stampede_auth::{AuthConfig, AuthService};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::testkit::{spawn, test_config};
use stampede_common::token::{Claims, Role, Tokens};

#[path = "api/accounts.rs"]
mod accounts;
#[path = "api/admin.rs"]
mod admin;

struct App {
    addr: SocketAddr,
    tokens: Arc<Tokens>,
    config: stampede_common::Config,
    db: deadpool_postgres::Pool,
}

async fn app() -> App {
    app_with(|_| {}).await
}

/// The auth service with its settings changed by `adjust` (an SMTP relay…).
async fn app_with(adjust: impl FnOnce(&mut AuthConfig)) -> App {
    let config = test_config(&[stampede_auth::MIGRATIONS, stampede_catalog::MIGRATIONS].concat()).await;
    let mut auth = AuthConfig::from_env(&config.env).expect("auth config");
    adjust(&mut auth);
    let db = stampede_common::db::pool(&config.database_url, 4).expect("pool");
    let tokens = Arc::new(Tokens::new(&config.jwt, config.access_token_seconds));
    let addr = spawn(AuthService::build(&config, &auth, db.clone(), tokens.clone())).await;
    App { addr, tokens, config, db }
}

impl App {
    async fn post(&self, path: &str, body: Value) -> Answer {
        call(self.addr, Method::POST, path, None, Some(&body)).await
    }
    async fn signup(&self, email: &str) -> Value {
        let a = self.post("/api/auth/signup", json!({"email": email, "password": "correct horse"})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.json());
        a.json()
    }
    async fn me(&self, token: &str) -> Answer {
        call(self.addr, Method::GET, "/api/auth/me", Some(token), None).await
    }
}

fn assert_problem(a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status.as_u16(), status, "body: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("content-type"), Some("application/problem+json"));
    let body = a.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["code"], code, "body: {body}");
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
}

#[tokio::test]
async fn signup_signin_me_and_conflicts() {
    let app = app().await;
    let body = app.signup("Ann@Example.com").await;
    assert_eq!(body["user"]["email"], "ann@example.com");
    assert_eq!(body["user"]["role"], "customer");
    assert!(body["user"]["id"].is_string());
    assert!(body["expires_in"].as_i64().expect("expires_in") > 0);
    assert_eq!(body["refresh_token"].as_str().expect("refresh").len(), 64, "256-bit token");

    let me = app.me(body["access_token"].as_str().expect("token")).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json(), json!({"id": body["user"]["id"], "email": "ann@example.com", "role": "customer", "email_verified": false}));

    let dup = app.post("/api/auth/signup", json!({"email": "ann@example.com", "password": "another one"})).await;
    assert_problem(&dup, 409, "email_taken");
    let bad_email = app.post("/api/auth/signup", json!({"email": "not-an-email", "password": "long enough"})).await;
    assert_problem(&bad_email, 400, "invalid_email");
    let short = app.post("/api/auth/signup", json!({"email": "bo@example.com", "password": "short"})).await;
    assert_problem(&short, 400, "invalid_password");

    let ok = app.post("/api/auth/signin", json!({"email": "ann@example.com", "password": "correct horse"})).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["user"]["id"], body["user"]["id"]);
    let wrong = app.post("/api/auth/signin", json!({"email": "ann@example.com", "password": "wrong horse"})).await;
    assert_problem(&wrong, 401, "invalid_credentials");
    let nobody = app.post("/api/auth/signin", json!({"email": "nobody@example.com", "password": "correct horse"})).await;
    assert_problem(&nobody, 401, "invalid_credentials");
}

#[tokio::test]
async fn access_tokens_tampered_none_expired_and_foreign_are_refused() {
    let app = app().await;
    let body = app.signup("cy@example.com").await;
    let token = body["access_token"].as_str().expect("token");
    assert_problem(&app.me("").await, 401, "unauthorized");
    let no_header = send(app.addr, Method::GET, "/api/auth/me", &[], None).await;
    assert_problem(&no_header, 401, "unauthorized");

    // Tampered: flip one character of the signature.
    let mut bytes = token.as_bytes().to_vec();
    let last = bytes.len() - 2;
    bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
    assert_problem(&app.me(&String::from_utf8(bytes).expect("utf8")).await, 401, "unauthorized");

    // alg: none, claiming admin.
    let header = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0"; // {"alg":"none","typ":"JWT"}
    let payload = token.split('.').nth(1).expect("payload");
    assert_problem(&app.me(&format!("{header}.{payload}.")).await, 401, "unauthorized");

    // Expired.
    let now = stampede_common::clock::now_ms() / 1000;
    let id = body["user"]["id"].as_str().expect("id").to_owned();
    let expired = app.tokens.sign(&Claims { sub: id.clone(), role: Role::Customer, iat: now - 3600, exp: now - 600, sid: None, email_verified: false }).expect("sign");
    assert_problem(&app.me(&expired).await, 401, "unauthorized");

    // Signed with another key.
    let mut other = app.config.jwt.clone();
    other.secret = "another-secret-another-secret-another!".into();
    let foreign = Tokens::new(&other, 60).issue(&id, Role::Admin).expect("sign");
    assert_problem(&app.me(&foreign).await, 401, "unauthorized");

    // Cookies work for the web client.
    let cookie = format!("theme=dark; stampede_access={token}");
    let via_cookie = send(app.addr, Method::GET, "/api/auth/me", &[("cookie", &cookie)], None).await;
    assert_eq!(via_cookie.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = app().await;
    let first = app.signup("di@example.com").await;
    let r1 = first["refresh_token"].as_str().expect("r1").to_owned();

    let rotated = app.post("/api/auth/refresh", json!({"refresh_token": r1})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.json());
    let r2 = rotated.json()["refresh_token"].as_str().expect("r2").to_owned();
    assert_ne!(r1, r2);
    assert_eq!(app.me(rotated.json()["access_token"].as_str().expect("at")).await.status, StatusCode::OK);

    // The old token is spent: presenting it again is reuse, and it revokes r2 too.
    let reuse = app.post("/api/auth/refresh", json!({"refresh_token": r1})).await;
    assert_problem(&reuse, 401, "token_reused");
    let newest = app.post("/api/auth/refresh", json!({"refresh_token": r2})).await;
    assert_problem(&newest, 401, "unauthorized");

    // Another sign-in is another family and still works.
    let again = app.post("/api/auth/signin", json!({"email": "di@example.com", "password": "correct horse"})).await;
    let r3 = again.json()["refresh_token"].as_str().expect("r3").to_owned();
    assert_eq!(app.post("/api/auth/refresh", json!({"refresh_token": r3})).await.status, StatusCode::OK);
    let garbage = app.post("/api/auth/refresh", json!({"refresh_token": "nope"})).await;
    assert_problem(&garbage, 401, "unauthorized");
}

#[tokio::test]
async fn concurrent_rotation_of_one_token_succeeds_once() {
    let app = app().await;
    let first = app.signup("ed@example.com").await;
    let r1 = first["refresh_token"].as_str().expect("r1").to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (addr, r1) = (app.addr, r1.clone());
        tasks.push(tokio::spawn(async move {
            call(addr, Method::POST, "/api/auth/refresh", None, Some(&json!({"refresh_token": r1}))).await.status
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == StatusCode::OK {
            ok += 1;
        }
    }
    assert_eq!(ok, 1, "exactly one rotation may win");
}

#[tokio::test]
async fn signout_revokes() {
    let app = app().await;
    let s = app.signup("fay@example.com").await;
    let r = s["refresh_token"].as_str().expect("r").to_owned();
    let out = app.post("/api/auth/signout", json!({"refresh_token": r})).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_problem(&app.post("/api/auth/refresh", json!({"refresh_token": r})).await, 401, "unauthorized");
}

#[tokio::test]
async fn admin_creation_and_roles() {
    let app = app().await;
    let passwords = stampede_auth::Passwords::from_config(&AuthConfig::from_env(&app.config.env).expect("auth config"));
    stampede_auth::create_admin(&app.db, &passwords, "root@example.com", "admin-password").await.expect("admin");
    // Idempotent: a second run resets, and does not fail.
    stampede_auth::create_admin(&app.db, &passwords, "root@example.com", "admin-password").await.expect("again");
    let signin = app.post("/api/auth/signin", json!({"email": "root@example.com", "password": "admin-password"})).await;
    assert_eq!(signin.json()["user"]["role"], "admin");
    let token = signin.json()["access_token"].as_str().expect("token").to_owned();
    let who = app.tokens.verify(&token).expect("valid");
    assert!(who.require_admin().is_ok());
    let customer = app.signup("gus@example.com").await;
    let who = app.tokens.verify(customer["access_token"].as_str().expect("t")).expect("valid");
    assert_eq!(who.require_admin().expect_err("customer").status, StatusCode::FORBIDDEN);

    let n = stampede_auth::seed_users(&app.db, &passwords, 50, "load-test-pw", "load.test").await.expect("seed");
    assert_eq!(n, 50);
    assert_eq!(stampede_auth::seed_users(&app.db, &passwords, 50, "load-test-pw", "load.test").await.expect("again"), 0);
    let s = app.post("/api/auth/signin", json!({"email": "user42@load.test", "password": "load-test-pw"})).await;
    assert_eq!(s.status, StatusCode::OK);
}

#[tokio::test]
async fn error_renderer_speaks_problem_json() {
    let app = app().await;
    let malformed = send(app.addr, Method::POST, "/api/auth/signup", &[("content-type", "application/json")], Some(b"{\"email\":".to_vec())).await;
    assert_problem(&malformed, 400, "malformed_json");
    let wrong_type = app.post("/api/auth/signup", json!({"email": 5, "password": "long enough"})).await;
    assert_problem(&wrong_type, 400, "invalid_body");
    let big = format!("{{\"email\":\"{}\",\"password\":\"x\"}}", "a".repeat(app.config.max_body_bytes + 10));
    let too_big = send(app.addr, Method::POST, "/api/auth/signup", &[], Some(big.into_bytes())).await;
    assert_problem(&too_big, 413, "body_too_large");
    assert_problem(&call(app.addr, Method::GET, "/api/nowhere", None, None).await, 404, "not_found");
    let wrong_method = call(app.addr, Method::GET, "/api/auth/signup", None, None).await;
    assert_problem(&wrong_method, 405, "method_not_allowed");
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_eq!(call(app.addr, Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert_eq!(call(app.addr, Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
    let metrics = call(app.addr, Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(text.contains("# HELP http_requests_total"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"), "histograms have buckets: {text}");
}
