//! Who may call search, and whose permissions its results obey.
//!
//! Two kinds of key: a *user key* (`SEARCH_USER_KEYS`, `user=key`) searches as its one user; a
//! *gateway key* (`SEARCH_API_KEYS`) may name the user it acts for with `as` (any user, or those
//! of `SEARCH_GATEWAY_USERS`), and without `as` searches as nobody signed in. A request without
//! a valid key is anonymous (where the server is open to that) and may not name anyone. A
//! server without keys answers only requests naming a loopback host, so a web page cannot reach
//! it through DNS rebinding.

use crate::settings::SearchSettings;
use docbrain_confluence::webhook::secrets_match;
use docbrain_core::{Caller, Secret};
use sha2::{Digest, Sha256};

use crate::ServerError;

/// The search gate: the keys (none: a local, keyless server) and whether results are
/// permission-filtered.
#[derive(Debug, Clone)]
pub struct SearchGate {
    gateway: Vec<Secret>,
    /// Users gateway keys may act for; empty: anyone.
    gateway_users: Vec<String>,
    users: Vec<(String, Secret)>,
    permissions: bool,
    /// `SEARCH_ALLOW_ANONYMOUS`: meant to be open to the network.
    open: bool,
}

impl Default for SearchGate {
    /// No keys, permission filtering on (for a server on loopback, and tests).
    fn default() -> Self {
        Self {
            gateway: Vec::new(),
            gateway_users: Vec::new(),
            users: Vec::new(),
            permissions: true,
            open: false,
        }
    }
}

/// Why a request is not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: a key is needed, or the one given is not valid.
    Unauthorized,
    /// 400: the request names its caller wrongly (a repeated `as`, `as` without a key).
    BadRequest(String),
    /// 403: the key (by id) may not act for the user named.
    Forbidden {
        /// Why, for the caller.
        why: String,
        /// The key's id, for the audit line.
        key_id: String,
    },
}

/// A request's caller, once its key is checked: whose permissions apply, and which key (by
/// id, never the key itself) asked, for the audit line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admitted {
    /// Whose permissions the answer obeys.
    pub caller: Caller,
    /// The key's id: `gateway:<fingerprint>`, `user:<name>`, or `none`.
    pub key_id: String,
}

impl SearchGate {
    /// The gate `settings` describe for a server bound to `bind`.
    ///
    /// # Errors
    /// [`ServerError::SearchExposed`] when `bind` is not a loopback address, no keys are set and
    /// `SEARCH_ALLOW_ANONYMOUS` is not: anyone who can reach the port could read the index.
    pub fn new(settings: &SearchSettings, bind: &str) -> Result<Self, ServerError> {
        let gate = Self {
            gateway: settings.api_keys.clone(),
            gateway_users: settings.gateway_users.clone(),
            users: settings.user_keys.clone(),
            permissions: settings.permissions,
            open: settings.allow_anonymous,
        };
        if !gate.requires_key() && !gate.open && !is_loopback(bind) {
            return Err(ServerError::SearchExposed {
                bind: bind.to_owned(),
            });
        }
        Ok(gate)
    }

    /// Whether keys are configured (a request without one is refused unless the server is
    /// open).
    pub fn requires_key(&self) -> bool {
        !self.gateway.is_empty() || !self.users.is_empty()
    }

    /// Whether search is meant to be open to the network without keys.
    pub fn open(&self) -> bool {
        self.open
    }

    /// Whether requests must name a loopback host: a server with no keys that is not open.
    pub fn checks_host(&self) -> bool {
        !self.requires_key() && !self.open
    }

    /// Whether results obey Confluence permissions.
    pub fn filters(&self) -> bool {
        self.permissions
    }

    /// Checks a request's `Authorization` header and its `as` values (every one given, so a
    /// repeated `as` is seen) and returns whose permissions its answer obeys.
    ///
    /// # Errors
    /// A refusal: no valid key where one is needed (401), `as` repeated or named without
    /// a key (400), a key that may not act for the user named (403).
    pub fn admit(
        &self,
        authorization: Option<&str>,
        as_values: &[String],
    ) -> Result<Admitted, Refusal> {
        let as_user = match as_values {
            [] => None,
            [one] => Some(one.trim()).filter(|u| !u.is_empty()),
            _ => {
                return Err(Refusal::BadRequest(
                    "`as` is given more than once: name one user".into(),
                ))
            }
        };
        let key = match authorization {
            None => None,
            Some(header) => Some(self.key(header).ok_or(Refusal::Unauthorized)?),
        };
        let (user, key_id) = match key {
            None if self.requires_key() && !self.open => return Err(Refusal::Unauthorized),
            None => match as_user {
                Some(_) => {
                    return Err(Refusal::BadRequest(
                        "`as` needs a key: only a gateway key (SEARCH_API_KEYS) may search as another user; without a key a search is anonymous".into(),
                    ))
                }
                None => (None, "none".to_owned()),
            },
            Some(Key::User(bound)) => match as_user {
                Some(other) if other != bound => {
                    return Err(Refusal::Forbidden {
                        why: "this key searches as its own user only: drop `as` or name that user"
                            .into(),
                        key_id: format!("user:{bound}"),
                    })
                }
                _ => (Some(bound.to_owned()), format!("user:{bound}")),
            },
            Some(Key::Gateway(fingerprint)) => {
                if let Some(user) = as_user {
                    if !self.gateway_users.is_empty() && !self.gateway_users.iter().any(|u| u == user) {
                        return Err(Refusal::Forbidden {
                            why: "this gateway key may not search as that user (SEARCH_GATEWAY_USERS)"
                                .into(),
                            key_id: format!("gateway:{fingerprint}"),
                        });
                    }
                }
                (as_user.map(str::to_owned), format!("gateway:{fingerprint}"))
            }
        };
        Ok(Admitted {
            caller: Caller::named(user.as_deref(), self.permissions),
            key_id,
        })
    }

