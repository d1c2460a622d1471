//! Verify e-mail, password reset and change, with the account e-mails
//! received by a real SMTP server on a loopback socket
//! (`stampede_common::smtp_sink`).

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use stampede_common::smtp_sink::{Received, SmtpSink};
use stampede_common::testkit::client::call;

use super::{App, app_with, assert_problem};

async fn smtp_app() -> (App, SmtpSink) {
    let sink = SmtpSink::start().await;
    let port = sink.addr.port();
    let app = app_with(|auth| auth.mail.smtp = Some(("127.0.0.1".to_owned(), port))).await;
    (app, sink)
}

/// The 64-hex-digit token in a message's link.
fn token_in(m: &Received) -> String {
    let at = m.data.find("?token=").expect("a link with a token") + 7;
    let token = &m.data[at..at + 64];
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{}", m.data);
    token.to_owned()
}

/// Waits for exactly `n` messages: `n` arrive, and no more within a moment.
async fn exactly(sink: &SmtpSink, n: usize) -> Vec<Received> {
    if n > 0 {
        sink.wait_for(n).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let got = sink.messages();
    assert_eq!(got.len(), n, "messages: {:?}", got.iter().map(|m| &m.to).collect::<Vec<_>>());
    got
}

impl App {
    async fn post_as(&self, path: &str, token: Option<&str>, body: Value) -> super::Answer {
        call(self.addr, Method::POST, path, token, Some(&body)).await
    }
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}")).to_owned()
}

