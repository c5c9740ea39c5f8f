//! A minimal JSON Schema (draft 2020-12) validator for the keywords `docs/schema/` uses, enough to
//! check the example and fixture configs in a test without a heavy dependency. A keyword it does
//! not know fails the check, so the schemas cannot quietly use one that is not enforced here.

use serde_json::{Map, Value};

/// Annotations only: they never make a document invalid.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "title",
    "description",
    "default",
    "deprecated",
    "$defs",
];

/// Validates `doc` against `root`; every error with its JSON pointer.
pub fn validate(root: &Value, doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(root, root, doc, "", &mut errors);
    errors
}

fn check(root: &Value, schema: &Value, doc: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{at}: not allowed here")),
        Value::Object(s) => s,
        other => panic!("schema at {at} is not an object: {other}"),
    };
    for (keyword, arg) in schema {
        match keyword.as_str() {
            k if ANNOTATIONS.contains(&k) => {}
            "$ref" => {
                let target = resolve(root, arg.as_str().unwrap_or_default());
                check(root, target, doc, at, errors);
            }
            "type" => {
                let want = arg.as_str().expect("type is a single name");
                if !has_type(doc, want) {
                    errors.push(format!("{at}: {doc} is not of type {want}"));
                }
            }
            "enum" => {
                if !arg.as_array().expect("enum list").contains(doc) {
                    errors.push(format!("{at}: {doc} is not one of {arg}"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(n), Some(bound)) = (doc.as_f64(), arg.as_f64()) {
                    let ok = if keyword == "minimum" {
                        n >= bound
                    } else {
                        n <= bound
                    };
                    if !ok {
                        errors.push(format!("{at}: {n} is outside its {keyword} {bound}"));
                    }
                }
            }
            "minLength" => {
                if let Some(s) = doc.as_str() {
                    if (s.chars().count() as u64) < arg.as_u64().unwrap_or(0) {
                        errors.push(format!("{at}: {s:?} is too short"));
                    }
                }
            }
            "pattern" => {
                if let Some(s) = doc.as_str() {
                    if !regex(arg).is_match(s) {
                        errors.push(format!("{at}: {s:?} does not match {arg}"));
                    }
                }
            }
            "minItems" => {
                if let Some(items) = doc.as_array() {
                    if (items.len() as u64) < arg.as_u64().unwrap_or(0) {
                        errors.push(format!("{at}: too few items"));
                    }
                }
            }
            "items" => {
                for (i, item) in doc.as_array().into_iter().flatten().enumerate() {
                    check(root, arg, item, &format!("{at}/{i}"), errors);
                }
            }
            "minProperties" => {
                if let Some(map) = doc.as_object() {
                    if (map.len() as u64) < arg.as_u64().unwrap_or(0) {
                        errors.push(format!("{at}: too few properties"));
                    }
                }
            }
            "required" => {
                if let Some(map) = doc.as_object() {
                    for key in arg.as_array().expect("required list") {
                        let key = key.as_str().unwrap_or_default();
                        if !map.contains_key(key) {
                            errors.push(format!("{at}: `{key}` is required"));
                        }
                    }
                }
            }
            "propertyNames" => {
                for key in doc.as_object().into_iter().flat_map(Map::keys) {
                    check(
                        root,
                        arg,
                        &Value::String(key.clone()),
                        &format!("{at}/{key}"),
                        errors,
                    );
                }
            }
            "properties" | "patternProperties" | "additionalProperties" => {
                // handled together below
            }
            "oneOf" => {
                let passing = arg
                    .as_array()
                    .expect("oneOf list")
                    .iter()
                    .filter(|s| {
                        let mut e = Vec::new();
                        check(root, s, doc, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing != 1 {
                    errors.push(format!("{at}: {doc} matches {passing} of oneOf, not 1"));
                }
            }
            other => panic!("schema keyword `{other}` at {at} is not supported by this validator"),
        }
    }
    if let Some(map) = doc.as_object() {
        object_members(root, schema, map, at, errors);
    }
}

/// `properties`, then `patternProperties`, then `additionalProperties` for the rest.
fn object_members(
    root: &Value,
    schema: &Map<String, Value>,
    map: &Map<String, Value>,
    at: &str,
    errors: &mut Vec<String>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    let patterns = schema.get("patternProperties").and_then(Value::as_object);
    for (key, value) in map {
        let here = format!("{at}/{key}");
        let mut matched = false;
        if let Some(s) = properties.and_then(|p| p.get(key)) {
            matched = true;
            check(root, s, value, &here, errors);
        }
        for (pattern, s) in patterns.into_iter().flatten() {
            if regex(&Value::String(pattern.clone())).is_match(key) {
                matched = true;
                check(root, s, value, &here, errors);
            }
        }
        if !matched {
            if let Some(extra) = schema.get("additionalProperties") {
                check(root, extra, value, &here, errors);
            }
        }
    }
}

/// Every keyword `check` understands (annotations included).
const KEYWORDS: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "pattern",
    "minItems",
    "items",
    "minProperties",
    "required",
    "propertyNames",
    "properties",
    "patternProperties",
    "additionalProperties",
    "oneOf",
];

/// The keywords of every subschema of `schema` that this validator does not know (none of them
/// would be enforced); each with its JSON pointer.
pub fn unknown_keywords(schema: &Value, at: &str) -> Vec<String> {
    let Value::Object(map) = schema else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (keyword, arg) in map {
        let here = format!("{at}/{keyword}");
        match keyword.as_str() {
            "properties" | "patternProperties" | "$defs" => {
                for (name, sub) in arg.as_object().into_iter().flatten() {
                    out.extend(unknown_keywords(sub, &format!("{here}/{name}")));
                }
            }
            "items" | "additionalProperties" | "propertyNames" => {
                out.extend(unknown_keywords(arg, &here));
            }
            "oneOf" => {
                for (i, sub) in arg.as_array().into_iter().flatten().enumerate() {
                    out.extend(unknown_keywords(sub, &format!("{here}/{i}")));
                }
            }
            k if KEYWORDS.contains(&k) || ANNOTATIONS.contains(&k) => {}
            _ => out.push(here),
        }
    }
    out
}

fn resolve<'s>(root: &'s Value, reference: &str) -> &'s Value {
    let pointer = reference
        .strip_prefix('#')
        .unwrap_or_else(|| panic!("only local references are supported: {reference}"));
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("unresolved reference {reference}"))
}

fn has_type(doc: &Value, want: &str) -> bool {
    match want {
        "object" => doc.is_object(),
        "array" => doc.is_array(),
        "string" => doc.is_string(),
        "boolean" => doc.is_boolean(),
        "integer" => doc.is_i64() || doc.is_u64(),
        "number" => doc.is_number(),
        "null" => doc.is_null(),
        other => panic!("unknown type `{other}`"),
    }
}

fn regex(pattern: &Value) -> regex::Regex {
    regex::Regex::new(pattern.as_str().unwrap_or_default()).expect("valid pattern")
}
