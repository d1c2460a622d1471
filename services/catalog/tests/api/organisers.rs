//! Organiser-owned events: an organiser creates events and manages only its
//! own (another's answers 404); admins manage all; customers and gates get
//! 403. Every create, change and publish is one audit entry, committed with
//! the change, readable per event by its organiser and by admins.

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use stampede_common::testkit::client::{Answer, call, send};
use stampede_common::token::Role;

use super::{App, app, assert_problem, event_body, id_of};

impl App {
    fn token(&self, user: &str, role: Role) -> String {
        self.tokens.issue(user, role).expect("sign")
    }
    async fn create_as(&self, token: &str, body: &Value) -> Answer {
        call(self.addr, Method::POST, "/api/events", Some(token), Some(body)).await
    }
    async fn patch_as(&self, token: &str, id: &str, version: &str, body: &Value) -> Answer {
        let auth = format!("Bearer {token}");
        let headers = [("content-type", "application/json"), ("authorization", auth.as_str()), ("if-match", version)];
        send(self.addr, Method::PATCH, &format!("/api/events/{id}"), &headers, Some(serde_json::to_vec(body).expect("json"))).await
    }
    async fn publish_as(&self, token: &str, id: &str) -> Answer {
        call(self.addr, Method::POST, &format!("/api/events/{id}/publish"), Some(token), None).await
    }
    async fn audit_as(&self, token: &str, id: &str, cursor: Option<&str>) -> Answer {
        let path = match cursor {
            Some(c) => format!("/api/events/{id}/audit?cursor={c}"),
            None => format!("/api/events/{id}/audit"),
        };
        call(self.addr, Method::GET, &path, Some(token), None).await
    }
}