#[tokio::test]
async fn verify_email_flow_over_smtp() {
    let (app, sink) = smtp_app().await;
    let session = app.signup("vera@example.com").await;
    let access = s(&session, "access_token");
    assert_eq!(session["user"]["email_verified"], false);
    assert_eq!(app.me(&access).await.json()["email_verified"], false);
    assert!(!app.tokens.verify(&access).expect("valid").email_verified);

    assert_problem(&app.post("/api/auth/verify-email/request", json!({})).await, 401, "unauthorized");
    let asked = app.post_as("/api/auth/verify-email/request", Some(&access), json!({})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let mail = &exactly(&sink, 1).await[0];
    assert_eq!(mail.to, ["vera@example.com"]);
    assert_eq!(mail.from, "tickets@stampede.local");
    assert!(mail.data.contains("Subject: Verify your e-mail address\r\n"));
    assert!(mail.data.contains("multipart/alternative") && mail.data.contains("text/plain") && mail.data.contains("text/html"));
    let token = token_in(mail);

    // A verify token is not a reset token.
    let wrong_kind = app.post("/api/auth/password-reset", json!({"token": token, "new_password": "brand new horse"})).await;
    assert_problem(&wrong_kind, 400, "invalid_token");

    let verified = app.post("/api/auth/verify-email", json!({"token": token})).await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.json());
    assert_eq!(verified.json()["email_verified"], true);
    assert_eq!(verified.json()["email"], "vera@example.com");
    assert_eq!(app.me(&access).await.json()["email_verified"], true);
    let signin = app.post("/api/auth/signin", json!({"email": "vera@example.com", "password": "correct horse"})).await;
    assert_eq!(signin.json()["user"]["email_verified"], true);
    // The access token carries it (holds on events that require it read
    // the claim): not in the one issued before verifying, in the one
    // issued at the next sign-in, and in a refresh of the old session.
    assert!(!app.tokens.verify(&access).expect("valid").email_verified, "issued before verifying");
    assert!(app.tokens.verify(&s(&signin.json(), "access_token")).expect("valid").email_verified);
    let refreshed = app.post("/api/auth/refresh", json!({"refresh_token": s(&session, "refresh_token")})).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert!(app.tokens.verify(&s(&refreshed.json(), "access_token")).expect("valid").email_verified, "a refresh picks it up");

    // Single use; unknown and malformed tokens alike.
    assert_problem(&app.post("/api/auth/verify-email", json!({"token": token})).await, 400, "invalid_token");
    assert_problem(&app.post("/api/auth/verify-email", json!({"token": "0".repeat(64)})).await, 400, "invalid_token");
    assert_problem(&app.post("/api/auth/verify-email", json!({"token": "x\u{0}"})).await, 400, "invalid_token");
    assert_problem(&app.post("/api/auth/verify-email", json!({})).await, 400, "invalid_body");

    // Verified already: 202 and nothing sent.
    let again = app.post_as("/api/auth/verify-email/request", Some(&access), json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    exactly(&sink, 1).await;
}

#[tokio::test]
async fn a_reset_works_once_revokes_every_session_and_says_nothing_about_unknown_addresses() {
    let (app, sink) = smtp_app().await;
    let first = app.signup("rita@example.com").await;
    let second = app.post("/api/auth/signin", json!({"email": "rita@example.com", "password": "correct horse"})).await.json();

    for email in ["nobody@example.com", "rita@example.com"] {
        let asked = app.post("/api/auth/password-reset/request", json!({"email": email})).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{email}");
        assert!(asked.body.is_empty());
    }
    // Text that is no address is refused as at sign-up (that says nothing of accounts).
    let malformed = app.post("/api/auth/password-reset/request", json!({"email": "not an address"})).await;
    assert_problem(&malformed, 400, "invalid_email");
    let mail = &exactly(&sink, 1).await[0];
    assert_eq!(mail.to, ["rita@example.com"], "no e-mail to an unknown address");
    assert!(mail.data.contains("Subject: Reset your password\r\n"));
    let token = token_in(mail);

    let short = app.post("/api/auth/password-reset", json!({"token": token, "new_password": "short"})).await;
    assert_problem(&short, 400, "invalid_password");
    let done = app.post("/api/auth/password-reset", json!({"token": token, "new_password": "brand new horse"})).await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{:?}", done.json());
    let twice = app.post("/api/auth/password-reset", json!({"token": token, "new_password": "another new horse"})).await;
    assert_problem(&twice, 400, "invalid_token");

    for session in [&first, &second] {
        let refreshed = app.post("/api/auth/refresh", json!({"refresh_token": s(session, "refresh_token")})).await;
        assert_problem(&refreshed, 401, "unauthorized");
    }
    let old = app.post("/api/auth/signin", json!({"email": "rita@example.com", "password": "correct horse"})).await;
    assert_problem(&old, 401, "invalid_credentials");
    let new = app.post("/api/auth/signin", json!({"email": "rita@example.com", "password": "brand new horse"})).await;
    assert_eq!(new.status, StatusCode::OK);
    assert_eq!(new.json()["user"]["email_verified"], true, "the reset link reached the address");
}

#[tokio::test]
async fn an_expired_reset_token_is_refused_and_requests_are_limited_per_address() {
    let (app, sink) = smtp_app().await;
    app.signup("exp@example.com").await;
    for _ in 0..5 {
        let asked = app.post("/api/auth/password-reset/request", json!({"email": "EXP@example.com "})).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED);
    }
    // Three an hour per address; the rest answered alike, and not sent.
    let mails = exactly(&sink, 3).await;
    let token = token_in(&mails[0]);
    let client = app.db.get().await.expect("pg");
    client.execute("UPDATE account_tokens SET expires_at = now() - interval '1 second'", &[]).await.expect("expire");
    let late = app.post("/api/auth/password-reset", json!({"token": token, "new_password": "brand new horse"})).await;
    assert_problem(&late, 400, "invalid_token");
    let used: i64 = client.query_one("SELECT count(*) FROM account_tokens WHERE used_at IS NOT NULL", &[]).await.expect("count").get(0);
    assert_eq!(used, 0, "an expired token is not spent");
    let stored: Vec<u8> = client.query_one("SELECT token_hash FROM account_tokens LIMIT 1", &[]).await.expect("row").get(0);
    assert_eq!(stored.len(), 32, "stored as a SHA-256 hash");
    assert!(!token.as_bytes().windows(8).any(|w| stored.windows(8).any(|x| x == w)));
}

