//! Property tests of the spec parser: generated JSON objects (built from the real field
//! names, with values of every JSON type, nested objects, huge and negative numbers),
//! arbitrary and mutated text, and the same objects written as YAML (the CLI's path: YAML
//! text to a JSON value to the node's parser). Nothing panics; an accepted spec renders
//! back to the same spec; a refused one gets an error that names what was wrong.

use mcp_raft::registry::spec::{fields::FIELDS, from_value, parse_json, validate_name, SpecError};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn cases() -> u32 {
    std::env::var("MCPD_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

fn key() -> impl Strategy<Value = String> {
    let known: Vec<String> = FIELDS
        .iter()
        .map(|f| f.name.rsplit('.').next().unwrap_or(f.name).to_owned())
        .chain(
            [
                "placement",
                "allowed_nodes",
                "node_tags",
                "type",
                "server_type",
            ]
            .map(String::from),
        )
        .collect();
    prop_oneof![
        8 => proptest::sample::select(known),
        1 => "[a-z_]{1,12}",
        1 => ".{0,8}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-5i64..70_000).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        proptest::sample::select(vec![
            "stdio",
            "http",
            "docker",
            "streamable-http",
            "x",
            "a-b.c_d",
            "http://127.0.0.1:1/mcp",
            "https://example.com/mcp",
            "/bin/echo",
            "",
            " ",
            "on_demand",
            "strict",
            "none",
            "bearer",
            "api_key",
            "never",
            "always",
            "MCPD_ADMIN_TOKEN",
            "PATH",
            "1s",
            "ü",
        ])
        .prop_map(|s| json!(s)),
        ".{0,24}".prop_map(Value::String),
        (1usize..5000).prop_map(|n| Value::String("n".repeat(n))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A spec-like object: a valid base (stdio or http) with random fields over it, or
/// random fields only.
fn spec_object() -> impl Strategy<Value = Value> {
    let base = prop_oneof![
        Just(json!({"name": "s", "command": "/bin/echo"})),
        Just(json!({"name": "h", "transport": "http", "url": "http://127.0.0.1:9/mcp"})),
        Just(json!({})),
    ];
    (base, proptest::collection::vec((key(), value()), 0..6)).prop_map(|(mut base, extra)| {
        if let Value::Object(map) = &mut base {
            for (k, v) in extra {
                map.insert(k, v);
            }
        }
        base
    })
}

/// Checks the outcome of parsing: a valid spec renders back to itself, an error is clear.
fn judge(result: Result<mcp_raft::registry::ServerSpec, SpecError>) -> Result<(), TestCaseError> {
    match result {
        Ok(spec) => {
            prop_assert!(validate_name(&spec.name).is_ok());
            let again = from_value(spec.to_flat_json());
            prop_assert_eq!(
                again.as_ref(),
                Ok(&spec),
                "rendered spec does not parse back to itself"
            );
        }
        Err(e) => {
            let text = e.to_string();
            prop_assert!(!text.trim().is_empty());
            match &e {
                SpecError::Malformed(_) | SpecError::NotAnObject(_) => {}
                // The name as written (an empty key is an unknown field "").
                SpecError::UnknownField(_) => {}
                other => prop_assert!(
                    other.field().is_some_and(|f| !f.is_empty()),
                    "error names no field: {other:?}"
                ),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_objects_parse_to_a_stable_spec_or_a_named_error(object in spec_object()) {
        judge(from_value(object.clone()))?;
        // The same object as text takes the same path through the node's parser.
        prop_assert_eq!(parse_json(&object.to_string()).is_ok(), from_value(object).is_ok());
    }

    #[test]
    fn any_text_is_refused_cleanly_or_parsed(text in ".{0,200}", bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        judge(parse_json(&text))?;
        judge(parse_json(&String::from_utf8_lossy(&bytes)))?;
    }

    #[test]
    fn mutated_valid_specs_never_panic(
        object in spec_object(),
        cut in any::<proptest::sample::Index>(),
        flip in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut text = object.to_string().into_bytes();
        if !text.is_empty() {
            let i = flip.index(text.len());
            text[i] = byte;
            let end = cut.index(text.len() + 1);
            text.truncate(end.max(1));
        }
        judge(parse_json(&String::from_utf8_lossy(&text)))?;
    }

    #[test]
    fn yaml_specs_take_the_same_path_as_json(object in spec_object(), text in ".{0,120}") {
        // What `mcpd deploy -f spec.yaml` does: YAML text -> JSON value -> the node's parser.
        let yaml = serde_yaml_ng::to_string(&object).expect("a JSON value writes as YAML");
        let back: Value = serde_yaml_ng::from_str(&yaml).expect("YAML written by serde reads back");
        let (a, b) = (from_value(back), from_value(object));
        prop_assert_eq!(a.is_ok(), b.is_ok(), "YAML and JSON disagree");
        judge(a)?;
        // Arbitrary text as YAML: an error, or a value the parser judges.
        if let Ok(value) = serde_yaml_ng::from_str::<Value>(&text) {
            judge(from_value(value))?;
        }
    }
}
