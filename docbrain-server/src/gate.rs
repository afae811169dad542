//! Who may call search, and whose permissions its results obey.

use docbrain_confluence::webhook::secrets_match;
use docbrain_core::settings::SearchSettings;
use docbrain_core::{Caller, Secret};

use crate::ServerError;

/// The search gate: the bearer keys (none: open) and whether results are permission-filtered.
#[derive(Debug, Clone)]
pub struct SearchGate {
    keys: Vec<Secret>,
    permissions: bool,
    /// `SEARCH_ALLOW_ANONYMOUS`: meant to be open to the network.
    open: bool,
}

impl Default for SearchGate {
    /// No keys, permission filtering on (for a server on loopback, and tests).
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            permissions: true,
            open: false,
        }
    }
}

impl SearchGate {
    /// The gate `settings` describe for a server bound to `bind`.
    ///
    /// # Errors
    /// [`ServerError::SearchExposed`] when `bind` is not a loopback address, no keys are set and
    /// `SEARCH_ALLOW_ANONYMOUS` is not: anyone who can reach the port could read the index.
    pub fn new(settings: &SearchSettings, bind: &str) -> Result<Self, ServerError> {
        if settings.api_keys.is_empty() && !settings.allow_anonymous && !is_loopback(bind) {
            return Err(ServerError::SearchExposed {
                bind: bind.to_owned(),
            });
        }
        Ok(Self {
            keys: settings.api_keys.clone(),
            permissions: settings.permissions,
            open: settings.allow_anonymous,
        })
    }

    /// Whether keys are required.
    pub fn requires_key(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether search is meant to be open to the network without keys.
    pub fn open(&self) -> bool {
        self.open
    }

    /// Whether results obey Confluence permissions.
    pub fn filters(&self) -> bool {
        self.permissions
    }

    /// Whether an `Authorization` header value carries a valid key (always, with no keys).
    /// Every key is compared, each in constant time.
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        if self.keys.is_empty() {
            return true;
        }
        let Some(given) = authorization.and_then(|h| {
            h.trim()
                .strip_prefix("Bearer ")
                .or_else(|| h.trim().strip_prefix("bearer "))
        }) else {
            return false;
        };
        self.keys.iter().fold(false, |ok, key| {
            secrets_match(key.expose().as_bytes(), given.trim().as_bytes()) | ok
        })
    }

    /// Whose permissions a search by `as_user` obeys.
    pub fn caller(&self, as_user: Option<&str>) -> Caller {
        Caller::named(as_user, self.permissions)
    }
}

/// Whether `bind` only accepts connections from this machine.
fn is_loopback(bind: &str) -> bool {
    let host = bind.trim().trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(keys: &[&str], anonymous: bool) -> SearchSettings {
        SearchSettings {
            api_keys: keys.iter().map(|k| Secret::new(*k)).collect(),
            allow_anonymous: anonymous,
            ..SearchSettings::default()
        }
    }

    #[test]
    fn an_exposed_server_needs_keys_or_an_explicit_open_index() {
        let err = SearchGate::new(&settings(&[], false), "0.0.0.0").unwrap_err();
        assert!(err.to_string().contains("SEARCH_API_KEYS"), "{err}");
        for bind in ["127.0.0.1", "::1", "[::1]", "localhost"] {
            assert!(
                SearchGate::new(&settings(&[], false), bind).is_ok(),
                "{bind}"
            );
        }
        assert!(SearchGate::new(&settings(&[], true), "0.0.0.0").is_ok());
        assert!(SearchGate::new(&settings(&["k1"], false), "0.0.0.0").is_ok());
    }

    #[test]
    fn keys_are_checked() {
        let gate = SearchGate::new(&settings(&["k1", "k2"], false), "0.0.0.0").unwrap();
        assert!(gate.admits(Some("Bearer k2")));
        assert!(gate.admits(Some("Bearer k1")));
        assert!(!gate.admits(Some("Bearer k3")));
        assert!(!gate.admits(Some("Basic k1")));
        assert!(!gate.admits(Some("Bearer ")));
        assert!(!gate.admits(None));
        assert!(SearchGate::default().admits(None));
    }

    #[test]
    fn the_caller_is_the_user_named_unless_permissions_are_off() {
        let on = SearchGate::default();
        assert_eq!(on.caller(Some(" ann ")), Caller::User("ann".into()));
        assert_eq!(on.caller(Some("")), Caller::Anonymous);
        assert_eq!(on.caller(None), Caller::Anonymous);
        let off = SearchGate::new(
            &SearchSettings {
                permissions: false,
                ..SearchSettings::default()
            },
            "127.0.0.1",
        )
        .unwrap();
        assert!(!off.filters());
        assert_eq!(off.caller(Some("ann")), Caller::Unfiltered);
        assert_eq!(off.caller(None), Caller::Unfiltered);
    }
}
