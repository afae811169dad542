//! The simulator's users, groups, space permissions and page restrictions, their REST shapes
//! (Cloud: v2 space permissions, v1 restrictions and `memberof` by account id; Data Center:
//! 9.1's space permissions, v1 restrictions, users and `memberof` by username) and the rule
//! evaluated directly, for tests to compare search results with.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::routes::{error, respond, window, Answer};
use super::{PageId, SimPage, Simulator, State};
use crate::webhook;

/// Who a permission or restriction lets through. Users and groups by name (the simulator
/// derives account ids, user keys and group ids from names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Anonymous access (space permissions only).
    pub anonymous: bool,
    /// User names.
    pub users: BTreeSet<String>,
    /// Group names.
    pub groups: BTreeSet<String>,
}

impl Grants {
    /// Open to anyone, signed in or not.
    pub fn anyone() -> Self {
        Self {
            anonymous: true,
            ..Self::default()
        }
    }

    /// These users and groups.
    pub fn only(users: &[&str], groups: &[&str]) -> Self {
        Self {
            anonymous: false,
            users: users.iter().map(|u| (*u).to_owned()).collect(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    /// Whether `user` (none: anonymous) passes; an anonymous grant counts only where the site
    /// lets anonymous users in.
    fn admit(&self, user: Option<&SimUser>, anonymous_access: bool) -> bool {
        (self.anonymous && anonymous_access)
            || user.is_some_and(|u| {
                self.users.contains(&u.name) || u.groups.iter().any(|g| self.groups.contains(g))
            })
    }
}

/// A user of the simulated site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimUser {
    /// The username (Data Center's login name).
    pub name: String,
    /// Group names.
    pub groups: BTreeSet<String>,
}

impl SimUser {
    /// The Cloud account id.
    pub fn account_id(name: &str) -> String {
        format!("5570:{name}")
    }

    /// The Data Center user key.
    pub fn user_key(name: &str) -> String {
        format!("key-{name}")
    }

    /// The Cloud group id.
    pub fn group_id(group: &str) -> String {
        format!("gid-{group}")
    }
}

impl Simulator {
    /// Adds a user (or replaces their groups).
    pub fn add_user(&self, name: &str, groups: &[&str]) {
        self.state().users.insert(
            name.to_owned(),
            SimUser {
                name: name.to_owned(),
                groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            },
        );
    }

    /// Sets who holds a space's view permission (the space is created if missing).
    pub fn set_space_readers(&self, space: &str, readers: Grants) {
        self.add_space(space, space);
        if let Some(sp) = self.state().spaces.get_mut(space) {
            sp.readers = readers;
        }
    }

    /// Sets or lifts a page's read restriction (Confluence keeps the version). A restriction
    /// naming no one is no restriction, as in Confluence.
    pub fn restrict_page(&self, id: &PageId, restriction: Option<Grants>) -> bool {
        let restriction = restriction.filter(|r| !r.users.is_empty() || !r.groups.is_empty());
        self.with_page(id, |p| p.restriction = restriction)
            .is_some()
    }

    /// Moves a page under another parent (or to the top of its space).
    pub fn set_parent(&self, id: &PageId, parent: Option<&PageId>) -> bool {
        let parent = parent.and_then(|p| p.as_str().parse().ok());
        self.with_page(id, |p| p.parent = parent).is_some()
    }

    /// Whether `user` (a name; `None` for anonymous) may read page `id` under Confluence's
    /// rule, evaluated here directly: the space's view permission, and the restriction of the
    /// page and of every ancestor.
    pub fn may_read(&self, user: Option<&str>, id: &PageId) -> bool {
        let s = self.state();
        let Some(page) = id.as_str().parse().ok().and_then(|k: u64| s.pages.get(&k)) else {
            return false;
        };
        let user = user.and_then(|u| s.users.get(u));
        let space = s.spaces.get(&page.space_key);
        let mut at = Some(page);
        let mut hops = 0;
        let mut allowed = space.is_some_and(|sp| sp.readers.admit(user, s.anonymous_access));
        while let (Some(p), true) = (at, allowed) {
            allowed = p.restriction.as_ref().is_none_or(|r| r.admit(user, false));
            at = p.parent.and_then(|a| s.pages.get(&a));
            hops += 1;
            if hops > 1_000 {
                break;
            }
        }
        allowed
    }

    /// The body of Data Center's `content_permissions_updated` for page `id`.
    pub fn permissions_webhook_body(&self, id: &PageId) -> String {
        json!({"timestamp": docbrain_core::now_ms(), "event": "content_permissions_updated",
               "userKey": SimUser::user_key("admin"), "content": {"id": id.as_str().parse::<u64>().unwrap_or(0)}})
        .to_string()
    }

    /// The body of Data Center's `space_permissions_updated` for `space`.
    pub fn space_permissions_webhook_body(&self, space: &str) -> String {
        json!({"timestamp": docbrain_core::now_ms(), "event": "space_permissions_updated",
               "userKey": SimUser::user_key("admin"), "space": {"key": space}})
        .to_string()
    }

    /// POSTs `body` to `url`, signed with `secret`; returns the answer's status.
    ///
    /// # Errors
    /// When the receiver cannot be reached.
    pub async fn post_signed(
        &self,
        url: &str,
        secret: &str,
        body: String,
    ) -> Result<u16, reqwest::Error> {
        let signature = webhook::sign(secret.as_bytes(), body.as_bytes());
        Ok(self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature", signature)
            .body(body)
            .send()
            .await?
            .status()
            .as_u16())
    }
}

/// `GET /wiki/api/v2/spaces/{id}/permissions`: one assignment per principal and operation,
/// cursor-paged (read/space is what matters; create/page is there to be skipped).
pub(super) fn v2_space_permissions(
    s: &State,
    id: &str,
    query: &dyn Fn(&str) -> Option<String>,
) -> Answer {
    let Some((_, sp)) = s.spaces.iter().find(|(_, sp)| sp.id.to_string() == id) else {
        return error(404, true, "Not Found");
    };
    let mut all: Vec<Value> = Vec::new();
    let mut push = |kind: &str, principal: Option<String>, op: &str, target: &str| {
        let mut p = json!({"type": kind});
        if let Some(id) = principal {
            p["id"] = json!(id);
        }
        all.push(json!({"id": (all.len() + 1).to_string(), "principal": p,
                        "operation": {"key": op, "targetType": target}}));
    };
    // Cloud documents user, group and role principals; anonymous access is not among them
    // (it is read from v1's space `anonymousAccess`). A role grant is there to be skipped.
    push("role", Some("role-viewer".into()), "read", "space");
    for u in &sp.readers.users {
        push("user", Some(SimUser::account_id(u)), "read", "space");
        push("user", Some(SimUser::account_id(u)), "create", "page");
    }
    for g in &sp.readers.groups {
        push("group", Some(SimUser::group_id(g)), "read", "space");
    }
    push(
        "group",
        Some(SimUser::group_id("space-editors")),
        "create",
        "page",
    );
    let offset = query("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit = query("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .clamp(1, 3);
    let (slice, next) = window(&all, offset, limit);
    let mut links = json!({"base": "/wiki"});
    if let Some(n) = next {
        links["next"] = json!(format!(
            "/wiki/api/v2/spaces/{id}/permissions?limit={limit}&cursor={n}"
        ));
    }
    respond(200, &json!({"results": slice, "_links": links}))
}

/// `GET /rest/api/space/{key}/permissions` (Data Center 9.1+): a JSON array of assignments.
pub(super) fn v1_space_permissions(s: &State, key: &str) -> Answer {
    let Some(sp) = s.spaces.get(key) else {
        return error(404, false, &format!("No space with key : {key}"));
    };
    let read = json!({"targetType": "space", "operationKey": "read"});
    let mut all = Vec::new();
    for u in &sp.readers.users {
        all.push(json!({"operation": read, "subject": {"type": "user", "userKey": SimUser::user_key(u)}, "spaceKey": key, "spaceId": sp.id}));
    }
    for g in &sp.readers.groups {
        all.push(json!({"operation": read, "subject": {"type": "group", "name": g}, "spaceKey": key, "spaceId": sp.id}));
        all.push(json!({"operation": {"targetType": "page", "operationKey": "create"}, "subject": {"type": "group", "name": g}, "spaceKey": key, "spaceId": sp.id}));
    }
    respond(200, &json!(all))
}

/// `GET /rest/api/space/{key}/permissions/anonymous` (Data Center 9.1+): what anonymous users
/// may do in the space, as a JSON array of operations.
pub(super) fn v1_anonymous_permissions(s: &State, key: &str) -> Answer {
    let Some(sp) = s.spaces.get(key) else {
        return error(404, false, &format!("No space with key : {key}"));
    };
    let all: Vec<Value> = if sp.readers.anonymous {
        vec![
            json!({"operation": {"targetType": "space", "operationKey": "read"}, "spaceKey": key, "spaceId": sp.id}),
        ]
    } else {
        Vec::new()
    };
    respond(200, &json!(all))
}

/// `GET /wiki/rest/api/space/{key}?expand=permissions` (Cloud v1): the space, with its
/// permissions when asked for; anonymous access is an entry with `anonymousAccess: true`.
pub(super) fn v1_cloud_space(s: &State, key: &str, expand: &str) -> Answer {
    let Some(sp) = s.spaces.get(key) else {
        return error(404, true, &format!("No space with key : {key}"));
    };
    let mut v = json!({"id": sp.id, "key": key, "name": sp.name, "type": "global", "status": "current",
                       "_links": {"webui": format!("/spaces/{key}"), "self": format!("/wiki/rest/api/space/{key}")}});
    if expand.split(',').any(|e| e == "permissions") {
        let read = json!({"operation": "read", "targetType": "space"});
        let mut all = Vec::new();
        let users: Vec<Value> = sp.readers.users.iter()
            .map(|u| json!({"type": "known", "accountId": SimUser::account_id(u), "accountType": "atlassian", "displayName": u}))
            .collect();
        let groups: Vec<Value> = sp
            .readers
            .groups
            .iter()
            .map(|g| json!({"type": "group", "name": g, "id": SimUser::group_id(g)}))
            .collect();
        if !users.is_empty() || !groups.is_empty() {
            all.push(json!({"id": 1, "operation": read, "anonymousAccess": false, "unlicensedAccess": false,
                            "subjects": {"user": {"results": users, "size": users.len()},
                                         "group": {"results": groups, "size": groups.len()}}}));
        }
        if sp.readers.anonymous {
            all.push(json!({"id": 2, "operation": read, "anonymousAccess": true, "unlicensedAccess": false}));
        }
        all.push(json!({"id": 3, "operation": {"operation": "create", "targetType": "page"}, "anonymousAccess": true, "unlicensedAccess": false}));
        v["permissions"] = json!(all);
    }
    respond(200, &v)
}

/// `GET …/rest/api/content/{id}/restriction/byOperation/read`.
pub(super) fn restrictions(s: &State, id: &str, cloud: bool) -> Answer {
    if let Some(body) = &s.restriction_answer {
        return respond(200, body);
    }
    let Some(p): Option<&SimPage> = super::routes::visible_content(s, id) else {
        return error(404, cloud, "Not Found");
    };
    respond(
        200,
        &json!({
            "operation": "read",
            "restrictions": restriction_lists(p, cloud),
            "_links": {"self": format!("/rest/api/content/{id}/restriction/byOperation/read")}
        }),
    )
}

/// A page's read restriction as Confluence lists it (`{"user": {...}, "group": {...}}`), by
/// the restriction endpoint and by content listings' `restrictions.read.restrictions`.
pub(super) fn restriction_lists(p: &SimPage, cloud: bool) -> Value {
    let grants = p.restriction.clone().unwrap_or_default();
    let users: Vec<Value> = grants
        .users
        .iter()
        .map(|u| {
            if cloud {
                json!({"type": "known", "accountId": SimUser::account_id(u), "accountType": "atlassian", "displayName": u})
            } else {
                json!({"type": "known", "username": u, "userKey": SimUser::user_key(u), "displayName": u})
            }
        })
        .collect();
    let groups: Vec<Value> = grants
        .groups
        .iter()
        .map(|g| {
            if cloud {
                json!({"type": "group", "name": g, "id": SimUser::group_id(g)})
            } else {
                json!({"type": "group", "name": g})
            }
        })
        .collect();
    json!({
        "user": {"results": users, "start": 0, "limit": 200, "size": users.len()},
        "group": {"results": groups, "start": 0, "limit": 200, "size": groups.len()}
    })
}

/// `GET …/rest/api/user/memberof?accountId=` (Cloud) or `?username=` (Data Center).
pub(super) fn member_of(s: &State, query: &dyn Fn(&str) -> Option<String>, cloud: bool) -> Answer {
    let user = if cloud {
        query("accountId")
            .and_then(|a| s.users.values().find(|u| SimUser::account_id(&u.name) == a))
    } else {
        query("username").and_then(|n| s.users.get(&n))
    };
    let Some(user) = user else {
        return error(404, cloud, "No user found");
    };
    let groups: Vec<Value> = user
        .groups
        .iter()
        .map(|g| json!({"type": "group", "name": g, "id": SimUser::group_id(g)}))
        .collect();
    let start = query("start").and_then(|x| x.parse().ok()).unwrap_or(0);
    let limit = query("limit")
        .and_then(|x| x.parse().ok())
        .unwrap_or(200)
        .clamp(1, 2);
    let (slice, _) = window(&groups, start, limit);
    respond(
        200,
        &json!({"results": slice, "start": start, "limit": limit, "size": slice.len(), "_links": {}}),
    )
}

/// `GET /rest/api/user?username=` (Data Center).
pub(super) fn v1_user(s: &State, query: &dyn Fn(&str) -> Option<String>) -> Answer {
    match query("username").and_then(|n| s.users.get(&n)) {
        Some(u) => respond(
            200,
            &json!({"type": "known", "username": u.name, "userKey": SimUser::user_key(&u.name), "displayName": u.name}),
        ),
        None => error(404, false, "No user found"),
    }
}
