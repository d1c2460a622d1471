//! `/api/admin/*`: role changes (admin only) and the audit log they write,
//! newest first with a working cursor, in a table that refuses edits.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use stampede_common::testkit::client::{Answer, call};
use stampede_common::token::Role;

use super::{App, app, assert_problem};

impl App {
    async fn set_role(&self, token: &str, id: &str, body: Value) -> Answer {
        call(self.addr, Method::PUT, &format!("/api/admin/users/{id}/role"), Some(token), Some(&body)).await
    }
    async fn audit(&self, token: &str, cursor: Option<&str>) -> Answer {
        let path = match cursor {
            Some(c) => format!("/api/admin/audit?cursor={c}"),
            None => "/api/admin/audit".to_owned(),
        };
        call(self.addr, Method::GET, &path, Some(token), None).await
    }
    /// A signed-up user, and an access token for it with `role`.
    async fn user(&self, email: &str, role: Role) -> (String, String) {
        let body = self.signup(email).await;
        let id = body["user"]["id"].as_str().expect("id").to_owned();
        let token = self.tokens.issue(&id, role).expect("sign");
        (id, token)
    }
}

#[tokio::test]
async fn an_admin_changes_roles_and_nobody_else_can() {
    let app = app().await;
    let (admin_id, admin) = app.user("root@example.com", Role::Admin).await;
    let (ann, ann_token) = app.user("ann@example.com", Role::Customer).await;

    let ok = app.set_role(&admin, &ann, json!({"role": "organiser"})).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", String::from_utf8_lossy(&ok.body));
    assert_eq!(ok.json(), json!({"id": ann, "email": "ann@example.com", "role": "organiser", "email_verified": false}));
    // The next access token carries it: a refresh reads the role afresh.
    let signin = app.post("/api/auth/signin", json!({"email": "ann@example.com", "password": "correct horse"})).await;
    assert_eq!(signin.json()["user"]["role"], "organiser");
    assert_eq!(app.me(&ann_token).await.json()["role"], "organiser");

    // Not an admin: 403, whatever the role.
    for role in [Role::Customer, Role::Organiser, Role::Gate] {
        let token = app.tokens.issue(&ann, role).expect("sign");
        assert_problem(&app.set_role(&token, &admin_id, json!({"role": "customer"})).await, 403, "forbidden");
        assert_problem(&app.audit(&token, None).await, 403, "forbidden");
    }
    assert_problem(&app.set_role("", &ann, json!({"role": "gate"})).await, 401, "unauthorized");
    // Unknown user, bad role, bad bodies.
    assert_problem(&app.set_role(&admin, "999999", json!({"role": "gate"})).await, 404, "not_found");
    assert_problem(&app.set_role(&admin, "0042", json!({"role": "gate"})).await, 404, "not_found");
    assert_problem(&app.set_role(&admin, &ann, json!({"role": "superuser"})).await, 400, "invalid_role");
    assert_problem(&app.set_role(&admin, &ann, json!({"role": 3})).await, 400, "invalid_body");
    let wrong_method = call(app.addr, Method::POST, &format!("/api/admin/users/{ann}/role"), Some(&admin), None).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);

    // Every role is accepted, and the user's row says so.
    for role in ["gate", "admin", "customer"] {
        let a = app.set_role(&admin, &ann, json!({ "role": role })).await;
        assert_eq!(a.json()["role"], role);
    }
    let client = app.db.get().await.expect("pg");
    let role: String = client.query_one("SELECT role FROM users WHERE id = $1", &[&ann.parse::<i64>().expect("id")]).await.expect("row").get(0);
    assert_eq!(role, "customer");
}

#[tokio::test]
async fn every_role_change_is_audited_newest_first_with_a_cursor() {
    let app = app().await;
    let (admin_id, admin) = app.user("root@example.com", Role::Admin).await;
    let (bo, _) = app.user("bo@example.com", Role::Customer).await;
    let empty = app.audit(&admin, None).await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.json(), json!({"entries": [], "next_cursor": null}));

    // 55 changes: more than one page of 50. A refused change writes nothing.
    let roles = ["organiser", "gate", "admin", "customer", "organiser"];
    for i in 0..55 {
        let a = app.set_role(&admin, &bo, json!({ "role": roles[i % roles.len()] })).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    app.set_role(&admin, &bo, json!({"role": "nope"})).await;
    app.set_role(&admin, "999999", json!({"role": "gate"})).await;

    let first = app.audit(&admin, None).await;
    assert_eq!(first.status, StatusCode::OK);
    let first = first.json();
    let entries = first["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 50);
    let newest = &entries[0];
    assert_eq!(newest["actor_id"], admin_id.as_str());
    assert_eq!(newest["action"], "user.role");
    assert_eq!(newest["target"], format!("user:{bo}"));
    // The 55th change (i = 54) made bo an organiser, from customer.
    assert_eq!(newest["details"], json!({"before": {"role": "customer"}, "after": {"role": "organiser"}}));
    assert!(stampede_common::clock::parse_rfc3339_ms(newest["at"].as_str().expect("at")).is_some());
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_str().expect("id").parse().expect("number")).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app.audit(&admin, Some(cursor)).await.json();
    let rest = second["entries"].as_array().expect("entries");
    assert_eq!(rest.len(), 5);
    assert!(second["next_cursor"].is_null());
    let last: i64 = rest[0]["id"].as_str().expect("id").parse().expect("number");
    assert!(last < *ids.last().expect("ids"), "the next page continues where the first ended");
    // The oldest: customer → organiser.
    assert_eq!(rest[4]["details"], json!({"before": {"role": "customer"}, "after": {"role": "organiser"}}));

    assert_problem(&app.audit(&admin, Some("junk")).await, 400, "invalid_cursor");
    assert_problem(&app.audit(&admin, Some("-5")).await, 400, "invalid_cursor");
}

#[tokio::test]
async fn the_audit_log_refuses_update_delete_and_truncate() {
    let app = app().await;
    let (_, admin) = app.user("root@example.com", Role::Admin).await;
    let (bo, _) = app.user("bo@example.com", Role::Customer).await;
    assert_eq!(app.set_role(&admin, &bo, json!({"role": "gate"})).await.status, StatusCode::OK);
    let client = app.db.get().await.expect("pg");
    for sql in [
        "UPDATE audit_log SET action = 'nothing happened'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = client.batch_execute(sql).await.expect_err(sql);
        assert!(format!("{err:?}").contains("append-only"), "{sql}: {err:?}");
    }
    let n: i64 = client.query_one("SELECT count(*) FROM audit_log WHERE action = 'user.role'", &[]).await.expect("count").get(0);
    assert_eq!(n, 1, "the entry is still there, unchanged");
    // The command line's change is audited too, with no actor.
    stampede_auth::set_role(&app.db, "bo@example.com", Role::Organiser).await.expect("set-role");
    let newest = app.audit(&admin, None).await.json()["entries"][0].clone();
    assert_eq!(newest["actor_id"], Value::Null);
    assert_eq!(newest["details"]["after"], json!({"role": "organiser"}));
}
