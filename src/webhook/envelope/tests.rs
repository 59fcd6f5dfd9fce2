use super::*;
use proptest::prelude::*;
use serde_json::json;

/// `value` projected onto `shape`, from the whole decoded value.
fn project(value: &Value, shape: &Shape) -> Value {
    match (shape, value) {
        (Shape::Fields(fields), Value::Object(map)) => Value::Object(
            map.iter()
                .filter_map(|(key, value)| {
                    let (_, shape) = fields.iter().find(|(name, _)| name == key)?;
                    Some((key.clone(), project(value, shape)))
                })
                .collect(),
        ),
        (Shape::Each(item), Value::Array(items)) => {
            Value::Array(items.iter().map(|value| project(value, item)).collect())
        }
        _ => value.clone(),
    }
}

fn assert_projects_like_reference(text: &str) {
    let ours = serde_json::from_str::<AdmittedObject>(text).map(|o| o.0);
    let reference = serde_json::from_str::<Value>(text)
        .map(|value| project(&value, &READ_BY_MUTATIONS))
        .map_err(|_| ());
    match (ours, reference) {
        (Ok(ours), Ok(reference)) => {
            // Compare the encodings too: `Map` equality ignores key order.
            assert_eq!(ours, reference, "{text}");
            assert_eq!(ours.to_string(), reference.to_string(), "{text}");
        }
        (Err(_), Err(())) => {}
        (ours, reference) => {
            panic!("{text}: decoded {ours:?}, reference {reference:?}")
        }
    }
}

#[test]
fn admitted_object_keeps_exactly_what_the_mutations_read() {
    for text in [
        r#"{"metadata":{"name":"a","managedFields":[{"manager":"m","fieldsV1":{"f:x":{}}}],"labels":{"k":"v"}}}"#,
        r#"{"metadata":{"managedFields":5},"spec":{"template":{"metadata":{"managedFields":[1]}}}}"#,
        r#"{"spec":{"metadata":{"managedFields":[]}},"metadata":{"managedFields":null}}"#,
        r#"{"metadata":{"a":1,"annotations":{"x":"1"},"a":2,"annotations":{"y":"2"}}}"#,
        r#"{"metadata":{"na\u006de":"escaped key","labels":{"k\n":"v"}}}"#,
        r#"{"metadata":"x"}"#,
        r#"{"metadata":null}"#,
        r#"{"metadata":[{"managedFields":1}]}"#,
        r#"{"metadata":{"metadata":{"managedFields":1}}}"#,
        r#"{"spec":{"containers":[{"name":"a","image":"i","volumeMounts":[{"name":"v","mountPath":"/p","readOnly":true}],"ports":[{"containerPort":80,"name":"http"}]},"x",null,[1]]}}"#,
        r#"{"spec":{"volumes":[{"name":"v","secret":{"secretName":"s"}}],"containers":{"name":"a"}}}"#,
        r#"{"spec":{"rules":[{"host":"a.example","http":{"paths":[]}}],"tls":[{"hosts":["a"],"x":1}]}}"#,
        r#"{"spec":[{"containers":[]}],"status":{"phase":"Pending"}}"#,
        r#"{"metadata":{"name":[1,-2,3.5,1e400,18446744073709551615,-9223372036854775808,0.1]}}"#,
        r#"{"metadata":{"name":[1,-2,3.5,18446744073709551615,-9223372036854775808,0.1,"\u00e9\n"]}}"#,
        r#"{"metadata":{"managedFields":[1,}}"#,
        r#"{"metadata":{"managedFields":[1]"#,
        r#"[{"metadata":{"managedFields":1}}]"#,
        r#""string""#,
        r#"null"#,
        r#"12"#,
        r#"{}"#,
    ] {
        assert_projects_like_reference(text);
    }
}

/// A skipped field is checked for JSON syntax but never converted, so a
/// number beyond f64 or a lone UTF-16 surrogate escape there (neither of
/// which an API server sends) is not an error; in a kept field it is.
#[test]
fn skipped_fields_are_checked_for_syntax_only() {
    let text = r#"{"n":[1e400],"spec":{"containers":[{"name":"a","env":[{"value":"\ud800"}]}]}}"#;
    let ours = serde_json::from_str::<AdmittedObject>(text).unwrap().0;
    assert_eq!(ours, json!({"spec": {"containers": [{"name": "a"}]}}));
    for text in [
        r#"{"metadata":{"name":1e400}}"#,
        r#"{"spec":{"containers":[{"name":"\ud800"}]}}"#,
        r#"{"status":{"phase":"Pending",}}"#,
        r#"{"status":{"phase":Pending}}"#,
        r#"{"spec":{"containers":[{"env":[{"value":"a}]}]}}"#,
    ] {
        assert!(
            serde_json::from_str::<AdmittedObject>(text).is_err(),
            "{text}"
        );
    }
}

pub(in crate::webhook) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z\"\\\\é]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        let key = prop_oneof![
            prop::sample::select(vec![
                "metadata",
                "managedFields",
                "annotations",
                "labels",
                "app",
                "spec",
                "containers",
                "volumes",
                "volumeMounts",
                "ports",
                "rules",
                "tls",
                "name",
            ])
            .prop_map(str::to_owned),
            "[a-c]{0,2}"
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn admitted_object_matches_reference_on_arbitrary_json(value in arb_json()) {
        assert_projects_like_reference(&value.to_string());
    }
}
