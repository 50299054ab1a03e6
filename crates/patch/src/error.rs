//! The error type shared by [`json_patch`](crate::json_patch) and
//! [`strategic_merge_patch`](crate::strategic_merge_patch).

use thiserror::Error;

/// Why a JSON patch or strategic merge patch could not be applied.
///
/// JSON patch variants carry the zero-based `index` of the failing operation and the JSON
/// pointer it named; strategic merge patch variants carry a dotted field path such as
/// `.spec.containers`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The JSON patch body is not a JSON array.
    #[error("json patch must be an array of operations")]
    NotAnOperationList,
    /// Operation `index` is malformed: it is not an object, its `op` is unknown, it lacks the
    /// `path`, `from` or `value` member its op needs, or a pointer is not a valid JSON pointer.
    #[error("json patch operation {index} is invalid: {reason}")]
    InvalidOperation {
        /// Position of the operation in the patch.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// Operation `index` names a location that does not exist, or whose parent does not exist
    /// or is not a container (for `add`, `copy` and `move` targets).
    #[error("json patch operation {index} ({op}) failed: path {path:?} not found")]
    PathNotFound {
        /// Position of the operation in the patch.
        index: usize,
        /// The operation name (`add`, `remove`, ...).
        op: String,
        /// The JSON pointer that could not be resolved.
        path: String,
    },
    /// Operation `index` uses an array index that is not a plain decimal number, or is past
    /// the end of the array (`-` is only accepted as an `add` target).
    #[error("json patch operation {index} ({op}) failed: invalid array index in path {path:?}")]
    InvalidIndex {
        /// Position of the operation in the patch.
        index: usize,
        /// The operation name.
        op: String,
        /// The JSON pointer holding the bad index.
        path: String,
    },
    /// A `test` operation found a value different from the expected one.
    #[error("json patch operation {index} (test) failed: value at path {path:?} does not match")]
    TestFailed {
        /// Position of the operation in the patch.
        index: usize,
        /// The JSON pointer that was tested.
        path: String,
    },
    /// A `move` operation's target lies inside the value being moved.
    #[error("json patch operation {index} (move) failed: cannot move {from:?} into its own child {path:?}")]
    MoveIntoChild {
        /// Position of the operation in the patch.
        index: usize,
        /// The `from` pointer.
        from: String,
        /// The `path` pointer.
        path: String,
    },
    /// A strategic merge patch, or the document it is applied to, is not a JSON object.
    #[error("strategic merge patch {what} must be a JSON object")]
    NotAnObject {
        /// `"patch"` or `"document"`.
        what: &'static str,
    },
    /// A strategic merge patch directive is malformed: an unknown `$patch` value, a
    /// `$retainKeys` that is not a list of strings or omits a field the patch sets, or a
    /// `$setElementOrder`/`$deleteFromPrimitiveList` value that is not a list.
    #[error("invalid strategic merge patch at {path}: {reason}")]
    InvalidDirective {
        /// Dotted path of the map holding the directive.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An element of a list merged by key lacks the key field.
    #[error(
        "strategic merge patch element in list {path} does not contain declared merge key {key:?}"
    )]
    MissingMergeKey {
        /// Dotted path of the list.
        path: String,
        /// The merge key the element should carry.
        key: String,
    },
}

/// Result type of this crate's patch functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;
