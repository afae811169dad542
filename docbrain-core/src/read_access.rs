//! Who may read a page, and who is asking.
//!
//! Confluence's rule: a user may read a page when **every** layer allows it: the space's view
//! permission, the page's own read restriction if it has one, and the read restriction of every
//! ancestor that has one. A [`ReadAccess`] keeps those layers (a conjunction of sets of
//! principals); a [`Reader`] is the set of principals a caller holds (their user id, their
//! groups, and "anonymous", which every caller is at least). Stores filter inside their queries
//! with [`ReadAccess::admits`] or an equivalent query clause.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Someone a permission can name: a user, a group, or anyone at all.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
// Exhaustive on purpose: a new kind must be matched wherever a permission is decided.
pub enum Principal {
    /// Everyone, signed in or not (a space open to anonymous users).
    Anonymous,
    /// A user: an account id on Cloud, a user key on Data Center.
    User(String),
    /// A group: a group id on Cloud, a group name on Data Center.
    Group(String),
}

impl Principal {
    /// Returns the principal as one token: `anonymous`, `user:<id>` or `group:<id>`.
    pub fn token(&self) -> String {
        match self {
            Self::Anonymous => "anonymous".into(),
            Self::User(id) => format!("user:{id}"),
            Self::Group(id) => format!("group:{id}"),
        }
    }

    /// Reads a token written by [`Principal::token`].
    pub fn from_token(token: &str) -> Option<Self> {
        match token.split_once(':') {
            None if token == "anonymous" => Some(Self::Anonymous),
            Some(("user", id)) if !id.is_empty() => Some(Self::User(id.into())),
            Some(("group", id)) if !id.is_empty() => Some(Self::Group(id.into())),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.token())
    }
}

impl Serialize for Principal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.token())
    }
}

impl<'de> Deserialize<'de> for Principal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let token = String::deserialize(d)?;
        Self::from_token(&token)
            .ok_or_else(|| serde::de::Error::custom(format!("not a principal: {token:?}")))
    }
}

/// One layer of permission: the principals it lets through.
pub type Layer = BTreeSet<Principal>;

/// Who may read a page: every layer must admit the reader. No layers: anyone may; an empty
/// layer: nobody may (the fail-closed state of a page whose permissions cannot be read).
///
/// Layers are kept normalised (sorted, duplicates and implied layers dropped), so two equal
/// rules compare equal and a digest of the rule changes only when who may read changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<Layer>", into = "Vec<Layer>")]
pub struct ReadAccess {
    layers: Vec<Layer>,
}

impl From<Vec<Layer>> for ReadAccess {
    fn from(layers: Vec<Layer>) -> Self {
        Self::of(layers)
    }
}

impl From<ReadAccess> for Vec<Layer> {
    fn from(access: ReadAccess) -> Self {
        access.layers
    }
}

impl Default for ReadAccess {
    /// Nobody: a record that predates permissions is hidden until a crawl reads them.
    fn default() -> Self {
        Self::nobody()
    }
}

impl ReadAccess {
    /// Anyone may read (a source without permissions, such as a folder).
    pub fn anyone() -> Self {
        Self { layers: Vec::new() }
    }

    /// Nobody may read: the page is indexed but hidden until its permissions can be read.
    pub fn nobody() -> Self {
        Self {
            layers: vec![Layer::new()],
        }
    }

    /// Returns the rule of these layers, normalised.
    pub fn of<I: IntoIterator<Item = Layer>>(layers: I) -> Self {
        let mut access = Self::anyone();
        for layer in layers {
            access = access.and(layer);
        }
        access
    }

    /// Adds a layer that must also admit the reader.
    ///
    /// A layer that admits anonymous users admits everyone and is dropped; a layer that a
    /// stricter one already implies (a superset of it) is dropped too.
    #[must_use]
    pub fn and(mut self, layer: Layer) -> Self {
        if layer.contains(&Principal::Anonymous) {
            return self;
        }
        // Passing a layer that is a subset of another means passing that one too.
        if self.layers.iter().any(|held| held.is_subset(&layer)) {
            return self;
        }
        self.layers.retain(|held| !layer.is_subset(held));
        self.layers.push(layer);
        self.layers.sort();
        self
    }

    /// The layers, sorted.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Whether anyone at all may read, signed in or not.
    pub fn is_public(&self) -> bool {
        self.layers.is_empty()
    }