    /// The key a `Bearer` header carries, if it is one of ours. Every key is compared, each in
    /// constant time.
    fn key(&self, header: &str) -> Option<Key<'_>> {
        let header = header.trim();
        let given = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))?
            .trim()
            .as_bytes();
        if given.is_empty() {
            return None;
        }
        let mut found = None;
        for key in &self.gateway {
            if secrets_match(key.expose().as_bytes(), given) {
                found = Some(Key::Gateway(fingerprint(key)));
            }
        }
        for (user, key) in &self.users {
            if secrets_match(key.expose().as_bytes(), given) {
                found = Some(Key::User(user));
            }
        }
        found
    }
}

/// A valid key's kind.
enum Key<'a> {
    /// A gateway key, by fingerprint.
    Gateway(String),
    /// A user key, by its user.
    User(&'a str),
}

/// A key's id for logs: the first 8 hex digits of its SHA-256 (the key cannot be recovered
/// from it).
fn fingerprint(key: &Secret) -> String {
    let digest = Sha256::digest(key.expose().as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `bind` only accepts connections from this machine.
fn is_loopback(bind: &str) -> bool {
    let host = bind.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a `Host` header value (`name[:port]`, `[v6][:port]`) names this machine.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        })
    };
    is_loopback(name)
}

/// Whether an `Origin` header value (`scheme://host[:port]`) is a page served from this
/// machine.
pub(crate) fn is_loopback_origin(origin: &str) -> bool {
    origin
        .trim()
        .split_once("://")
        .is_some_and(|(scheme, host)| {
            matches!(scheme, "http" | "https") && !host.contains('/') && is_loopback_host(host)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GATEWAY: &str = "gateway-key-0123456789abcdef0123456789";
    const ANN_KEY: &str = "ann-key-0123456789abcdef0123456789abcd";

    fn settings(gateway: &[&str], users: &[(&str, &str)], anonymous: bool) -> SearchSettings {
        SearchSettings {
            api_keys: gateway.iter().map(|k| Secret::new(*k)).collect(),
            user_keys: users
                .iter()
                .map(|(u, k)| ((*u).to_owned(), Secret::new(*k)))
                .collect(),
            allow_anonymous: anonymous,
            ..SearchSettings::default()
        }
    }

    fn as_(users: &[&str]) -> Vec<String> {
        users.iter().map(|u| (*u).to_owned()).collect()
    }

    fn bearer(key: &str) -> String {
        format!("Bearer {key}")
    }

    #[test]
    fn an_exposed_server_needs_keys_or_an_explicit_open_index() {
        let err = SearchGate::new(&settings(&[], &[], false), "0.0.0.0").unwrap_err();
        assert!(err.to_string().contains("SEARCH_API_KEYS"), "{err}");
        for bind in ["127.0.0.1", "::1", "[::1]", "localhost"] {
            assert!(
                SearchGate::new(&settings(&[], &[], false), bind).is_ok(),
                "{bind}"
            );
        }
        assert!(SearchGate::new(&settings(&[], &[], true), "0.0.0.0").is_ok());
        assert!(SearchGate::new(&settings(&[GATEWAY], &[], false), "0.0.0.0").is_ok());
        assert!(SearchGate::new(&settings(&[], &[("ann", ANN_KEY)], false), "0.0.0.0").is_ok());
    }

    #[test]
    fn keys_are_checked() {
        let gate =
            SearchGate::new(&settings(&[GATEWAY], &[("ann", ANN_KEY)], false), "0.0.0.0").unwrap();
        assert!(gate.admit(Some(&bearer(GATEWAY)), &[]).is_ok());
        assert!(gate.admit(Some(&bearer(ANN_KEY)), &[]).is_ok());
        for bad in ["Bearer other-key", "Basic x", "Bearer ", "Bearer"] {
            assert_eq!(
                gate.admit(Some(bad), &[]),
                Err(Refusal::Unauthorized),
                "{bad}"
            );
        }
        assert_eq!(gate.admit(None, &[]), Err(Refusal::Unauthorized));
    }

    #[test]
    fn a_user_key_searches_as_its_user_only() {
        let gate =
            SearchGate::new(&settings(&[GATEWAY], &[("ann", ANN_KEY)], false), "0.0.0.0").unwrap();
        let ann = gate.admit(Some(&bearer(ANN_KEY)), &[]).unwrap();
        assert_eq!(ann.caller, Caller::User("ann".into()));
        assert_eq!(ann.key_id, "user:ann");
        assert_eq!(
            gate.admit(Some(&bearer(ANN_KEY)), &as_(&["ann"]))
                .unwrap()
                .caller,
            Caller::User("ann".into())
        );
        assert!(matches!(
            gate.admit(Some(&bearer(ANN_KEY)), &as_(&["bob"])),
            Err(Refusal::Forbidden { .. })
        ));
    }

    #[test]
    fn a_gateway_key_acts_for_others_within_its_list() {
        let mut s = settings(&[GATEWAY], &[], false);
        let gate = SearchGate::new(&s, "0.0.0.0").unwrap();
        let bob = gate.admit(Some(&bearer(GATEWAY)), &as_(&["bob"])).unwrap();
        assert_eq!(bob.caller, Caller::User("bob".into()));
        assert!(bob.key_id.starts_with("gateway:") && !bob.key_id.contains(GATEWAY));
        assert_eq!(
            gate.admit(Some(&bearer(GATEWAY)), &[]).unwrap().caller,
            Caller::Anonymous
        );
        s.gateway_users = vec!["bob".into()];
        let limited = SearchGate::new(&s, "0.0.0.0").unwrap();
        assert!(limited
            .admit(Some(&bearer(GATEWAY)), &as_(&["bob"]))
            .is_ok());
        assert!(matches!(
            limited.admit(Some(&bearer(GATEWAY)), &as_(&["carol"])),
            Err(Refusal::Forbidden { .. })
        ));
    }

    #[test]
    fn a_repeated_as_is_refused() {
        let gate = SearchGate::new(&settings(&[GATEWAY], &[], false), "0.0.0.0").unwrap();
        assert!(matches!(
            gate.admit(Some(&bearer(GATEWAY)), &as_(&["carol", "bob"])),
            Err(Refusal::BadRequest(_))
        ));
    }

    #[test]
    fn without_a_key_a_request_is_anonymous_and_names_no_one() {
        // An open index with keys: no key is anonymous; `as` without a key is refused.
        let open = SearchGate::new(&settings(&[GATEWAY], &[], true), "0.0.0.0").unwrap();
        assert_eq!(open.admit(None, &[]).unwrap().caller, Caller::Anonymous);
        assert!(matches!(
            open.admit(None, &as_(&["bob"])),
            Err(Refusal::BadRequest(_))
        ));
        assert_eq!(
            open.admit(Some(&bearer(GATEWAY)), &as_(&["bob"]))
                .unwrap()
                .caller,
            Caller::User("bob".into())
        );
        // Open with no keys at all, and a keyless loopback server: the same.
        for gate in [
            SearchGate::new(&settings(&[], &[], true), "0.0.0.0").unwrap(),
            SearchGate::default(),
        ] {
            assert_eq!(gate.admit(None, &[]).unwrap().caller, Caller::Anonymous);
            assert!(matches!(
                gate.admit(None, &as_(&["bob"])),
                Err(Refusal::BadRequest(_))
            ));
        }
        assert!(SearchGate::default().checks_host());
        assert!(!open.checks_host());
    }

    #[test]
    fn permissions_off_serves_every_caller_unfiltered() {
        let off = SearchGate::new(
            &SearchSettings {
                permissions: false,
                ..SearchSettings::default()
            },
            "127.0.0.1",
        )
        .unwrap();
        assert!(!off.filters());
        assert_eq!(off.admit(None, &[]).unwrap().caller, Caller::Unfiltered);
    }

    #[test]
    fn loopback_hosts_and_origins() {
        for host in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:8080",
            "[::1]:3000",
            "[::1]",
            "127.0.0.2",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:3000",
            "localhost.attacker.example",
            "10.0.0.1:3000",
            "",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
        assert!(is_loopback_origin("http://localhost:3000"));
        assert!(is_loopback_origin("http://127.0.0.1"));
        for origin in [
            "null",
            "http://attacker.example",
            "file://",
            "http://localhost.evil:1",
        ] {
            assert!(!is_loopback_origin(origin), "{origin}");
        }
    }
}
