//! JSON Patch (RFC 6902): the answer of the webhook to the API server.
//!
//! Both mutations know exactly what they change, so both write their
//! operations straight out with a [`PatchWriter`], from a read-only look at
//! the object: no copy of the object is edited and compared. The mutated
//! object `certweave inject` prints is that patch [`apply`]d, so the two
//! cannot disagree. The Ingress patch is exactly what [`diff`] makes of the
//! original and the patched object, which the Ingress tests check.
//!
//! [`diff`] produces exactly the operations of `json_patch::diff`, in the
//! same order, but it is on the admission hot path, where `json_patch::diff`
//! allocated twice for every key of the object (building and popping its
//! JSON Pointer as it walks the tree) and hashed every key twice. Here the
//! walk keeps only a stack of borrowed path segments, builds a pointer only
//! for an emitted operation, and finds the left-hand value of a key by
//! walking both maps in step (a mutated object keeps the original's key
//! order), falling back to a lookup when the keys differ. On the admission
//! path, [`diff_json`] writes the operations straight out as JSON.

use serde_json::Value;

mod diff;

pub use diff::{diff, diff_json};

/// Applies `patch` to a copy of `object`, the way the API server does.
/// Used by `certweave inject`'s tests and the integration tests to check that
/// the patch a review returns really produces the mutated object.
pub fn apply(object: &Value, patch: &json_patch::Patch) -> Result<Value, json_patch::PatchError> {
    let mut out = object.clone();
    json_patch::patch(&mut out, patch)?;
    Ok(out)
}

/// `object` with `patch` (JSON text a mutation wrote) applied: the mutated
/// object a mutation returns besides its patch. Fails only if the mutation
/// wrote a bad patch, which its tests rule out; the caller still answers
/// with a refusal rather than a panic.
pub fn apply_json(object: &Value, patch: &[u8]) -> Result<Value, String> {
    let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| e.to_string())?;
    apply(object, &ops).map_err(|e| e.to_string())
}

/// One step of a JSON Pointer. In the differ, keys are borrowed from the
/// original object: a key of the mutated one is only ever the last step of
/// an `add`, passed to the sink on its own.
#[derive(Clone, Copy, Debug)]
pub enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

/// The kind of a patch operation.
#[derive(Clone, Copy)]
pub(crate) enum OpKind {
    Add,
    Remove,
    Replace,
}

/// Builds `path` (then `last`, if any) into `pointer` as an RFC 6901 JSON
/// Pointer, reusing its buffer.
pub(crate) fn build_pointer(pointer: &mut String, path: &[Segment<'_>], last: Option<Segment<'_>>) {
    pointer.clear();
    for segment in path.iter().chain(last.as_ref()) {
        pointer.push('/');
        match *segment {
            Segment::Key(key) if !key.contains(['~', '/']) => pointer.push_str(key),
            Segment::Key(key) => {
                for c in key.chars() {
                    match c {
                        '~' => pointer.push_str("~0"),
                        '/' => pointer.push_str("~1"),
                        c => pointer.push(c),
                    }
                }
            }
            Segment::Index(index) => pointer.push_str(itoa::Buffer::new().format(index)),
        }
    }
}

/// Starts the next operation of a patch being written into `out`: the
/// separator, the op name and the path, leaving the object open.
pub(crate) fn open_op(out: &mut Vec<u8>, kind: OpKind, pointer: &str) {
    out.extend_from_slice(if out.is_empty() { b"[" } else { b"," });
    out.extend_from_slice(match kind {
        OpKind::Add => b"{\"op\":\"add\",\"path\":",
        OpKind::Remove => b"{\"op\":\"remove\",\"path\":",
        OpKind::Replace => b"{\"op\":\"replace\",\"path\":",
    });
    write_json_str(out, pointer);
}

/// Appends `text` as a JSON string, byte for byte as `serde_json` writes it.
///
/// Paths, names and images almost never need escaping, so they are checked
/// in one pass and copied whole; serde_json's writer looks each byte up in
/// its escape table on the way out, which was a few percent of a review.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    // Serialising a string into a Vec has no failure case: `Write` for Vec
    // never fails and a `str` is always valid UTF-8.
    serde_json::to_writer(&mut *out, text).expect("a string always encodes into a Vec");
}

