//! Where the controller works: the whole cluster, or a list of namespaces
//! (`--watch-namespaces`).
//!
//! RBAC cannot narrow a grant by label, so the only way a cluster admin can
//! keep certweave away from the Secrets of most namespaces is to grant it
//! Roles in a few and have it stay there. Every watch, cache and list of a
//! namespaced kind goes through [`WatchScope`], so a namespace-scoped
//! controller never asks for more than its Roles allow: one watch per kind
//! per namespace instead of one cluster-wide watch.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream, StreamExt};
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{self, Lookup, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// At most this many namespaces: each costs one watch per kind (about
/// eight) on the API server.
pub const MAX_WATCHED_NAMESPACES: usize = 64;

/// The namespaces the controller watches, reads and writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WatchScope {
    /// Every namespace (a ClusterRole grants the namespaced kinds).
    #[default]
    Cluster,
    /// Only these, sorted and without repeats; never empty.
    Namespaces(Arc<[String]>),
}

/// A `--watch-namespaces` list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error(
        "--watch-namespaces: {name:?} is not a namespace name: use lowercase letters, digits \
         and '-', at most 63 characters, starting and ending with a letter or digit"
    )]
    BadName { name: String },
    #[error(
        "--watch-namespaces: {count} namespaces, at most {MAX_WATCHED_NAMESPACES} are allowed \
         (each costs one watch per kind); leave the flag out to watch the whole cluster"
    )]
    TooMany { count: usize },
}

impl WatchScope {
    /// The scope for `--watch-namespaces NAMES`: the names given plus
    /// `own`, the controller's namespace, where ClusterIssuers keep their
    /// Secrets (a CA Certificate there feeds a ClusterIssuer). An empty
    /// list means the whole cluster.
    pub fn namespaces<S: AsRef<str>>(names: &[S], own: &str) -> Result<Self, ScopeError> {
        if names.is_empty() {
            return Ok(Self::Cluster);
        }
        let mut list = Vec::with_capacity(names.len() + 1);
        for name in names.iter().map(AsRef::as_ref).chain([own]) {
            let name = name.trim();
            if !is_namespace_name(name) {
                return Err(ScopeError::BadName {
                    name: crate::model::text::cut(name, crate::model::text::QUOTED),
                });
            }
            list.push(name.to_owned());
        }
        list.sort_unstable();
        list.dedup();
        // The controller's own namespace is not counted against the limit.
        if list.len() > MAX_WATCHED_NAMESPACES + 1 {
            return Err(ScopeError::TooMany { count: names.len() });
        }
        Ok(Self::Namespaces(list.into()))
    }

    /// Whether objects in `namespace` are certweave's to handle.
    pub fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::Cluster => true,
            Self::Namespaces(list) => list.binary_search_by(|n| n.as_str().cmp(namespace)).is_ok(),
        }
    }

    /// The namespaces, or `None` for the whole cluster.
    pub fn list(&self) -> Option<&[String]> {
        match self {
            Self::Cluster => None,
            Self::Namespaces(list) => Some(list),
        }
    }

    /// One `Api` per watched namespace, made by `api` (`None`: all
    /// namespaces), each with the namespace it covers.
    pub fn apis<K>(&self, api: impl Fn(Option<&str>) -> Api<K>) -> Vec<(Option<String>, Api<K>)> {
        match self {
            Self::Cluster => vec![(None, api(None))],
            Self::Namespaces(list) => list
                .iter()
                .map(|namespace| (Some(namespace.clone()), api(Some(namespace))))
                .collect(),
        }
    }

    /// The events of every watched namespace, in one stream. Each
    /// namespace lists on its own: `Init`/`InitDone` come once per
    /// namespace, so the stream suits consumers that act per object, not
    /// a single reflector (use [`WatchScope::reflect`] for a cache). Each
    /// namespace's watch backs off on its own after an error (kube's
    /// default backoff), so one failing namespace never pauses the others.
    pub fn watch<K>(
        &self,
        api: impl Fn(Option<&str>) -> Api<K>,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    {
        stream::select_all(self.apis(api).into_iter().map(|(_, api)| {
            watcher::watcher(api, config.clone())
                .default_backoff()
                .boxed()
        }))
        .boxed()
    }

    /// A cache of `K` over every watched namespace and the stream of its
    /// events (each namespace backing off on its own, as in
    /// [`WatchScope::watch`]); the cache is filled as the stream is polled.
    /// `strip` trims each object before it is cached.
    pub fn reflect<K>(
        &self,
        api: impl Fn(Option<&str>) -> Api<K>,
        config: watcher::Config,
        strip: fn(&mut K),
    ) -> (
        ScopedCache<K>,
        BoxStream<'static, Result<Event<K>, watcher::Error>>,
    )
    where
        K: Resource + Lookup + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        <K as Lookup>::DynamicType: Eq + Hash + Clone + Default + Send + Sync,
    {
        let mut parts = Vec::new();
        let mut streams = Vec::new();
        for (namespace, api) in self.apis(api) {
            let (reader, writer) = reflector::store::<K>();
            let events = watcher::watcher(api, config.clone())
                .map(move |event| event.map(|event| event.modify(strip)));
            streams.push(
                reflector::reflector(writer, events)
                    .default_backoff()
                    .boxed(),
            );
            parts.push((namespace, reader));
        }
        (
            ScopedCache {
                parts: parts.into(),
            },
            stream::select_all(streams).boxed(),
        )
    }
}

