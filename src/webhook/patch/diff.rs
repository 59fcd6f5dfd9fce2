//! The JSON Patch between two objects, as `json_patch::diff` computes it
//! but without its allocations (see the parent module): what the tests and
//! the fuzz targets check every written patch against.

use json_patch::jsonptr::{PointerBuf, Token};
use json_patch::{AddOperation, Patch, PatchOperation, RemoveOperation, ReplaceOperation};
use serde_json::{Map, Value};

use super::{build_pointer, open_op, OpKind, Segment};

/// The operations that turn `original` into `mutated`: the same operations,
/// in the same order, as `json_patch::diff(original, mutated)`.
pub fn diff(original: &Value, mutated: &Value) -> Patch {
    let mut differ = Differ {
        path: Vec::new(),
        sink: PatchSink(Vec::new()),
    };
    differ.value(original, mutated);
    Patch(differ.sink.0)
}

/// The patch of [`diff`] encoded as JSON, byte for byte what `serde_json`
/// makes of it, or `None` when there is nothing to patch.
///
/// This is what the admission path sends: writing each operation as it is
/// found spares building a [`Patch`] (a JSON Pointer string, an operation
/// and a copy of the value per change), encoding it, and dropping it.
pub fn diff_json(original: &Value, mutated: &Value) -> serde_json::Result<Option<Vec<u8>>> {
    let mut differ = Differ {
        path: Vec::new(),
        sink: JsonSink {
            out: Vec::new(),
            pointer: String::new(),
            error: None,
        },
    };
    differ.value(original, mutated);
    let JsonSink { mut out, error, .. } = differ.sink;
    if let Some(e) = error {
        return Err(e);
    }
    if out.is_empty() {
        return Ok(None);
    }
    out.push(b']');
    Ok(Some(out))
}