#[tokio::test]
async fn change_password_needs_the_current_one_and_ends_the_other_sessions() {
    let (app, _sink) = smtp_app().await;
    let mine = app.signup("carl@example.com").await;
    let other = app.post("/api/auth/signin", json!({"email": "carl@example.com", "password": "correct horse"})).await.json();
    let access = s(&mine, "access_token");

    let anonymous = app.post("/api/auth/password", json!({"current_password": "correct horse", "new_password": "brand new horse"})).await;
    assert_problem(&anonymous, 401, "unauthorized");
    let wrong = app
        .post_as("/api/auth/password", Some(&access), json!({"current_password": "wrong horse", "new_password": "brand new horse"}))
        .await;
    assert_problem(&wrong, 401, "invalid_credentials");
    let short = app.post_as("/api/auth/password", Some(&access), json!({"current_password": "correct horse", "new_password": "short"})).await;
    assert_problem(&short, 400, "invalid_password");
    // Nothing changed so far: the other session still refreshes.
    let still = app.post("/api/auth/refresh", json!({"refresh_token": s(&other, "refresh_token")})).await;
    assert_eq!(still.status, StatusCode::OK);
    let other = still.json();

    let ok = app
        .post_as("/api/auth/password", Some(&access), json!({"current_password": "correct horse", "new_password": "brand new horse"}))
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{:?}", ok.json());
    let theirs = app.post("/api/auth/refresh", json!({"refresh_token": s(&other, "refresh_token")})).await;
    assert_problem(&theirs, 401, "unauthorized");
    let own = app.post("/api/auth/refresh", json!({"refresh_token": s(&mine, "refresh_token")})).await;
    assert_eq!(own.status, StatusCode::OK, "the caller's own session is kept");
    // The rotated session's access token names the same sign-in.
    let again = app
        .post_as("/api/auth/password", Some(&s(&own.json(), "access_token")), json!({"current_password": "brand new horse", "new_password": "third new horse"}))
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    let own = app.post("/api/auth/refresh", json!({"refresh_token": s(&own.json(), "refresh_token")})).await;
    assert_eq!(own.status, StatusCode::OK);
    let new = app.post("/api/auth/signin", json!({"email": "carl@example.com", "password": "third new horse"})).await;
    assert_eq!(new.status, StatusCode::OK);
}

#[tokio::test]
async fn a_relay_failing_for_a_while_still_gets_the_email() {
    let (app, sink) = smtp_app().await;
    let session = app.signup("flaky@example.com").await;
    sink.fail_next(2);
    let asked = app.post_as("/api/auth/verify-email/request", Some(&s(&session, "access_token")), json!({})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let mail = &exactly(&sink, 1).await[0];
    assert_eq!(mail.to, ["flaky@example.com"]);
}

#[tokio::test]
async fn without_smtp_the_account_emails_go_to_the_mail_directory() {
    let app = super::app().await;
    app.signup("dora@example.com").await;
    let asked = app.post("/api/auth/password-reset/request", json!({"email": "dora@example.com"})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let dir = std::path::PathBuf::from(app.config.env.string_or("STAMPEDE_MAIL_DIR", ".run/mail"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let found = loop {
        let names: Vec<_> = std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect()).unwrap_or_default();
        if let Some(p) = names.into_iter().find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("reset-"))) {
            break p;
        }
        assert!(std::time::Instant::now() < deadline, "no reset e-mail in {}", dir.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = std::fs::read_to_string(found).expect("read");
    assert!(text.contains("To: dora@example.com\r\n") && text.contains("/reset-password?token="));
}

#[tokio::test]
async fn account_routes_refuse_bad_bodies_and_methods() {
    let app = super::app().await;
    for path in ["/api/auth/verify-email", "/api/auth/password-reset", "/api/auth/password-reset/request"] {
        let a = super::send(app.addr, Method::POST, path, &[("content-type", "application/json")], Some(b"{not json".to_vec())).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(a.header("content-type"), Some("application/problem+json"));
        let big = super::send(app.addr, Method::POST, path, &[("content-type", "application/json")], Some(vec![b' '; 2 << 20])).await;
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
        let get = call(app.addr, Method::GET, path, None, None).await;
        assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let get = call(app.addr, Method::GET, "/api/auth/password", None, None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let nested = call(app.addr, Method::POST, "/api/auth/verify-email/other", None, Some(&json!({}))).await;
    assert_eq!(nested.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn of_concurrent_uses_of_one_reset_token_one_succeeds() {
    let (app, sink) = smtp_app().await;
    app.signup("twin@example.com").await;
    app.post("/api/auth/password-reset/request", json!({"email": "twin@example.com"})).await;
    let token = token_in(&sink.wait_for(1).await[0]);
    let tries = (0..8).map(|i| {
        let body = json!({"token": token, "new_password": format!("new horse number {i}")});
        let addr = app.addr;
        tokio::spawn(async move { call(addr, Method::POST, "/api/auth/password-reset", None, Some(&body)).await.status })
    });
    let mut statuses = Vec::new();
    for t in tries.collect::<Vec<_>>() {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
}