    /// Whether nobody may read.
    pub fn is_nobody(&self) -> bool {
        self.layers.iter().any(BTreeSet::is_empty)
    }

    /// Whether `reader` may read: each layer names at least one of the reader's principals.
    pub fn admits(&self, reader: &Reader) -> bool {
        self.layers
            .iter()
            .all(|layer| layer.iter().any(|p| reader.principals.contains(p)))
    }
}

/// Who is asking, as the principals they hold: always [`Principal::Anonymous`], plus their
/// user and groups when signed in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reader {
    principals: BTreeSet<Principal>,
}

impl Reader {
    /// Someone not signed in: only pages open to anonymous users.
    pub fn anonymous() -> Self {
        Self {
            principals: BTreeSet::from([Principal::Anonymous]),
        }
    }

    /// A user with their groups.
    pub fn user<G, S>(id: impl Into<String>, groups: G) -> Self
    where
        G: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut principals = BTreeSet::from([Principal::Anonymous, Principal::User(id.into())]);
        principals.extend(groups.into_iter().map(|g| Principal::Group(g.into())));
        Self { principals }
    }

    /// The principals, sorted.
    pub fn principals(&self) -> impl Iterator<Item = &Principal> {
        self.principals.iter()
    }
}

/// Whose permissions a search obeys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
// Exhaustive on purpose: a new kind must be matched wherever a permission is decided.
pub enum Caller {
    /// Nobody signed in: only pages open to anonymous users (the default).
    #[default]
    Anonymous,
    /// A user, as an account id (Cloud) or username (Data Center); their groups are looked up
    /// through the source.
    User(String),
    /// No permission filter (`SEARCH_PERMISSIONS=off`, or a trusted caller).
    Unfiltered,
}

impl Caller {
    /// The caller of a search naming `as_user` (blank: nobody signed in); with `permissions`
    /// off, every search is [`Caller::Unfiltered`].
    pub fn named(as_user: Option<&str>, permissions: bool) -> Self {
        match as_user.map(str::trim).filter(|u| !u.is_empty()) {
            _ if !permissions => Self::Unfiltered,
            Some(user) => Self::User(user.to_owned()),
            None => Self::Anonymous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(tokens: &[&str]) -> Layer {
        tokens
            .iter()
            .map(|t| Principal::from_token(t).unwrap())
            .collect()
    }

    #[test]
    fn every_layer_must_admit() {
        let access = ReadAccess::anyone()
            .and(layer(&["group:staff"]))
            .and(layer(&["user:ann", "group:hr"]));
        assert!(access.admits(&Reader::user("ann", ["staff"])));
        assert!(access.admits(&Reader::user("bob", ["staff", "hr"])));
        assert!(!access.admits(&Reader::user("bob", ["staff"])));
        assert!(!access.admits(&Reader::user("ann", Vec::<String>::new())));
        assert!(!access.admits(&Reader::anonymous()));
    }

    #[test]
    fn anonymous_layers_vanish_and_implied_layers_are_dropped() {
        let open = ReadAccess::anyone().and(layer(&["anonymous", "group:staff"]));
        assert!(open.is_public());
        assert!(open.admits(&Reader::anonymous()));
        let a = ReadAccess::of([layer(&["group:staff", "user:ann"]), layer(&["user:ann"])]);
        let b = ReadAccess::of([layer(&["user:ann"]), layer(&["group:staff", "user:ann"])]);
        assert_eq!(a, b);
        assert_eq!(a.layers(), [layer(&["user:ann"])]);
    }

    #[test]
    fn nobody_admits_no_one_and_is_the_default() {
        let nobody = ReadAccess::default();
        assert!(nobody.is_nobody());
        assert!(!nobody.admits(&Reader::user("ann", ["staff"])));
        assert!(!nobody.admits(&Reader::anonymous()));
        assert!(nobody.clone().and(layer(&["user:ann"])).is_nobody());
    }

    #[test]
    fn round_trips_through_json() {
        let access = ReadAccess::of([layer(&["group:g1", "user:u1"]), layer(&["user:u1"])]);
        let json = serde_json::to_string(&access).unwrap();
        assert_eq!(json, r#"[["user:u1"]]"#);
        let back: ReadAccess = serde_json::from_str(&json).unwrap();
        assert_eq!(back, access);
        assert!(serde_json::from_str::<ReadAccess>(r#"[["root"]]"#).is_err());
    }
}