#[tokio::test]
async fn an_organiser_manages_its_own_events_and_not_anothers() {
    let app = app().await;
    let olga = app.token("101", Role::Organiser);
    let otto = app.token("102", Role::Organiser);

    let created = app.create_as(&olga, &event_body()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
    let id = id_of(&created.json());
    let owner: Option<i64> = app
        .db
        .get()
        .await
        .expect("pg")
        .query_one("SELECT owner_id FROM events WHERE id = $1", &[&id.parse::<i64>().expect("id")])
        .await
        .expect("row")
        .get(0);
    assert_eq!(owner, Some(101), "the event is its creator's");

    // Its own draft: read, change, audit trail.
    let draft = app.get(&format!("/api/events/{id}"), Some(&olga)).await;
    assert_eq!(draft.status, StatusCode::OK);
    assert_eq!(draft.json()["status"], "draft");
    assert_eq!(app.patch_as(&olga, &id, "1", &json!({"name": "Olga's night"})).await.status, StatusCode::OK);

    // Another organiser: the draft does not exist for it, whatever it tries.
    assert_problem(&app.get(&format!("/api/events/{id}"), Some(&otto)).await, 404, "not_found");
    assert_problem(&app.patch_as(&otto, &id, "2", &json!({"name": "Stolen"})).await, 404, "not_found");
    assert_problem(&app.publish_as(&otto, &id).await, 404, "not_found");
    assert_problem(&app.audit_as(&otto, &id, None).await, 404, "not_found");
    // An unknown event answers the same.
    assert_problem(&app.patch_as(&otto, "999999", "1", &json!({"name": "x"})).await, 404, "not_found");

    // Customers and gates: 403 on every organiser route.
    for token in [app.customer.clone(), app.token("103", Role::Gate)] {
        assert_problem(&app.create_as(&token, &event_body()).await, 403, "forbidden");
        assert_problem(&app.patch_as(&token, &id, "2", &json!({"name": "x"})).await, 403, "forbidden");
        assert_problem(&app.publish_as(&token, &id).await, 403, "forbidden");
        assert_problem(&app.audit_as(&token, &id, None).await, 403, "forbidden");
        // The draft is simply not there for them.
        assert_problem(&app.get(&format!("/api/events/{id}"), Some(&token)).await, 404, "not_found");
    }

    // Nothing changed it but its organiser.
    let published = app.publish_as(&olga, &id).await;
    assert_eq!(published.status, StatusCode::OK, "{}", String::from_utf8_lossy(&published.body));
    assert_eq!((published.json()["name"].as_str(), published.json()["version"].as_i64()), (Some("Olga's night"), Some(3)));
    // Published, anyone reads it; still only its organiser changes it.
    assert_eq!(app.get(&format!("/api/events/{id}"), Some(&otto)).await.status, StatusCode::OK);
    assert_problem(&app.patch_as(&otto, &id, "3", &json!({"name": "Stolen"})).await, 404, "not_found");

    // Admins manage every event, the organiser's and those with no owner.
    assert_eq!(app.patch_as(&app.admin, &id, "3", &json!({"venue": "Hall"})).await.status, StatusCode::OK);
    let unowned = app.create_ok(&event_body()).await;
    let unowned_id = id_of(&unowned);
    app.db
        .get()
        .await
        .expect("pg")
        .execute("UPDATE events SET owner_id = NULL WHERE id = $1", &[&unowned_id.parse::<i64>().expect("id")])
        .await
        .expect("as an event made before owners were recorded");
    assert_problem(&app.patch_as(&olga, &unowned_id, "1", &json!({"name": "x"})).await, 404, "not_found");
    assert_eq!(app.patch_as(&app.admin, &unowned_id, "1", &json!({"name": "Old"})).await.status, StatusCode::OK);
    assert_eq!(app.audit_as(&app.admin, &unowned_id, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn create_change_and_publish_are_each_one_audit_entry() {
    let app = app().await;
    let olga = app.token("101", Role::Organiser);
    let id = id_of(&app.create_as(&olga, &event_body()).await.json());
    assert_eq!(app.patch_as(&olga, &id, "1", &json!({"name": "Renamed"})).await.status, StatusCode::OK);
    // Refused writes write nothing.
    assert_eq!(app.patch_as(&olga, &id, "1", &json!({"name": "Stale"})).await.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.patch_as(&olga, &id, "2", &json!({"hold_seconds": 100_000})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.publish_as(&olga, &id).await.status, StatusCode::OK);
    assert_eq!(app.publish_as(&olga, &id).await.status, StatusCode::CONFLICT);
    assert_eq!(app.patch_as(&app.admin, &id, "3", &json!({"venue": "Hall"})).await.status, StatusCode::OK);

    let a = app.audit_as(&olga, &id, None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", String::from_utf8_lossy(&a.body));
    let page = a.json();
    assert!(page["next_cursor"].is_null());
    let entries = page["entries"].as_array().expect("entries");
    let actions: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().expect("action"), e["actor_id"].as_str().expect("actor")))
        .collect();
    assert_eq!(
        actions,
        [("event.update", "1"), ("event.publish", "101"), ("event.update", "101"), ("event.create", "101")],
        "newest first"
    );
    for e in entries {
        assert_eq!(e["target"], format!("event:{id}"));
        assert!(e["id"].is_string() && e["at"].is_string());
    }
    let [by_admin, publish, rename, create] = &entries[..] else { panic!("four entries") };
    assert_eq!((by_admin["details"]["before"]["venue"].as_str(), by_admin["details"]["after"]["venue"].as_str()), (Some("Arena"), Some("Hall")));
    assert_eq!(publish["details"], json!({"before": {"status": "draft", "version": 2}, "after": {"status": "published", "version": 3}}));
    assert_eq!(rename["details"]["before"]["name"], "Midnight Run");
    assert_eq!(rename["details"]["after"]["name"], "Renamed");
    assert_eq!(rename["details"]["after"]["version"], 2);
    assert!(create["details"].get("before").is_none());
    assert_eq!(create["details"]["after"]["name"], "Midnight Run");
    assert_eq!(create["details"]["after"]["sections"].as_array().map(Vec::len), Some(2));

    // Another event's entries are not in this trail; an admin reads it too.
    app.create_as(&olga, &event_body()).await;
    assert_eq!(app.audit_as(&app.admin, &id, None).await.json()["entries"].as_array().map(Vec::len), Some(4));
    assert_problem(&app.audit_as(&olga, &id, Some("xyz")).await, 400, "invalid_cursor");
}

#[tokio::test]
async fn an_events_trail_pages_newest_first_with_a_cursor() {
    let app = app().await;
    let olga = app.token("101", Role::Organiser);
    let id = id_of(&app.create_as(&olga, &event_body()).await.json());
    for v in 1..=54 {
        let a = app.patch_as(&olga, &id, &v.to_string(), &json!({ "name": format!("Take {v}") })).await;
        assert_eq!(a.status, StatusCode::OK);
    }
    let first = app.audit_as(&olga, &id, None).await.json();
    let entries = first["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 50);
    assert_eq!(entries[0]["details"]["after"]["name"], "Take 54");
    assert_eq!(entries[49]["details"]["after"]["name"], "Take 5");
    let cursor = first["next_cursor"].as_str().expect("more");
    let second = app.audit_as(&olga, &id, Some(cursor)).await.json();
    let rest: Vec<&str> = second["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().expect("action"))
        .collect();
    assert_eq!(rest, ["event.update", "event.update", "event.update", "event.update", "event.create"]);
    assert_eq!(second["entries"][0]["details"]["after"]["name"], "Take 4");
    assert!(second["next_cursor"].is_null());
}

#[tokio::test]
async fn managed_lists_an_organisers_own_events_drafts_too_and_an_admin_every_one() {
    let app = app().await;
    // Users of this test alone: the test database is shared.
    let base = 1_000_000 + i64::from(std::process::id() % 100_000) * 10;
    let (olga, otto) = (app.token(&base.to_string(), Role::Organiser), app.token(&(base + 1).to_string(), Role::Organiser));
    let mut mine = Vec::new();
    for _ in 0..3 {
        let created = app.create_as(&olga, &event_body()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", String::from_utf8_lossy(&created.body));
        mine.push(id_of(&created.json()));
    }
    assert_eq!(app.publish_as(&olga, &mine[0]).await.status, StatusCode::OK);
    let others = id_of(&app.create_as(&otto, &event_body()).await.json());

    // Its own, newest first, the published one and the drafts, paged by the cursor.
    let first = app.get("/api/events?managed=true&limit=2", Some(&olga)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", String::from_utf8_lossy(&first.body));
    assert_eq!(first.headers.get("cache-control").and_then(|v| v.to_str().ok()), Some("private, no-store"));
    let ids = |a: &Answer| -> Vec<String> {
        a.json()["events"].as_array().expect("events").iter().map(|e| e["id"].as_str().expect("id").to_owned()).collect()
    };
    assert_eq!(ids(&first), vec![mine[2].clone(), mine[1].clone()]);
    assert_eq!(first.json()["events"][0]["status"], "draft");
    let cursor = first.json()["next_cursor"].as_str().expect("a next page").to_owned();
    let second = app.get(&format!("/api/events?managed=true&limit=2&cursor={cursor}"), Some(&olga)).await;
    assert_eq!(ids(&second), vec![mine[0].clone()]);
    assert_eq!(second.json()["events"][0]["status"], "published");
    assert!(second.json()["next_cursor"].is_null());

    // Another organiser sees only its own; an admin sees both organisers'.
    assert_eq!(ids(&app.get("/api/events?managed=true", Some(&otto)).await), vec![others.clone()]);
    let all = ids(&app.get("/api/events?managed=true&limit=200", Some(&app.admin)).await);
    for id in mine.iter().chain([&others]) {
        assert!(all.contains(id), "the admin's list has {id}");
    }
    // The public list is untouched: no drafts there.
    let public = ids(&app.get("/api/events?limit=200", None).await);
    assert!(public.contains(&mine[0]) && !public.contains(&mine[1]) && !public.contains(&others));

    // Who may ask, and what is a bad question.
    assert_problem(&app.get("/api/events?managed=true", None).await, 401, "unauthorized");
    for token in [app.customer.clone(), app.token(&(base + 2).to_string(), Role::Gate)] {
        assert_problem(&app.get("/api/events?managed=true", Some(&token)).await, 403, "forbidden");
    }
    assert_problem(&app.get("/api/events?managed=yes", Some(&olga)).await, 400, "invalid_query");
    assert_problem(&app.get("/api/events?managed=true&cursor=zz", Some(&olga)).await, 400, "invalid_cursor");
}