/// Where the differ puts the operations it finds, in order. `path` and
/// `last` together are the operation's path; `value` is what an add or a
/// replace writes.
trait Sink {
    fn op(&mut self, kind: OpKind, path: &[Segment<'_>], last: Option<&str>, value: &Value);
}

/// Collects a [`Patch`].
struct PatchSink(Vec<PatchOperation>);

impl Sink for PatchSink {
    fn op(&mut self, kind: OpKind, path: &[Segment<'_>], last: Option<&str>, value: &Value) {
        let path = PointerBuf::from_tokens(
            path.iter()
                .map(|segment| match *segment {
                    Segment::Key(key) => Token::new(key),
                    Segment::Index(index) => Token::from(index),
                })
                .chain(last.map(Token::new)),
        );
        self.0.push(match kind {
            OpKind::Add => PatchOperation::Add(AddOperation {
                path,
                value: value.clone(),
            }),
            OpKind::Remove => PatchOperation::Remove(RemoveOperation { path }),
            OpKind::Replace => PatchOperation::Replace(ReplaceOperation {
                path,
                value: value.clone(),
            }),
        });
    }
}

/// Writes the patch as JSON: `[` and each operation as it comes; the
/// closing `]` is added by [`diff_json`].
struct JsonSink {
    out: Vec<u8>,
    /// The pointer of the current operation; one buffer for all of them.
    pointer: String,
    /// The first encoding error (values decoded from JSON have none, but
    /// `serde_json` reports them as possible).
    error: Option<serde_json::Error>,
}

impl Sink for JsonSink {
    fn op(&mut self, kind: OpKind, path: &[Segment<'_>], last: Option<&str>, value: &Value) {
        build_pointer(&mut self.pointer, path, last.map(Segment::Key));
        open_op(&mut self.out, kind, &self.pointer);
        if !matches!(kind, OpKind::Remove) {
            self.out.extend_from_slice(b",\"value\":");
            if let Err(e) = serde_json::to_writer(&mut self.out, value) {
                self.error.get_or_insert(e);
            }
        }
        self.out.push(b'}');
    }
}

struct Differ<'a, S> {
    path: Vec<Segment<'a>>,
    sink: S,
}

impl<'a, S: Sink> Differ<'a, S> {
    fn emit(&mut self, kind: OpKind, last: Option<&str>, value: &Value) {
        self.sink.op(kind, &self.path, last, value);
    }

    fn value(&mut self, left: &'a Value, right: &Value) {
        match (left, right) {
            (Value::Object(left), Value::Object(right)) => self.object(left, right),
            (Value::Array(left), Value::Array(right)) => self.array(left, right),
            (left, right) if left == right => {}
            (_, right) => self.emit(OpKind::Replace, None, right),
        }
    }

    fn array(&mut self, left: &'a [Value], right: &[Value]) {
        // As json_patch: compare index by index; extra right elements are
        // added, extra left elements removed (each at the same index, which
        // the previous removal shifted down).
        let mut shift = 0usize;
        for idx in 0..left.len().max(right.len()) {
            self.path.push(Segment::Index(idx - shift));
            match (left.get(idx), right.get(idx)) {
                (Some(l), Some(r)) => self.value(l, r),
                (Some(_), None) => {
                    shift += 1;
                    self.emit(OpKind::Remove, None, &Value::Null);
                }
                (None, Some(r)) => self.emit(OpKind::Add, None, r),
                (None, None) => unreachable!("idx < max(left.len(), right.len())"),
            }
            self.path.pop();
        }
    }

    fn object(&mut self, left: &'a Map<String, Value>, right: &Map<String, Value>) {
        // Keys of `right` in order: recurse into those also in `left`, add
        // the others. Then remove the keys of `left` missing from `right`.
        // A mutated object keeps the original's key order, so the keys are
        // matched in step, with a lookup only where they differ.
        let mut in_step = left.iter();
        let mut found = 0usize;
        for (key, r) in right {
            let l = match in_step.next() {
                Some((left_key, l)) if left_key == key => Some((left_key, l)),
                _ => left.get_key_value(key),
            };
            match l {
                Some((left_key, l)) => {
                    found += 1;
                    self.path.push(Segment::Key(left_key));
                    self.value(l, r);
                    self.path.pop();
                }
                None => self.emit(OpKind::Add, Some(key), r),
            }
        }
        // Keys are unique, so when every key of `left` was found in `right`
        // there is nothing to remove.
        if found == left.len() {
            return;
        }
        for key in left.keys() {
            if !right.contains_key(key) {
                self.emit(OpKind::Remove, Some(key), &Value::Null);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::patch::apply;
    use proptest::prelude::*;
    use serde_json::json;

    fn same_as_json_patch(left: &Value, right: &Value) {
        let ours = diff(left, right);
        let reference = json_patch::diff(left, right);
        assert_eq!(ours, reference, "left: {left}\nright: {right}");
        // The JSON the webhook sends is byte for byte serde_json's encoding.
        let json = diff_json(left, right).unwrap();
        let expected = (!reference.0.is_empty()).then(|| serde_json::to_vec(&reference).unwrap());
        assert_eq!(
            json.as_deref().map(String::from_utf8_lossy),
            expected.as_deref().map(String::from_utf8_lossy),
            "left: {left}\nright: {right}"
        );
        // And it is still a patch from left to right.
        assert_eq!(&apply(left, &ours).expect("the patch applies"), right);
    }

    #[test]
    fn matches_json_patch_on_the_benchmark_fixtures() {
        use crate::webhook::{ingress, pod, MutationConfig};
        let config = MutationConfig::default();
        for (body, is_pod) in [
            (
                include_str!("../../../benches/fixtures/pod-review.json"),
                true,
            ),
            (
                include_str!("../../../benches/fixtures/ingress-review.json"),
                false,
            ),
        ] {
            let review: Value = serde_json::from_str(body).unwrap();
            let object = &review["request"]["object"];
            let outcome = if is_pod {
                pod::mutate_pod(object, "shop", &config)
            } else {
                ingress::mutate_ingress(object, &config)
            }
            .unwrap();
            let mutated = outcome.object.expect("the fixture is mutated");
            same_as_json_patch(object, &mutated);
            same_as_json_patch(&mutated, object);
            same_as_json_patch(object, object);
        }
    }

    #[test]
    fn matches_json_patch_on_edge_cases() {
        let cases = [
            (json!({}), json!({})),
            (json!(null), json!({"a": 1})),
            (json!({"a": 1}), json!([1])),
            (json!([1, 2, 3, 4]), json!([1])),
            (json!([1]), json!([1, 2, 3])),
            (json!([[1], {"x": 2}]), json!([[1, 2], {"x": 3}, 4])),
            (
                json!({"a/b": {"c~d": 1}}),
                json!({"a/b": {"c~d": 2, "~/": 3}}),
            ),
            (json!({"a": 1, "b": 2, "c": 3}), json!({"c": 3, "a": 1})),
            (
                json!({"a": 1, "b": 2}),
                json!({"b": 2, "a": 5, "z": {"q": []}}),
            ),
            (json!({"a": 1, "b": 2}), json!({"x": 1, "y": 2})),
            (json!({"": {"": 1}}), json!({"": {"": 2, "1": null}})),
            (json!(1), json!(1.0)),
            (json!("s"), json!("s")),
        ];
        for (left, right) in cases {
            same_as_json_patch(&left, &right);
            same_as_json_patch(&right, &left);
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..3).prop_map(|n| json!(n)),
            "[a-c/~]{0,2}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-d/~]{0,2}", inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    /// A value and a mutation of it: the webhook's typical input.
    fn arb_pair() -> impl Strategy<Value = (Value, Value)> {
        (arb_json(), arb_json(), any::<prop::sample::Index>()).prop_map(|(left, extra, at)| {
            let mut right = left.clone();
            match &mut right {
                Value::Object(map) => {
                    let key = format!("k{}", at.index(3));
                    map.insert(key, extra);
                }
                Value::Array(items) => {
                    let i = at.index(items.len() + 1);
                    items.insert(i, extra);
                }
                other => *other = extra,
            }
            (left, right)
        })
    }

    proptest! {
        #[test]
        fn matches_json_patch_on_arbitrary_values(left in arb_json(), right in arb_json()) {
            same_as_json_patch(&left, &right);
        }

        #[test]
        fn matches_json_patch_on_mutations((left, right) in arb_pair()) {
            same_as_json_patch(&left, &right);
            same_as_json_patch(&right, &left);
        }
    }
}