/// A reflector cache over the watched namespaces: one store per namespace
/// (each relists on its own after a watch error) behind one lookup.
pub struct ScopedCache<K: Lookup + Clone + 'static>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// `None`: one store for every namespace.
    parts: Arc<[(Option<String>, Store<K>)]>,
}

impl<K: Lookup + Clone + 'static> Clone for ScopedCache<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Self {
            parts: self.parts.clone(),
        }
    }
}

impl<K: Lookup + Clone + 'static> From<Store<K>> for ScopedCache<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// A cache over the whole cluster, backed by one store.
    fn from(store: Store<K>) -> Self {
        Self {
            parts: Arc::new([(None, store)]),
        }
    }
}

impl<K: Lookup + Clone + 'static> ScopedCache<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// The cached object at `at`, if its namespace is watched and it exists.
    pub fn get(&self, at: &ObjectRef<K>) -> Option<Arc<K>> {
        self.parts
            .iter()
            .find(|(namespace, _)| namespace.is_none() || *namespace == at.namespace)
            .and_then(|(_, store)| store.get(at))
    }

    /// Every cached object.
    pub fn state(&self) -> Vec<Arc<K>> {
        match &self.parts[..] {
            [(_, store)] => store.state(),
            parts => parts.iter().flat_map(|(_, store)| store.state()).collect(),
        }
    }

    /// Completes once every namespace has been listed.
    pub async fn wait_until_ready(&self) {
        for (_, store) in self.parts.iter() {
            let _ = store.wait_until_ready().await;
        }
    }
}

/// `Api::namespaced` for `Some`, `Api::all` for `None`: the usual maker
/// for [`WatchScope::apis`].
pub fn namespaced_or_all<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// A DNS-1123 label, as Kubernetes requires of namespace names.
fn is_namespace_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(inner)
        && edge(&bytes[0])
        && edge(&bytes[bytes.len() - 1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::certificate::Certificate;

    #[test]
    fn an_empty_list_is_the_whole_cluster() {
        let scope = WatchScope::namespaces::<&str>(&[], "certweave").unwrap();
        assert_eq!(scope, WatchScope::Cluster);
        assert!(scope.contains("anything"));
        assert_eq!(scope.list(), None);
    }

    #[test]
    fn the_list_is_sorted_without_repeats_and_holds_the_own_namespace() {
        let scope = WatchScope::namespaces(&["team-b", " team-a", "team-b"], "certweave").unwrap();
        assert_eq!(
            scope.list().unwrap(),
            ["certweave", "team-a", "team-b"].map(String::from)
        );
        assert!(scope.contains("team-a") && scope.contains("certweave"));
        assert!(!scope.contains("team-c") && !scope.contains(""));
    }

    #[test]
    fn bad_names_and_long_lists_are_refused_with_the_fix() {
        for bad in ["", "Team", "team_a", "-a", "a-", &"a".repeat(64)] {
            let error = WatchScope::namespaces(&[bad], "certweave").unwrap_err();
            assert!(
                matches!(error, ScopeError::BadName { .. })
                    && error.to_string().contains("lowercase letters"),
                "{bad:?}: {error}"
            );
        }
        let huge = "x".repeat(1 << 20);
        let error = WatchScope::namespaces(&[huge.as_str()], "certweave").unwrap_err();
        assert!(
            error.to_string().len() < 400,
            "the name is cut in the message"
        );
        let many: Vec<String> = (0..=MAX_WATCHED_NAMESPACES)
            .map(|i| format!("ns-{i}"))
            .collect();
        let error = WatchScope::namespaces(&many, "certweave").unwrap_err();
        assert_eq!(error, ScopeError::TooMany { count: 65 });
        assert!(error.to_string().contains("leave the flag out"), "{error}");
        let most: Vec<String> = many[..MAX_WATCHED_NAMESPACES].to_vec();
        assert!(WatchScope::namespaces(&most, "certweave").is_ok());
    }

    fn certificate(namespace: &str, name: &str) -> Certificate {
        let mut c = Certificate::new(name, Default::default());
        c.metadata.namespace = Some(namespace.into());
        c
    }

    fn store_of(certificates: &[Certificate]) -> Store<Certificate> {
        let (reader, mut writer) = reflector::store::<Certificate>();
        for c in certificates {
            writer.apply_watcher_event(&Event::Apply(c.clone()));
        }
        reader
    }

    #[test]
    fn a_scoped_cache_looks_up_in_the_store_of_the_namespace() {
        let a = certificate("team-a", "web");
        let b = certificate("team-b", "web");
        let cache = ScopedCache {
            parts: Arc::new([
                (
                    Some("team-a".to_owned()),
                    store_of(std::slice::from_ref(&a)),
                ),
                (
                    Some("team-b".to_owned()),
                    store_of(std::slice::from_ref(&b)),
                ),
            ]),
        };
        let at = |ns: &str| ObjectRef::<Certificate>::new("web").within(ns);
        assert_eq!(
            cache
                .get(&at("team-b"))
                .unwrap()
                .metadata
                .namespace
                .as_deref(),
            Some("team-b")
        );
        assert!(cache.get(&at("team-c")).is_none());
        assert_eq!(cache.state().len(), 2);
        let whole: ScopedCache<Certificate> = store_of(&[a, b]).into();
        assert!(whole.get(&at("team-a")).is_some());
        assert_eq!(whole.state().len(), 2);
    }
}
