//! Schema knowledge needed to merge lists: which lists merge, and by which key.

/// How a list field merges, mirroring Kubernetes' `patchStrategy`/`patchMergeKey` tags.
///
/// A [`PatchMeta`] returns `None` for atomic lists (replaced whole by a patch and owned whole
/// by server-side apply). `Some` with a `merge_key` is a list of objects merged element by
/// element (a "list-map"); `Some` without a key is a set of primitives that patches union.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListStrategy {
    /// Field identifying an element, e.g. `name` for containers; `None` for primitive sets.
    pub merge_key: Option<String>,
    /// The field also carries Kubernetes' `retainKeys` strategy. Informational: the
    /// `$retainKeys` directive is honoured wherever a patch sends it.
    pub retain_keys: bool,
}

impl ListStrategy {
    /// A list of objects merged by `key`.
    pub fn by_key(key: &str) -> Self {
        Self {
            merge_key: Some(key.to_owned()),
            retain_keys: false,
        }
    }

    /// A list of objects merged by `key` whose elements also use `retainKeys`.
    pub fn by_key_retaining(key: &str) -> Self {
        Self {
            merge_key: Some(key.to_owned()),
            retain_keys: true,
        }
    }

    /// A list of primitives merged as a set (for example `metadata.finalizers`).
    pub fn set() -> Self {
        Self::default()
    }
}

/// Answers how the list at a field path merges.
///
/// `path` holds the field names from the object root with list positions omitted, so the
/// ports of any container of a Pod are `["spec", "containers", "ports"]`.
pub trait PatchMeta {
    /// The strategy for the list at `path`, or `None` when it is atomic.
    fn list_strategy(&self, path: &[&str]) -> Option<ListStrategy>;
}

impl<F> PatchMeta for F
where
    F: Fn(&[&str]) -> Option<ListStrategy>,
{
    fn list_strategy(&self, path: &[&str]) -> Option<ListStrategy> {
        self(path)
    }
}

/// A [`PatchMeta`] under which every list is atomic, giving JSON-merge-patch list semantics.
#[derive(Debug, Clone, Copy, Default)]
pub struct AtomicLists;

impl PatchMeta for AtomicLists {
    fn list_strategy(&self, _path: &[&str]) -> Option<ListStrategy> {
        None
    }
}