/// A JSON Patch written one operation at a time, for a mutation that knows
/// what it changes and where without comparing objects. Each value is
/// written as JSON text by the caller, so a value that exists only to be
/// sent (the injected sidecar) is never built as a [`Value`].
#[derive(Debug)]
pub struct PatchWriter {
    out: Vec<u8>,
    pointer: String,
}

impl Default for PatchWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl PatchWriter {
    pub fn new() -> Self {
        Self {
            // A Pod's patch with the sidecar is about 1.5 KiB: one
            // allocation rather than a series of doublings and copies.
            out: Vec::with_capacity(2048),
            pointer: String::with_capacity(64),
        }
    }

    /// Adds `{"op":"add","path":<parent/last>,"value":…}`;
    /// `write_value` must append exactly one JSON value to the buffer.
    pub fn add(
        &mut self,
        parent: &[Segment<'_>],
        last: Segment<'_>,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        self.op(OpKind::Add, parent, last, write_value);
    }

    /// Adds `{"op":"replace","path":<parent/last>,"value":…}`, for a value
    /// that is present (if only as `null`); as [`PatchWriter::add`] otherwise.
    pub fn replace(
        &mut self,
        parent: &[Segment<'_>],
        last: Segment<'_>,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        self.op(OpKind::Replace, parent, last, write_value);
    }

    fn op(
        &mut self,
        kind: OpKind,
        parent: &[Segment<'_>],
        last: Segment<'_>,
        write_value: impl FnOnce(&mut Vec<u8>),
    ) {
        build_pointer(&mut self.pointer, parent, Some(last));
        open_op(&mut self.out, kind, &self.pointer);
        self.out.extend_from_slice(b",\"value\":");
        write_value(&mut self.out);
        self.out.push(b'}');
    }

    /// The patch as JSON, or `None` if no operation was added.
    pub fn finish(self) -> Option<Vec<u8>> {
        let mut out = self.out;
        if out.is_empty() {
            return None;
        }
        out.push(b']');
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    #[test]
    fn add_patches_escape_their_paths_and_apply() {
        let original = json!({ "m": { "a/b": 1 }, "l": [1] });
        let mut patch = PatchWriter::new();
        assert!(PatchWriter::new().finish().is_none());
        patch.add(&[Segment::Key("m")], Segment::Key("c~d/\"e\""), |out| {
            out.extend_from_slice(b"{\"x\":[true]}")
        });
        patch.add(&[Segment::Key("l")], Segment::Index(1), |out| {
            write_json_str(out, "two")
        });
        patch.replace(&[Segment::Key("m")], Segment::Key("a/b"), |out| {
            out.push(b'2')
        });
        let json = patch.finish().expect("three operations");
        let ops: json_patch::Patch = serde_json::from_slice(&json).expect("a JSON Patch");
        assert_eq!(
            serde_json::to_value(&ops).unwrap(),
            json!([
                { "op": "add", "path": "/m/c~0d~1\"e\"", "value": { "x": [true] } },
                { "op": "add", "path": "/l/1", "value": "two" },
                { "op": "replace", "path": "/m/a~1b", "value": 2 },
            ])
        );
        assert_eq!(
            apply(&original, &ops).unwrap(),
            json!({ "m": { "a/b": 2, "c~d/\"e\"": { "x": [true] } }, "l": [1, "two"] })
        );
    }

    proptest! {
        #[test]
        fn strings_are_written_as_serde_json_writes_them(
            text in prop_oneof!["[ -~]{0,12}", "\\PC{0,12}", any::<String>()],
        ) {
            let mut ours = Vec::new();
            write_json_str(&mut ours, &text);
            prop_assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }

    }
}
